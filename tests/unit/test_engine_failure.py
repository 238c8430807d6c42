"""Issue 12: a dying engine is never silent. When the engine's worker loop itself breaks
(an exception that escapes it), every waiting and running request ends with a 503
``unavailable`` naming the reason, every later request is refused the same way, the backend's
status turns ``failed`` (the page banner turns red) and ``/api/health`` answers 503.

Both engines run for real on the bundled model; the break is injected into the worker's
step, as a bug or a fault below Python would surface.
"""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import mount_api
from backends.errors import UnavailableError
from backends.local.backend import LocalBackend
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.transformers import TransformersEngine as Engine
from backends.local.model import bundled_gguf

pytestmark = pytest.mark.model

LONG = 500


class WorkerBroke(BaseException):
    """Escapes the engines' per-request ``except Exception``: the loop itself dies."""


def _wait_until(condition, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _break_worker(engine, method: str, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise WorkerBroke("worker step exploded")

    monkeypatch.setattr(engine, method, broken)


def _backend_over(engine, loaded, name: str) -> LocalBackend:
    """A LocalBackend serving ``engine`` (already built on the shared model)."""
    backend = LocalBackend(str(bundled_gguf()), engine=name)
    backend._loaded, backend._engine, backend.engine_name = loaded, engine, name
    backend._message = "ready"
    backend._ready.set()
    return backend


def _assert_dead(backend: LocalBackend, engine) -> None:
    # Later requests: refused at once with the reason (503 unavailable), never queued.
    with pytest.raises(UnavailableError, match="The local engine stopped: WorkerBroke"):
        engine.submit([1, 2, 3], SamplingParams(max_new_tokens=2))
    with pytest.raises(UnavailableError, match="worker step exploded"):
        backend.text_generation("Hello", max_new_tokens=2)
    status = backend.status()
    assert status.state == "failed"
    assert status.message.startswith(
        "The local engine stopped: WorkerBroke: worker step exploded. Restart the app"
    )
    assert not backend.health_check()
    app = FastAPI()
    mount_api(app, backend)
    with TestClient(app) as client:
        health = client.get("/api/health")
        assert health.status_code == 503
        assert health.json() == {"error": status.message, "error_type": "unavailable"}
        generate = client.post("/api/generate", json={"inputs": "Hi"})
        assert generate.status_code == 503
        assert generate.json()["error_type"] == "unavailable"


def test_transformers_worker_death_fails_running_waiting_and_later_requests(
    loaded, tokenizer, monkeypatch
) -> None:
    engine = Engine(loaded, max_batch_size=1)  # one runs, the second waits
    try:
        ids = tokenizer("Once upon a time").input_ids
        running = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
        events = iter(running)
        next(events)  # it is decoding
        waiting = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
        _wait_until(lambda: engine.queue.waiting == 1)
        _break_worker(engine, "_decode", monkeypatch)
        with pytest.raises(UnavailableError, match="worker step exploded"):
            for _ in events:
                pass
        with pytest.raises(UnavailableError, match="worker step exploded"):
            list(waiting)
        assert engine.queue.in_flight == 0
        _assert_dead(_backend_over(engine, loaded, "transformers"), engine)
    finally:
        engine.shutdown()


def test_llamacpp_worker_death_fails_running_waiting_and_later_requests(monkeypatch) -> None:
    from backends.local.engine.llamacpp import LlamaCppEngine, llamacpp_available
    from backends.local.model import load_tokenizer_only, resolve_model

    if not llamacpp_available():
        pytest.skip("llama-cpp-python is not installed (make setup-fast)")
    source = resolve_model(str(bundled_gguf()))
    loaded = load_tokenizer_only(source)
    # One runs, the second waits (a batch of one), as for the transformers engine above.
    engine = LlamaCppEngine(loaded, source.location, max_queue=8, max_batch_size=1, n_ctx=1024)
    try:
        ids = loaded.tokenizer("Once upon a time").input_ids
        running = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
        events = iter(running)
        next(events)
        waiting = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
        _wait_until(lambda: engine.queue.waiting == 1)
        _break_worker(engine, "_step", monkeypatch)  # the loop itself breaks
        with pytest.raises(UnavailableError, match="worker step exploded"):
            for _ in events:
                pass
        with pytest.raises(UnavailableError, match="worker step exploded"):
            list(waiting)
        assert engine.queue.in_flight == 0
        _assert_dead(_backend_over(engine, loaded, "llama.cpp"), engine)
    finally:
        engine.shutdown()
