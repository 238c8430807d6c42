"""Issue 14 item 4: faults, through the real app (``python app.py`` as a subprocess).

The app's Connection is pointed (Gradio API: ``endpoint=``) at a scripted fake endpoint on
127.0.0.1 (tests/server/fake_endpoint.py) that refuses, hangs, drops mid-stream, sends
malformed SSE, says 503 "loading" or 429. Each call must end with a clear message (what
happened + what to do, no traceback) and keep the text streamed before the failure. Another
user's local request meanwhile completes normally. Nothing is left behind, counted: the app
process's threads (psutil, and by kind from its ``playground_threads`` gauge: no stream
puller may outlive its request), its TCP connections to the fake endpoint (psutil on the app
side, accepted-and-not-closed on the fake's side: the fake closes every connection after
its response, so any open one is the app's) and the engine's running/waiting gauges.

The app runs with ``PLAYGROUND_FAULTS=oom@N``: the fixture's first act is two local
requests whose batch runs out of memory at decode step N; they end with "ran out of
memory" after their partial text, and the engine keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from bench.soak import metrics as labelled_metrics
from bench.soak import own_threads
from tests.conftest import AppServer, start_app
from tests.server import fake_endpoint
from tests.server.fake_endpoint import REPLY, FakeEndpoint

pytestmark = pytest.mark.server

REMOTE_TIMEOUT_S = 2.0  # --remote-timeout: the fake's hang/stall lasts HANG_S (4 s)
OOM_STEP = 20  # PLAYGROUND_FAULTS=oom@20
RESULT_TIMEOUT_S = 60.0
SETTLE_S = 30.0  # bounded polls for threads and connections to come back
THREAD_SLACK = 2  # a pool thread may come or go between two counts
RUNNING, WAITING, FAILED = "playground_running", "playground_waiting", "playground_failed"
REQUESTS_FAILED = "playground_requests_failed_total"


def partial(chunks: int) -> str:
    return "".join(REPLY[:chunks])


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEndpoint]:
    endpoint = fake_endpoint.start(keep_alive=False)
    try:
        yield endpoint
    finally:
        fake_endpoint.stop(endpoint)


def _oom_stream_api(url: str, outcome: dict) -> None:
    """A long greedy chat over the local API's OpenAI SSE; records its text and error."""
    text, error = "", None
    body = {
        "model": "local",
        "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse."}],
        "max_tokens": 120,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{url}api/v1/chat/completions", json=body, timeout=60) as reply:
        for line in reply.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            event = json.loads(line.removeprefix("data:"))
            if "error" in event:
                error = event
            else:
                text += event["choices"][0]["delta"].get("content") or ""
    outcome.update(text=text, error=error)


def _oom_stream_gradio(client: Client, outcome: dict) -> None:
    job = client.submit(
        "Tell me a long story about a dragon.", max_tokens=120, temperature=0, api_name="/chat"
    )
    try:
        job.result(timeout=RESULT_TIMEOUT_S)
        error = None
    except AppError as exc:
        error = str(exc)
    outputs = [o for o in job.outputs() if o]
    outcome.update(text=outputs[-1] if outputs else "", error=error)


@pytest.fixture(scope="module")
def app(artifacts_dir: Path) -> Iterator[tuple[AppServer, dict]]:
    """The app with a 2 s remote timeout and an out-of-memory fault at decode step
    ``OOM_STEP``, which the two requests started here run into first thing."""
    with start_app(
        artifacts_dir / "app-server-faults.log",
        ("--remote-timeout", str(REMOTE_TIMEOUT_S), "--remote-load-wait", "1"),
        {"PLAYGROUND_FAULTS": f"oom@{OOM_STEP}"},
    ) as server:
        outcomes = {"api": {}, "gradio": {}}
        gradio = Client(server.url, verbose=False)  # connected first: both start together
        threads = [
            threading.Thread(target=_oom_stream_api, args=(server.url, outcomes["api"])),
            threading.Thread(target=_oom_stream_gradio, args=(gradio, outcomes["gradio"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=RESULT_TIMEOUT_S)
        gradio.close()
        yield server, outcomes


@pytest.fixture(scope="module")
def server(app) -> AppServer:
    return app[0]


@pytest.fixture(scope="module")
def client(server: AppServer) -> Iterator[Client]:
    client = Client(server.url, verbose=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def local_reference(client: Client) -> str:
    """The greedy local reply the "other user" must get, computed with nothing else running."""
    return client.predict("Say hello.", max_tokens=8, temperature=0, api_name="/chat")


@pytest.fixture
def refused_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- helpers -------------------------------------------------------------------------------


def call(client: Client, api_name: str, endpoint: str) -> tuple[str, str | None, str | None]:
    """One Gradio API call to ``endpoint``: (last streamed output, result, error message)."""
    args = ("Say hello",) if api_name == "/chat" else ("Once upon a time",)
    limit = {"max_tokens": 16} if api_name == "/chat" else {"max_new_tokens": 16}
    job = client.submit(*args, **limit, endpoint=endpoint, api_name=api_name)
    try:
        result, error = job.result(timeout=RESULT_TIMEOUT_S), None
    except AppError as exc:
        result, error = None, str(exc)
    outputs = [o for o in job.outputs() if o]
    return (outputs[-1] if outputs else ""), result, error


def app_connections(server: AppServer, port: int) -> list:
    """The app's TCP connections to ``port`` (TIME_WAIT ones belong to no process)."""
    process = psutil.Process(server.process.pid)
    return [c for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == port]


def threads(server: AppServer) -> int:
    return psutil.Process(server.process.pid).num_threads()


def settled(server: AppServer, fake: FakeEndpoint, thread_limit: int | None = None) -> dict:
    """Poll (bounded) until no connection to the fake is open on either side, the engine's
    gauges are 0 and, given ``thread_limit``, the app has at most that many threads."""
    port = fake.server.server_address[1]
    deadline = time.monotonic() + SETTLE_S
    while True:
        counts = labelled_metrics(server.url)
        facts = {
            "fake_open": fake.connections_open,
            "app_connections": len(app_connections(server, port)),
            "running": counts.get(RUNNING),
            "waiting": counts.get(WAITING),
            "threads": threads(server),
            "own_threads": own_threads(counts),  # by kind, pools left out
        }
        if (
            facts["fake_open"] == facts["app_connections"] == 0
            and facts["running"] == facts["waiting"] == 0
            and not facts["own_threads"].get("stream-pull")
            and (thread_limit is None or facts["threads"] <= thread_limit)
        ):
            return facts
        assert time.monotonic() < deadline, f"still held after {SETTLE_S:.0f} s: {facts}"
        time.sleep(0.1)


def assert_clear(error: str | None, *words: str) -> None:
    assert error, "expected an error message"
    assert "Traceback" not in error and 'File "' not in error, error
    for word in words:
        assert word.lower() in error.lower(), f"{word!r} not in {error!r}"


# -- the local engine running out of memory (injected) ---------------------------------------


def test_out_of_memory_mid_batch_keeps_partial_text_and_the_engine_serves_on(
    app, client: Client
) -> None:
    server, outcomes = app
    failed = [o for o in outcomes.values() if o.get("error")]
    assert failed, f"no request met the injected out-of-memory: {outcomes}"
    for name, outcome in outcomes.items():
        assert "text" in outcome, f"the {name} request did not finish: {outcome}"
        error = outcome["error"]
        if error is None:
            continue  # joined the batch after the fault's step: it ran to its end
        if name == "api":
            assert error["error_type"] == "generation"
            error = error["error"]
        assert_clear(error, "ran out of memory", "text so far is kept", "--max-batch-size")
        assert outcome["text"], f"the {name} request lost its partial text"
    counts = server.metrics()
    assert counts[FAILED] == 0  # the engine did not die
    assert counts[REQUESTS_FAILED] == len(failed)
    assert counts[RUNNING] == counts[WAITING] == 0
    # It keeps serving.
    assert client.predict("Say hello.", max_tokens=4, temperature=0, api_name="/chat")


# -- remote faults, one at a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_name", "behaviour", "kept", "words"),
    [
        ("/chat", "hang", 0, [f"did not answer within {REMOTE_TIMEOUT_S:g} s", "retry"]),
        ("/text_generation", "hang", 0, ["did not answer within", "retry"]),
        ("/chat", "drop-2", 2, ["broke off after 2 chunks", "text so far is kept"]),
        ("/text_generation", "drop-3", 3, ["broke off after 3 chunks", "text so far is kept"]),
        ("/chat", "stall-3", 3, [f"no data for {REMOTE_TIMEOUT_S:g} s", "text so far is kept"]),
        ("/chat", "badjson-2", 2, ["malformed reply", "check the url"]),
        ("/text_generation", "badjson-4", 4, ["malformed reply", "check the url"]),
        ("/chat", "garbage-2", 2, ["ended before the generation finished", "retry"]),
        ("/chat", "truncated-4", 4, ["ended before the generation finished", "retry"]),
        ("/text_generation", "truncated-1", 1, ["ended before the generation finished"]),
        ("/chat", "error-3", 3, ["CUDA out of memory", "retry"]),
        ("/chat", "429", 0, ["overloaded", "retry in a moment"]),
        ("/text_generation", "ratelimit", 0, ["rate limit", "retry"]),
        ("/chat", "loading-forever", 0, ["model is loading", "retry in a minute"]),
    ],
)
def test_remote_fault_is_explained_with_the_partial_text_kept(
    server, client, fake, api_name, behaviour, kept, words
) -> None:
    url = fake.url(behaviour)
    last, result, error = call(client, api_name, url)
    assert result is None, f"{behaviour} succeeded: {result!r}"
    assert_clear(error, url, *words)
    if kept:
        expected = partial(kept)
        if api_name == "/text_generation":
            assert last.endswith(expected), last
        else:
            assert last == expected
    settled(server, fake)


def test_connection_refused_is_explained(server, client, refused_url) -> None:
    for api_name in ("/chat", "/text_generation"):
        last, result, error = call(client, api_name, refused_url)
        assert result is None and last == ""
        assert_clear(error, f"Cannot connect to {refused_url}", "server is running")


@pytest.mark.parametrize("api_name", ["/chat", "/text_generation"])
def test_model_loading_then_ready_and_a_stream_without_done_succeed(
    server, client, fake, api_name
) -> None:
    fake.reset()
    for behaviour in ("loading-2", "nodone"):
        _, result, error = call(client, api_name, fake.url(behaviour))
        assert error is None, error
        assert result.endswith("".join(REPLY)), result
    settled(server, fake)


# -- other users are unaffected; nothing is left behind ------------------------------------


def _fault_round(client: Client, fake: FakeEndpoint, refused: str) -> list:
    """Every fault at once, plus an endless stream; returns their jobs."""
    behaviours = ["hang", "drop-2", "stall-3", "badjson-2", "garbage-2", "truncated-4", "429",
                  "loading-forever", "error-2"]  # fmt: skip
    jobs = [
        client.submit("Hi", max_tokens=16, endpoint=fake.url(b), api_name="/chat")
        for b in behaviours
    ]
    jobs.append(
        client.submit("Hi", max_new_tokens=16, endpoint=refused, api_name="/text_generation")
    )
    return jobs


def test_other_users_are_unaffected_and_nothing_is_left_behind(
    server, client, fake, refused_url, local_reference
) -> None:
    # Warm: pools (Gradio's, anyio's) grow to what this much concurrency needs.
    for job in _fault_round(client, fake, refused_url):
        with contextlib.suppress(AppError):
            job.result(timeout=RESULT_TIMEOUT_S)
    baseline = settled(server, fake)
    accepted = fake.connections_total

    # Round two, with a remote stream that never ends and a local user in the middle.
    endless = client.submit("Hi", max_tokens=16, endpoint=fake.url("endless"), api_name="/chat")
    jobs = _fault_round(client, fake, refused_url)
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while not endless.outputs():
        assert time.monotonic() < deadline, "the endless stream never started"
        time.sleep(0.05)
    local = client.submit("Say hello.", max_tokens=8, temperature=0, api_name="/chat")
    assert local.result(timeout=RESULT_TIMEOUT_S) == local_reference
    assert not endless.done(), "the endless remote stream ended while the local user ran"
    errors = []
    for job in jobs:
        with pytest.raises(AppError) as info:
            job.result(timeout=RESULT_TIMEOUT_S)
        errors.append(str(info.value))
    assert all("Traceback" not in e for e in errors)

    # Abandon the endless stream: the app must close its connection to the endpoint.
    fake.disconnected.clear()
    assert endless.cancel()
    assert fake.disconnected.wait(SETTLE_S), "the app kept reading a stream nobody wants"

    after = settled(server, fake, thread_limit=baseline["threads"] + THREAD_SLACK)
    assert fake.connections_total > accepted  # the round really reached the endpoint
    assert after["threads"] <= baseline["threads"] + THREAD_SLACK, (baseline, after)
    assert after["own_threads"] == baseline["own_threads"], (baseline, after)
    # The local engine: nothing running or waiting, nothing failed by the remote faults.
    counts = server.metrics()
    assert counts[RUNNING] == counts[WAITING] == counts[FAILED] == 0
