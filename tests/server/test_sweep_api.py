"""The Sweep through the real app: ``/sweep`` called with ``gradio_client`` on the local
model (rows × temperatures, checks, a refused target failing its own cells only, a
refusal before anything runs, cancelling a running sweep closes its streams), and the
Show-code loop run as a script against the app's own OpenAI-compatible API."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from components.snippets import Target
from components.sweep_code import python_loop
from components.sweep_grid import expand

pytestmark = pytest.mark.server

TIMEOUT_S = 180
RUNNING, WAITING = "playground_running", "playground_waiting"
CANCELLED = "playground_requests_cancelled_total"


@pytest.fixture(scope="module")
def client(app_url: str):
    client = Client(app_url, verbose=False)
    try:
        yield client
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released: nothing listens there now


def test_a_sweep_on_the_local_model(client) -> None:
    job = client.submit(
        "Name one color for {{topic}}.",
        rows_csv="topic\nthe moon\na forest\n",
        temperature="0, 1.2",
        max_tokens="4",
        contains="the",
        concurrency=4,
        api_name="/sweep",
    )
    rows = job.result(timeout=TIMEOUT_S)
    assert len(job.outputs()) > 1  # the rows so far, streamed
    assert [(r["cell"], r["row"], r["variables"]["topic"], r["temperature"]) for r in rows] == [
        (1, 1, "the moon", 0.0), (2, 1, "the moon", 1.2),
        (3, 2, "a forest", 0.0), (4, 2, "a forest", 1.2),
    ]  # fmt: skip
    for row in rows:
        assert row["target"] == "local" and row["error"] == "" and row["output"]
        assert 1 <= row["tokens"] <= 4 and row["finish_reason"] in ("length", "stop")
        assert row["ttft_ms"] > 0 and row["total_ms"] >= row["ttft_ms"]
        assert row["checks"] == {"contains": "the" in row["output"]}
        assert row["passed"] is row["checks"]["contains"]


def test_a_refused_target_fails_its_own_cells_only(client) -> None:
    refused = f"http://127.0.0.1:{_closed_port()}"
    rows = client.predict("Say hi.", targets=f"local\n{refused}", max_tokens="3", api_name="/sweep")
    local, remote = rows
    assert local["target"] == "local" and local["output"] and not local["error"]
    assert remote["target"] == refused and remote["error"] and remote["passed"] is False
    assert remote["output"] == "" and remote["tokens"] is None


def test_a_missing_variable_is_refused_before_anything_runs(client, app_server) -> None:
    before = app_server.metrics()
    with pytest.raises(AppError, match=r"Row 2 has no value for \{\{style\}\}"):
        client.predict(
            "A {{style}} about {{topic}}.",
            rows_csv="topic,style\nthe sea,haiku\na cat,\n",
            api_name="/sweep",
        )
    with pytest.raises(AppError, match="This sweep has 300 cells .* the limit is 200"):
        client.predict(
            "Say {{n}}.",
            rows_csv="n\n" + "".join(f"{i}\n" for i in range(50)),
            temperature="0, 0.5, 1, 1.5, 2, 0.2",
            api_name="/sweep",
        )
    admitted = "playground_batch_admissions_total"
    assert admitted in before and app_server.metrics()[admitted] == before[admitted]


def test_cancelling_a_sweep_closes_its_streams(client, app_server) -> None:
    before = app_server.metrics()
    job = client.submit(
        "Write a very long story about {{animal}} who learns to bake bread.",
        rows_csv="animal\na dragon\na cat\na fox\na bear\na mole\na crow\n",
        max_tokens="1500",
        concurrency=3,
        api_name="/sweep",
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not any(row["output"] for row in (job.outputs() or [[]])[-1]):
        assert not job.done(), f"the sweep ended early: {job.status()}"
        assert time.monotonic() < deadline, "no cell produced any text"
        time.sleep(0.1)  # polling for the first text, bounded by the deadline above
    assert job.cancel(), "gradio_client refused to cancel the running sweep"
    after = app_server.wait_for_metric(CANCELLED, before.get(CANCELLED, 0.0), deadline_s=60)
    assert after[CANCELLED] > before.get(CANCELLED, 0.0)
    while (counts := app_server.metrics())[RUNNING] or counts[WAITING]:
        assert time.monotonic() < deadline + 60, f"streams left open: {counts}"
        time.sleep(0.1)


def test_the_show_code_loop_runs_against_the_app(app_url, tmp_path) -> None:
    template = "Name one color for {{topic}}."
    cells = expand(template, [{"topic": "the moon"}, {"topic": "grass"}], ["local"],
                   temperatures=[0.0, 0.7], max_tokens=[4], top_ps=[1.0])  # fmt: skip
    target = Target("local", base_url=f"{app_url.rstrip('/')}/api")
    code = python_loop(cells, [target], template=template, system_prompt="")
    script = tmp_path / "sweep.py"
    script.write_text(code)
    env = {**os.environ, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}
    env.pop("HF_HUB_OFFLINE", None)  # it would block InferenceClient even on loopback
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [(r["row"], r["topic"], r["temperature"]) for r in rows] == [
        ("1", "the moon", "0.0"), ("1", "the moon", "0.7"),
        ("2", "grass", "0.0"), ("2", "grass", "0.7"),
    ]  # fmt: skip
    assert all(r["output"] and not r["error"] and r["finish_reason"] for r in rows)
