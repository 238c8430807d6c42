"""Issue 14 item 4: a model that fails to load, through the real app (``python app.py``).

A ``--model`` that names nothing makes the app exit at once with one line naming it and what
to do. A model that is there but broken (a directory whose config.json is garbage, a
truncated GGUF) is loaded in the background: the app keeps serving its page, says why in
``/api/health`` (503) and in every generation's error, in one line with the model named and
the way out, and its log holds no traceback (the stack trace is logged at DEBUG only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from backends.local.model import bundled_gguf
from tests.conftest import _SHELL_SETTINGS, REPO_ROOT, _free_port

pytestmark = pytest.mark.server

DEADLINE_S = 120.0
WAY_OUT = "Point --model (or PLAYGROUND_MODEL) at"


def _env(model: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SHELL_SETTINGS}
    env.update(
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
        PLAYGROUND_ENGINE="transformers",
        PLAYGROUND_MODEL=model,
    )
    return env


def _start(model: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=_env(model),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}/"


def _health(url: str) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"{url}api/health", timeout=5) as response:
            return response.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def test_a_model_path_that_does_not_exist_exits_with_one_clear_line(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    missing = tmp_path / "missing-model.gguf"
    log_path = artifacts_dir / "app-server-missing-model.log"
    process, _ = _start(str(missing), log_path)
    try:
        code = process.wait(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            _stop(process)
    output = log_path.read_text(errors="replace")
    assert code != 0
    assert "Traceback" not in output, output
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"Cannot serve --model {missing}: GGUF file not found: {missing}")
    assert WAY_OUT in last


def _broken_dir(root: Path) -> Path:
    model = root / "broken-model"
    model.mkdir()
    (model / "config.json").write_text("{this is not json")
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    return model


def _truncated_gguf(root: Path) -> Path:
    model = root / "truncated.gguf"
    with bundled_gguf().open("rb") as source:
        model.write_bytes(source.read(1 << 20))  # the header and the start of the tensors
    return model


@pytest.mark.parametrize("make", [_broken_dir, _truncated_gguf], ids=["bad-config", "truncated"])
def test_a_broken_model_is_reported_in_one_line_and_the_app_keeps_serving(
    tmp_path: Path, artifacts_dir: Path, make
) -> None:
    model = make(tmp_path)
    log_path = artifacts_dir / f"app-server-{model.stem}.log"
    process, url = _start(str(model), log_path)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            answer = _health(url)
            if answer and answer[0] == 503 and WAY_OUT in answer[1].get("error", ""):
                break
            assert time.monotonic() < deadline, f"no load failure reported: {answer}"
            time.sleep(0.25)
        error = answer[1]
        assert error["error_type"] == "unavailable"
        message = error["error"]
        assert "\n" not in message and len(message) < 600, message
        assert model.stem in message  # the model is named
        assert "Traceback" not in message
        # A generation says the same; the page itself is served.
        client = Client(url, verbose=False)
        try:
            with pytest.raises(AppError) as info:
                client.predict("Hi", max_tokens=2, api_name="/chat")
            assert str(info.value) == message
        finally:
            client.close()
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
        output = log_path.read_text(errors="replace")  # before the shutdown's own lines
    finally:
        _stop(process)
    assert "Traceback" not in output, output[-3000:]
    assert WAY_OUT in output  # the one line for the operator
