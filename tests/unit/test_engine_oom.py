"""Issue 14 item 4: the transformers engine running out of memory mid-batch (injected with
``engine/faults.py``, as ``PLAYGROUND_FAULTS=oom@N`` does in the app) is recoverable, unlike
a worker death (tests/unit/test_engine_failure.py): the requests in the failing batch end
with a GenerationError that says "out of memory" and what to do, after the tokens they had
already streamed; their slots are freed; the same worker serves the next requests.

On the real bundled model.
"""

from __future__ import annotations

import threading

import pytest

from backends.errors import GenerationError
from backends.local.engine.faults import FaultPlan, is_out_of_memory
from backends.local.engine.queue import EngineEvent
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.transformers import TransformersEngine as Engine

pytestmark = pytest.mark.model

LONG = 200


def _collect(stream, tokens: list, errors: list) -> None:
    try:
        for event in stream:
            tokens.append(event.text)
    except Exception as exc:
        errors.append(exc)


def test_fault_plan_parsing() -> None:
    assert FaultPlan.parse(None).oom_steps == frozenset()
    assert FaultPlan.parse(" oom@3, oom@10 ").oom_steps == {3, 10}
    for bad in ("oom", "oom@0", "oom@x", "crash@3"):
        with pytest.raises(ValueError, match="PLAYGROUND_FAULTS"):
            FaultPlan.parse(bad)
    plan = FaultPlan.parse("oom@2")
    plan.before_decode()
    with pytest.raises(RuntimeError) as info:
        plan.before_decode()
    assert is_out_of_memory(info.value)
    plan.before_decode()  # once only


def test_is_out_of_memory() -> None:
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(
        RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory")
    )
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not a RuntimeError


def test_out_of_memory_mid_batch_fails_the_batch_and_the_engine_keeps_serving(
    loaded, tokenizer
) -> None:
    engine = Engine(loaded, max_batch_size=4, faults=FaultPlan.parse("oom@12"))
    events: list[EngineEvent] = []
    engine.queue.on_event = events.append
    try:
        worker = engine.queue._thread
        ids = tokenizer("Once upon a time").input_ids
        streams = [engine.submit(ids, SamplingParams(max_new_tokens=LONG)) for _ in range(3)]
        results = [([], []) for _ in streams]
        threads = [
            threading.Thread(target=_collect, args=(stream, *result))
            for stream, result in zip(streams, results, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
        for tokens, errors in results:
            (error,) = errors
            assert type(error) is GenerationError
            # Named, counted, with what to do; the tokens streamed before it are kept.
            assert error.message.startswith(
                f"The local model ran out of memory after {len(tokens)} generated tokens"
            )
            assert 0 < len(tokens) < LONG
            assert "--max-batch-size" in error.hint and "text so far is kept" in error.hint
            assert "Traceback" not in error.user_message()
        assert any("in a batch of" in errors[0].message for _, errors in results)
        # Slots freed, nothing marked failed, the same worker alive.
        assert engine.queue.in_flight == 0
        assert engine.queue.failure is None
        assert engine.queue._thread is worker and worker.is_alive()
        assert engine.stats()["running"] == engine.stats()["waiting"] == 0
        # The next requests are served normally (the fault was one step).
        events.clear()
        after = [engine.submit(ids, SamplingParams(max_new_tokens=8)) for _ in range(2)]
        for stream in after:
            tokens = [event.text for event in stream]
            assert len(tokens) == 8
        assert [e.kind for e in events].count("done") == 2
        assert engine.queue.in_flight == 0
    finally:
        engine.shutdown()


def test_out_of_memory_alone_names_no_batch(loaded, tokenizer) -> None:
    engine = Engine(loaded, max_batch_size=4, faults=FaultPlan.parse("oom@3"))
    try:
        ids = tokenizer("Hello").input_ids
        tokens, errors = [], []
        _collect(engine.submit(ids, SamplingParams(max_new_tokens=LONG)), tokens, errors)
        (error,) = errors
        assert error.message == (
            f"The local model ran out of memory after {len(tokens)} generated tokens."
        )
        assert len(tokens) == 3  # the prefill's token + 2 decode steps before the 3rd
        assert engine.queue.in_flight == 0
        assert [e.text for e in engine.submit(ids, SamplingParams(max_new_tokens=4))]
    finally:
        engine.shutdown()
