"""Per-visitor fairness on the real app: one browser session, one address and one API
client each get a bounded share, with a sentence saying what to do past it.

The app runs with ``--max-per-session 1 --max-per-address 2 --api-rate-limit 5/minute``
(what ``--public`` sets, with smaller numbers so a test reaches them) and one request
decoding at a time, so a long reply keeps its slot while the others ask. Every client is on
127.0.0.1: one address.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest
from gradio_client import Client

from tests.conftest import AppServer, start_app

LONG = dict(max_tokens=400, temperature=0)  # ~15 s on 2 cores: outlives the checks
RUNNING = "playground_running"  # GET /api/metrics: requests decoding now


@pytest.fixture(scope="module")
def limited(artifacts_dir) -> Iterator[AppServer]:
    args = (
        "--max-per-session", "1", "--max-per-address", "2",
        "--api-rate-limit", "5/minute", "--max-batch-size", "1",
    )  # fmt: skip
    with start_app(artifacts_dir / "app-server-limits.log", args) as server:
        yield server


def _streaming(client: Client, prompt: str):
    """A long chat job on ``client``, once its first words have arrived."""
    job = client.submit(prompt, **LONG, api_name="/chat")
    deadline = time.monotonic() + 120
    while not job.outputs():
        assert not job.done(), f"the long reply ended early: {job.exception()}"
        assert time.monotonic() < deadline, "no token within 120 s"
        time.sleep(0.05)
    return job


def _refusal(job) -> str:
    with pytest.raises(Exception) as refused:
        job.result(timeout=60)
    return str(refused.value)


def _wait_until_free(server: AppServer) -> None:
    """Poll until no request runs in the engine (the cancelled ones have left)."""
    deadline = time.monotonic() + 60
    while server.metrics().get(RUNNING, 0.0) > 0:
        assert time.monotonic() < deadline, "a cancelled reply kept its engine slot"
        time.sleep(0.05)


def test_one_session_gets_one_generation_at_a_time(limited) -> None:
    client = Client(limited.url, verbose=False)
    try:
        first = _streaming(client, "Write a long story about a lighthouse.")
        message = _refusal(client.submit("And another one.", max_tokens=4, api_name="/chat"))
        assert "already have 1 generation running in this browser session" in message
        assert "Stop" in message
        assert "Traceback" not in message
        first.cancel()
        _wait_until_free(limited)
        # The slot came back: the same session may generate again (bounded poll: the
        # cancelled stream's slot is released when its generator closes).
        deadline = time.monotonic() + 30
        while True:
            try:
                assert client.predict("Say hi.", max_tokens=3, api_name="/chat") is not None
                break
            except Exception as exc:
                assert "already have" in str(exc) and time.monotonic() < deadline, exc
                time.sleep(0.1)
    finally:
        client.close()


def test_one_address_gets_a_bounded_share_across_sessions(limited) -> None:
    clients = [Client(limited.url, verbose=False) for _ in range(3)]
    try:
        running = [
            _streaming(c, f"Tell a long tale number {i}.") for i, c in enumerate(clients[:2])
        ]
        message = _refusal(clients[2].submit("Hello?", max_tokens=4, api_name="/chat"))
        assert "Your address already has 2 generations running" in message
        for job in running:
            job.cancel()
        _wait_until_free(limited)
    finally:
        for client in clients:
            client.close()


def _post(url: str, body: dict) -> tuple[int, dict, Message]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def test_the_local_api_answers_tgi_429_past_its_rate(limited) -> None:
    url = f"{limited.url}api/generate"
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 1}}
    codes = [_post(url, body)[0] for _ in range(5)]
    assert codes == [200] * 5
    status, error, headers = _post(url, body)
    assert status == 429
    assert error["error_type"] == "overloaded"
    assert "Rate limit reached: at most 5 requests per minute" in error["error"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    with urllib.request.urlopen(f"{limited.url}api/health", timeout=10) as health:
        assert health.status == 200  # probes and reads are never limited
