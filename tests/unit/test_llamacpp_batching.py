"""Continuous batching in the llama.cpp engine, on the bundled GGUF.

As for the transformers engine (``test_batching.py``), every expectation is a reference run
of the same request alone on the same engine, never a hard-coded output, and who ran
together is read from the engine's own record (``EngineEvent``s, ``stats()``, the
``llama_decode`` calls it makes), never inferred from timing. Generations are short.
"""

from __future__ import annotations

import re

import pytest

from backends.local.engine.grammar import compile_grammar
from backends.local.engine.llamacpp import LlamaCppEngine, llamacpp_available
from backends.local.engine.queue import EngineEvent
from backends.local.engine.sampling import SamplingParams
from backends.local.model import bundled_gguf, load_tokenizer_only, resolve_model
from tests.unit.test_batching import LOGPROB_TOLERANCE, PROMPTS, alone, exact, logprobs, together

pytestmark = pytest.mark.skipif(
    not llamacpp_available(), reason="llama-cpp-python is not installed (`make setup-fast`)"
)

LONG = 400  # far more tokens than any test waits for


@pytest.fixture(scope="module")
def source():
    return resolve_model(str(bundled_gguf()))


@pytest.fixture(scope="module")
def loaded(source):
    return load_tokenizer_only(source)


@pytest.fixture
def engine_events() -> list[EngineEvent]:
    return []


@pytest.fixture
def make_engine(loaded, source, engine_events):
    """llama.cpp engines on the bundled GGUF (a small KV cache), shut down after the test;
    each counts its ``llama_decode`` calls in ``engine.steps``."""
    engines: list[LlamaCppEngine] = []

    def make(**options) -> LlamaCppEngine:
        options.setdefault("n_ctx", 2048)
        engine = LlamaCppEngine(loaded, source.location, **options)
        engine.queue.on_event = engine_events.append
        engine.steps = []  # the sequence ids of every decode call, in order
        decode = engine._context.decode

        def counted(tokens, positions, seqs, wants):
            engine.steps.append(list(seqs))
            return decode(tokens, positions, seqs, wants)

        engine._context.decode = counted
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown()


def admissions(events: list[EngineEvent]) -> list[int]:
    return [e.facts["running"] for e in events if e.kind == "admitted"]


def test_concurrent_requests_each_get_what_they_get_alone(make_engine, loaded, engine_events):
    tokenizer = loaded.tokenizer
    engine = make_engine()
    regex = compile_grammar(
        tokenizer,
        {"type": "regex", "value": "[0-9]{3}-[a-z]{2,5}"},
        eos_token_ids=loaded.eos_token_ids,
    )
    stop_ids = tokenizer(PROMPTS[6]).input_ids
    reference = alone(engine, stop_ids, SamplingParams(max_new_tokens=16))
    stop = reference[4].text
    assert stop.strip()
    requests = [
        (PROMPTS[0], SamplingParams(max_new_tokens=10)),
        (PROMPTS[1], SamplingParams(max_new_tokens=9, temperature=0.7, top_k=20, seed=1)),
        (PROMPTS[2], SamplingParams(max_new_tokens=12, temperature=0.7, top_p=0.9, seed=2)),
        (PROMPTS[3], SamplingParams(max_new_tokens=8, repetition_penalty=1.3,
                                    frequency_penalty=0.5)),
        (PROMPTS[4], SamplingParams(max_new_tokens=16, do_sample=True, seed=3, grammar=regex)),
        (PROMPTS[5], SamplingParams(max_new_tokens=6, top_n_tokens=3, prefill_details=True)),
        (PROMPTS[6], SamplingParams(max_new_tokens=16, stop=(stop,))),
        (PROMPTS[0], SamplingParams(max_new_tokens=10, do_sample=True, typical_p=0.5, seed=4)),
    ]  # fmt: skip
    requests = [(tokenizer(prompt).input_ids, params) for prompt, params in requests]
    expected = [alone(engine, ids, params) for ids, params in requests]
    assert expected[6][-1].finish_reason == "stop_sequence"
    assert re.fullmatch("[0-9]{3}-[a-z]{2,5}", expected[4][-1].generated_text)
    before, steps_before = len(admissions(engine_events)), len(engine.steps)

    got = together(engine, requests)

    assert max(admissions(engine_events)[before:]) == len(requests)
    # Several sequences really shared llama_decode calls.
    assert max(len(set(seqs)) for seqs in engine.steps[steps_before:]) == len(requests)
    for want, have in zip(expected, got, strict=True):
        assert exact(have) == exact(want)
        assert logprobs(have) == pytest.approx(logprobs(want), abs=LOGPROB_TOLERANCE)


def test_a_request_joins_while_another_decodes(make_engine, loaded, engine_events):
    tokenizer = loaded.tokenizer
    engine = make_engine()
    long = engine.submit(tokenizer(PROMPTS[0]).input_ids, SamplingParams(max_new_tokens=LONG))
    long_events = iter(long)
    for _ in range(3):
        next(long_events)
    short = engine.submit(tokenizer(PROMPTS[1]).input_ids, SamplingParams(max_new_tokens=3))
    assert [e.index for e in short] == [1, 2, 3]  # served while the long one runs
    assert next(long_events).finish_reason is None  # which has not finished
    assert admissions(engine_events) == [1, 2]
    long.close()
    list(long_events)


def test_cancel_frees_the_sequence_within_one_step(make_engine, loaded, engine_events):
    tokenizer = loaded.tokenizer
    engine = make_engine(max_batch_size=2)
    first = engine.submit(tokenizer(PROMPTS[0]).input_ids, SamplingParams(max_new_tokens=LONG))
    second = engine.submit(tokenizer(PROMPTS[1]).input_ids, SamplingParams(max_new_tokens=LONG))
    first_events, second_events = iter(first), iter(second)
    next(first_events), next(second_events)
    short = engine.submit(tokenizer(PROMPTS[2]).input_ids, SamplingParams(max_new_tokens=4))
    assert (engine.stats()["running"], engine.stats()["waiting"]) == (2, 1)
    next(first_events)
    received = 2
    steps_at_cancel: list[int] = []  # llama_decode calls made when the engine dropped it

    def observe(event: EngineEvent) -> None:
        engine_events.append(event)
        if event.kind == "cancelled":
            steps_at_cancel.append(len(engine.steps))

    engine.queue.on_event = observe
    steps_at_close = len(engine.steps)
    first.close()
    received += len(list(first_events))
    events = list(short)  # the cancelled sequence's id went to it
    assert events[-1].finish_reason == "length" and len(events) == 4
    cancelled = [e.facts["tokens"] for e in engine_events if e.kind == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0] == received
    # Dropped within one step of close(): at most one llama_decode in between.
    assert steps_at_cancel[0] - steps_at_close <= 1
    # The short request's prompt went in with the freed sequence id beside the other one.
    prefill = next(seqs for seqs in engine.steps[steps_at_close:] if len(seqs) > 2)
    assert len(set(prefill)) == 2
    assert next(second_events).finish_reason is None
    second.close()
    list(second_events)
    assert engine.stats()["running"] == 0 or engine.queue.in_flight == 0


def test_prompt_logprobs_in_chunks_between_decode_steps(make_engine, loaded):
    """A long prompt prefilled in chunks while another sequence decodes: its prompt
    logprobs and tokens are those of the same request alone."""
    tokenizer = loaded.tokenizer
    engine = make_engine(n_batch=16)
    ids = tokenizer(" ".join(PROMPTS)).input_ids
    assert len(ids) > 40
    params = SamplingParams(max_new_tokens=4, prefill_details=True, top_n_tokens=2)
    want = alone(engine, ids, params)
    running = engine.submit(tokenizer(PROMPTS[0]).input_ids, SamplingParams(max_new_tokens=LONG))
    running_events = iter(running)
    next(running_events)
    steps_before = len(engine.steps)
    have = alone(engine, ids, params)
    chunked = [s for s in engine.steps[steps_before:] if len(s) > 2]
    assert len(chunked) >= 3  # the prompt went in several chunks, beside the running row
    assert exact(have) == exact(want) or [e.id for e in have] == [e.id for e in want]
    for a, b in zip(want[0].prefill[1:], have[0].prefill[1:], strict=True):
        assert a[:2] == b[:2] and a[2] == pytest.approx(b[2], abs=1e-2)
    running.close()
    list(running_events)
