"""Continuous batching in the local engine, on the real bundled model.

Every expectation is a reference run of the same request alone on the same engine (a batch
of one), never a hard-coded output. Who ran together is read from the engine's own record
(its "request admitted: N running" debug lines, ``stats()``, and the forward passes it
makes), never inferred from timing.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from backends.errors import GenerationError, OverloadedError, UnavailableError
from backends.local.engine.grammar import GrammarError, compile_grammar
from backends.local.engine.queue import EngineEvent
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.sequence import TokenEvent
from backends.local.engine.transformers import TransformersEngine as Engine

pytestmark = pytest.mark.model

PROMPTS = [
    "Once upon a time",
    "The capital of France is",
    "def fibonacci(n):",
    "Q: What is 2+2?\nA:",
    "Write a haiku about the sea. Here it is:",
    "A recipe for pancakes: first, take",
    "In 1492, Columbus sailed across the ocean and",
]
LONG = 400  # far more tokens than any test waits for


@pytest.fixture
def engine_events() -> list[EngineEvent]:
    """Every EngineEvent of the engines ``make_engine`` builds, in order."""
    return []


@pytest.fixture
def make_engine(loaded, engine_events):
    """Build engines on the shared model; shut them all down after the test."""
    engines: list[Engine] = []

    def make(**kwargs) -> Engine:
        engines.append(Engine(kwargs.pop("loaded", loaded), **kwargs))
        engines[-1].queue.on_event = engine_events.append
        return engines[-1]

    yield make
    for engine in engines:
        engine.shutdown()


@pytest.fixture
def admissions(engine_events):
    """The batch size after each admission, from the engines' events."""

    def sizes() -> list[int]:
        return [e.facts["running"] for e in engine_events if e.kind == "admitted"]

    return sizes


def ids_of(tokenizer, prompt: str) -> list[int]:
    return tokenizer(prompt).input_ids


def alone(engine: Engine, ids: list[int], params: SamplingParams) -> list[TokenEvent]:
    with engine.submit(ids, params) as stream:
        return list(stream)


def together(engine: Engine, requests: list[tuple[list[int], SamplingParams]]):
    """Submit every request before reading any, then read each stream to its end."""
    streams = [engine.submit(ids, params) for ids, params in requests]
    try:
        return [list(stream) for stream in streams]
    finally:
        for stream in streams:
            stream.close()


def exact(events: list[TokenEvent]) -> list[tuple]:
    """What must be identical alone and in a batch: tokens, text, finish, seed, the top
    alternatives' ids and the prompt's tokens and logprobs (the prompt is prefilled alone)."""
    return [
        (
            e.index,
            e.id,
            e.text,
            e.special,
            e.finish_reason,
            e.generated_text,
            e.seed,
            [t[:2] for t in e.top_tokens or []],
            e.prefill,
        )
        for e in events
    ]


def logprobs(events: list[TokenEvent]) -> list[float]:
    return [e.logprob for e in events] + [t[2] for e in events for t in e.top_tokens or []]


# Logprobs of generated tokens come from a forward pass over the whole batch: the matrix
# products of a batch of 8 and of 1 add in a different order (different BLAS kernels), so
# they agree to ~1e-5, not bit for bit (up to ~1e-3 seen where top_p's cut lands next to a
# token's probability). Tokens must agree exactly; another row's logprobs would be far off.
LOGPROB_TOLERANCE = 1e-2


def test_concurrent_requests_each_get_what_they_get_alone(make_engine, loaded, admissions):
    tokenizer = loaded.tokenizer
    engine = make_engine()
    regex = compile_grammar(
        tokenizer,
        {"type": "regex", "value": "[0-9]{3}-[a-z]{2,5}"},
        eos_token_ids=loaded.eos_token_ids,
    )
    stop_prompt = ids_of(tokenizer, PROMPTS[6])
    reference = alone(engine, stop_prompt, SamplingParams(max_new_tokens=20))
    stop = reference[4].text  # a word the greedy answer reaches after a few tokens
    assert stop.strip()
    requests = [
        (PROMPTS[0], SamplingParams(max_new_tokens=12)),
        (PROMPTS[1], SamplingParams(max_new_tokens=9, temperature=0.7, top_k=20, seed=1)),
        (PROMPTS[2], SamplingParams(max_new_tokens=14, temperature=1.3, top_p=0.9, seed=2)),
        (
            PROMPTS[3],
            SamplingParams(max_new_tokens=10, repetition_penalty=1.3, frequency_penalty=0.5),
        ),
        (PROMPTS[4], SamplingParams(max_new_tokens=16, do_sample=True, seed=3, grammar=regex)),
        (PROMPTS[5], SamplingParams(max_new_tokens=8, top_n_tokens=3, prefill_details=True)),
        (PROMPTS[6], SamplingParams(max_new_tokens=20, stop=(stop,))),
        (PROMPTS[0], SamplingParams(max_new_tokens=11, do_sample=True, typical_p=0.5, seed=4)),
    ]
    requests = [(ids_of(tokenizer, prompt), params) for prompt, params in requests]
    expected = [alone(engine, ids, params) for ids, params in requests]
    assert expected[6][-1].finish_reason == "stop_sequence"  # the stop mattered
    assert re.fullmatch("[0-9]{3}-[a-z]{2,5}", expected[4][-1].generated_text)
    before = len(admissions())

    got = together(engine, requests)

    assert max(admissions()[before:]) == len(requests)  # all eight decoded side by side
    for want, have in zip(expected, got, strict=True):
        assert exact(have) == exact(want)
        assert logprobs(have) == pytest.approx(logprobs(want), abs=LOGPROB_TOLERANCE)


def test_batched_greedy_equals_greedy_alone(make_engine, loaded, admissions):
    """Prompts of different lengths (so rows are padded) and lengths (so rows leave at
    different steps and the batch is trimmed while others keep going)."""
    tokenizer = loaded.tokenizer
    engine = make_engine()
    requests = [
        (ids_of(tokenizer, prompt), SamplingParams(max_new_tokens=6 + 3 * i))
        for i, prompt in enumerate(PROMPTS)
    ]
    expected = [[e.id for e in alone(engine, ids, params)] for ids, params in requests]
    before = len(admissions())
    got = [[e.id for e in events] for events in together(engine, requests)]
    assert max(admissions()[before:]) == len(requests)
    assert got == expected


def test_a_cancelled_request_leaves_and_a_waiting_one_takes_its_slot(
    make_engine, loaded, engine_events, admissions
):
    tokenizer = loaded.tokenizer
    engine = make_engine(max_batch_size=2)
    first = engine.submit(ids_of(tokenizer, PROMPTS[0]), SamplingParams(max_new_tokens=LONG))
    second = engine.submit(ids_of(tokenizer, PROMPTS[1]), SamplingParams(max_new_tokens=LONG))
    first_events, second_events = iter(first), iter(second)
    next(first_events), next(second_events)  # both are decoding
    short = engine.submit(ids_of(tokenizer, PROMPTS[2]), SamplingParams(max_new_tokens=4))
    stats = engine.stats()
    assert (stats["running"], stats["waiting"]) == (2, 1)  # the batch is full: it waits

    first.close()
    assert len(list(first_events)) < LONG  # ended at the close
    events = list(short)  # it ran: the cancelled request's slot went to it

    assert events[-1].finish_reason == "length" and len(events) == 4
    still = next(second_events)  # the other long request never stopped
    assert still.finish_reason is None
    assert engine.stats()["running"] == 1
    cancelled = [e.facts["tokens"] for e in engine_events if e.kind == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0] < LONG
    assert admissions() == [1, 2, 2]  # the short one joined a batch of two: the freed slot
    second.close()
    list(second_events)


def test_max_batch_size_bounds_the_running_requests(make_engine, loaded, admissions):
    tokenizer = loaded.tokenizer
    engine = make_engine(max_batch_size=2)
    requests = [(ids_of(tokenizer, p), SamplingParams(max_new_tokens=5)) for p in PROMPTS[:4]]
    results = together(engine, requests)
    assert [events[-1].finish_reason for events in results] == ["length"] * 4
    sizes = admissions()
    assert len(sizes) == 4 and max(sizes) == 2  # all four ran, never more than two at once
    stats = engine.stats()
    assert (stats["running"], stats["waiting"], stats["max_batch_size"]) == (0, 0, 2)


def test_the_token_budget_makes_requests_wait(make_engine, loaded, admissions):
    tokenizer = loaded.tokenizer
    ids = ids_of(tokenizer, PROMPTS[0])
    # A request reserves its prompt + max_new_tokens: room for one, not two.
    engine = make_engine(max_batch_tokens=2 * (len(ids) + 4) - 1)
    results = together(engine, [(ids, SamplingParams(max_new_tokens=4))] * 3)
    assert [events[-1].finish_reason for events in results] == ["length"] * 3
    assert admissions() == [1, 1, 1]


def test_past_the_queue_bound_requests_are_overloaded(make_engine, loaded):
    tokenizer = loaded.tokenizer
    engine = make_engine(max_queue=3, max_batch_size=1)
    ids = ids_of(tokenizer, PROMPTS[0])
    streams = [engine.submit(ids, SamplingParams(max_new_tokens=LONG)) for _ in range(3)]
    try:
        with pytest.raises(OverloadedError, match="busy") as info:
            engine.submit(ids, SamplingParams(max_new_tokens=1))
        assert (info.value.status_code, info.value.error_type) == (429, "overloaded")
        assert engine.stats()["running"] + engine.stats()["waiting"] == 3
    finally:
        for stream in streams:
            stream.close()
        for stream in streams:
            list(stream)
    assert engine.queue.in_flight == 0


class _Recording:
    """The model, with the shape of every ``input_ids`` it is called with."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, **kwargs):
        self.calls.append(tuple(kwargs["input_ids"].shape))
        return self.model(**kwargs)


def test_a_long_prompt_is_prefilled_in_chunks_between_decode_steps(make_engine, loaded):
    tokenizer = loaded.tokenizer
    recording = _Recording(loaded.model)
    engine = make_engine(loaded=dataclasses.replace(loaded, model=recording), prefill_chunk=16)
    running = engine.submit(ids_of(tokenizer, PROMPTS[0]), SamplingParams(max_new_tokens=LONG))
    running_events = iter(running)
    next(running_events)
    prompt = ids_of(tokenizer, " ".join(PROMPTS))
    # Several chunks, and a last one longer than a decode step's single token.
    assert len(prompt) > 3 * 16 and len(prompt) % 16 != 1
    params = SamplingParams(max_new_tokens=6, prefill_details=True)
    start = len(recording.calls)
    chunked = alone(engine, prompt, params)
    running.close()
    list(running_events)

    calls = recording.calls[start:]
    chunks = [i for i, shape in enumerate(calls) if shape[0] == 1 and shape[1] > 1]
    assert [calls[i] for i in chunks][:3] == [(1, 16)] * 3
    assert sum(calls[i][1] for i in chunks) == len(prompt)
    # The running stream decoded between every two chunks of the long prompt.
    assert all((1, 1) in calls[a:b] for a, b in zip(chunks, chunks[1:], strict=False))

    whole = alone(make_engine(), prompt, params)  # one prefill pass (512 > prompt)
    assert [e.id for e in chunked] == [e.id for e in whole]
    assert [p[:2] for p in chunked[0].prefill] == [p[:2] for p in whole[0].prefill]
    assert [p[2] for p in chunked[0].prefill[1:]] == pytest.approx(
        [p[2] for p in whole[0].prefill[1:]], abs=LOGPROB_TOLERANCE
    )


class _FailingGrammar:
    """A grammar whose mask fails on the third token (one sequence's own failure)."""

    def __init__(self) -> None:
        self.calls = 0

    def new_state(self):
        return self

    def mask(self, scores):
        self.calls += 1
        if self.calls == 3:
            raise GrammarError("broken on purpose")
        return scores

    def advance(self, token_id: int) -> None:
        pass


def test_a_failing_request_leaves_the_others_running(make_engine, loaded, admissions):
    tokenizer = loaded.tokenizer
    engine = make_engine()
    good = (ids_of(tokenizer, PROMPTS[1]), SamplingParams(max_new_tokens=8))
    expected = alone(engine, *good)
    before = len(admissions())
    broken = engine.submit(
        ids_of(tokenizer, PROMPTS[0]), SamplingParams(max_new_tokens=8, grammar=_FailingGrammar())
    )
    kept = engine.submit(*good)
    with pytest.raises(GenerationError, match="broken on purpose"):
        list(broken)
    assert exact(list(kept)) == exact(expected)
    assert max(admissions()[before:]) == 2
    assert engine.queue.in_flight == 0


class _FailsInBatches(_Recording):
    """The model, failing every forward pass over more than one row."""

    def __call__(self, **kwargs):
        if kwargs["input_ids"].shape[0] > 1:
            raise RuntimeError("batched pass failed on purpose")
        return super().__call__(**kwargs)


def test_a_failing_batch_pass_fails_its_rows_and_the_engine_goes_on(make_engine, loaded):
    tokenizer = loaded.tokenizer
    model = _FailsInBatches(loaded.model)
    engine = make_engine(loaded=dataclasses.replace(loaded, model=model))
    requests = [(ids_of(tokenizer, p), SamplingParams(max_new_tokens=LONG)) for p in PROMPTS[:2]]
    streams = [engine.submit(ids, params) for ids, params in requests]
    for stream in streams:  # both got their first token (prefilled alone), then failed
        with pytest.raises(GenerationError, match="batched pass failed on purpose"):
            list(stream)
    after = alone(engine, ids_of(tokenizer, PROMPTS[2]), SamplingParams(max_new_tokens=3))
    assert after[-1].finish_reason == "length"
    assert engine.queue.in_flight == 0


def test_a_broken_batch_fails_the_requests_in_it_once(make_engine, loaded, monkeypatch):
    """When the batch itself breaks (here: dropping a finished row), the requests still in
    it fail; one that had just finished keeps its result and is counted out once."""
    from backends.local.engine.kv_batch import KVBatch

    def broken_keep(self, rows):
        raise RuntimeError("the batch broke on purpose")

    tokenizer = loaded.tokenizer
    engine = make_engine()
    monkeypatch.setattr(KVBatch, "keep", broken_keep)
    short = engine.submit(ids_of(tokenizer, PROMPTS[0]), SamplingParams(max_new_tokens=3))
    long = engine.submit(ids_of(tokenizer, PROMPTS[1]), SamplingParams(max_new_tokens=LONG))
    assert list(short)[-1].finish_reason == "length"
    with pytest.raises(GenerationError, match="the batch broke on purpose"):
        list(long)
    assert engine.queue.in_flight == 0
    monkeypatch.undo()
    after = alone(engine, ids_of(tokenizer, PROMPTS[2]), SamplingParams(max_new_tokens=3))
    assert after[-1].finish_reason == "length"
    assert engine.queue.in_flight == 0


def test_shutdown_ends_the_streams_in_flight(make_engine, loaded):
    ids = ids_of(loaded.tokenizer, PROMPTS[0])
    engine = make_engine(max_batch_size=1)
    running = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
    waiting = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
    next(iter(running))  # it is decoding; the other one waits
    engine.shutdown()
    for stream in (running, waiting):
        # Read what is queued now, without blocking: once shutdown() has returned, each
        # stream must already end with the reason (a consumer never waits forever).
        events = stream._request.events
        items = [events.get_nowait() for _ in range(events.qsize())]
        errors = [item for item in items if isinstance(item, BaseException)]
        assert len(errors) == 1 and items[-2] is errors[0]  # the reason, then the end
        assert isinstance(errors[0], UnavailableError) and "shut down" in str(errors[0])
    with pytest.raises(UnavailableError, match="shut down"):
        engine.submit(ids, SamplingParams(max_new_tokens=1))
    assert engine.queue.in_flight == 0
