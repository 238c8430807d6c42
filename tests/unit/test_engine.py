"""The local engine and LocalBackend on the real bundled model (SmolLM2-135M, greedy unless
said). Generations are kept to a few tokens; expectations that depend on what the model
says are derived from a reference generation in the same test, never hard-coded."""

from __future__ import annotations

import time

import pytest
from huggingface_hub import ChatCompletionOutput, TextGenerationOutput

from backends.errors import GenerationError, InputValidationError, OverloadedError
from backends.local.engine.queue import TokenStream
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.sequence import TokenEvent
from backends.local.engine.transformers import TransformersEngine as Engine
from backends.local.model import LoadedModel

pytestmark = pytest.mark.model

PROMPT = "Once upon a time"
FACT_PROMPT = "The capital of France is"
COUNT = [{"role": "user", "content": "Count from 1 to 10."}]
LONG = 500  # far more tokens than any test waits for


def generate(engine: Engine, tokenizer, prompt: str = PROMPT, **params) -> list[TokenEvent]:
    stream = engine.submit(tokenizer(prompt).input_ids, SamplingParams(**params))
    with stream:
        return list(stream)


def wait_until_idle(engine: Engine, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while engine.queue.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.queue.in_flight == 0


@pytest.fixture
def submitted(engine, monkeypatch) -> list[TokenStream]:
    """Every ``TokenStream`` the backend gets from the engine during the test."""
    streams: list[TokenStream] = []
    real_submit = engine.submit

    def spy(*args, **kwargs):
        streams.append(real_submit(*args, **kwargs))
        return streams[-1]

    monkeypatch.setattr(engine, "submit", spy)
    yield streams
    for stream in streams:  # never leave a long request running for the next test
        stream.close()
    wait_until_idle(engine)


# -- streaming events ----------------------------------------------------------------------


def test_stream_yields_token_events_and_a_final_summary(engine, tokenizer):
    events = generate(engine, tokenizer, max_new_tokens=8)
    assert [e.index for e in events] == list(range(1, 9))
    assert all(e.finish_reason is None and e.generated_text is None for e in events[:-1])
    last = events[-1]
    assert last.finish_reason == "length"
    assert last.generated_text == "".join(e.text for e in events if not e.special)
    assert last.generated_text.strip()
    assert {e.input_length for e in events} == {len(tokenizer(PROMPT).input_ids)}
    assert all(e.logprob <= 0.0 for e in events)
    assert last.seed is None  # greedy


def test_greedy_is_deterministic(engine, tokenizer):
    first = generate(engine, tokenizer, max_new_tokens=8)
    second = generate(engine, tokenizer, max_new_tokens=8)
    assert [e.id for e in first] == [e.id for e in second]
    assert first[-1].generated_text == second[-1].generated_text


def _sampled(engine, tokenizer, seed: int | None) -> TokenEvent:
    return generate(
        engine, tokenizer, max_new_tokens=8, do_sample=True, temperature=1.0, seed=seed
    )[-1]


def test_same_seed_same_text_different_seed_differs(engine, tokenizer):
    a, b, c = (_sampled(engine, tokenizer, seed) for seed in (1, 1, 2))
    assert a.generated_text == b.generated_text
    assert a.generated_text != c.generated_text
    assert (a.seed, c.seed) == (1, 2)


def test_unseeded_sampling_reports_a_seed_that_replays_it(engine, tokenizer):
    first = _sampled(engine, tokenizer, None)
    assert first.seed is not None
    assert _sampled(engine, tokenizer, first.seed).generated_text == first.generated_text


def test_eos_ends_the_generation_and_is_not_in_the_text(engine, tokenizer):
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    events = generate(engine, tokenizer, prompt, max_new_tokens=60)
    last = events[-1]
    assert last.finish_reason == "eos_token"
    assert last.special
    assert last.text == tokenizer.convert_ids_to_tokens(last.id)
    assert last.text not in last.generated_text
    assert len(events) < 60


# -- text_generation -----------------------------------------------------------------------


def test_max_new_tokens_gives_exactly_that_many_tokens(local_backend):
    out = local_backend.text_generation(PROMPT, max_new_tokens=5, details=True)
    assert isinstance(out, TextGenerationOutput)
    assert out.details.finish_reason == "length"
    assert out.details.generated_tokens == 5
    assert len(out.details.tokens) == 5
    assert out.generated_text == "".join(t.text for t in out.details.tokens if not t.special)
    assert local_backend.text_generation(PROMPT, max_new_tokens=5) == out.generated_text


def test_return_full_text_prepends_the_prompt(local_backend):
    short = local_backend.text_generation(PROMPT, max_new_tokens=3)
    full = local_backend.text_generation(PROMPT, max_new_tokens=3, return_full_text=True)
    assert full == PROMPT + short


def test_stream_with_details_ends_with_the_full_text(local_backend):
    outputs = list(
        local_backend.text_generation(PROMPT, max_new_tokens=6, stream=True, details=True)
    )
    assert len(outputs) == 6
    assert all(o.details is None and o.generated_text is None for o in outputs[:-1])
    assert outputs[-1].details.finish_reason == "length"
    assert outputs[-1].generated_text == "".join(o.token.text for o in outputs)
    plain = local_backend.text_generation(PROMPT, max_new_tokens=6, stream=True)
    assert "".join(plain) == outputs[-1].generated_text


def _text_until(token_texts: list[str], stop: str) -> str:
    """TGI semantics: generation ends with the token that completes the stop sequence."""
    text = ""
    for token_text in token_texts:
        text += token_text
        if stop in text:
            return text
    raise AssertionError(f"{stop!r} never appears in {text!r}")


@pytest.fixture(scope="module")
def fact_tokens(local_backend) -> list[str]:
    out = local_backend.text_generation(FACT_PROMPT, max_new_tokens=12, details=True)
    return [t.text for t in out.details.tokens]


@pytest.mark.parametrize(
    "pick_stop",
    [
        pytest.param(lambda tokens: tokens[5], id="one-token"),
        pytest.param(lambda tokens: tokens[4] + tokens[5], id="two-tokens"),
    ],
)
def test_text_generation_stops_right_after_a_stop_sequence(local_backend, fact_tokens, pick_stop):
    stop = pick_stop(fact_tokens)
    out = local_backend.text_generation(FACT_PROMPT, max_new_tokens=12, stop=[stop], details=True)
    assert out.details.finish_reason == "stop_sequence"
    assert out.generated_text == _text_until(fact_tokens, stop)
    assert out.generated_text.endswith(stop)  # TGI: the stop sequence is part of the text
    assert out.details.generated_tokens == len(out.details.tokens) < 12


def test_a_stop_inside_a_token_keeps_that_whole_token(local_backend, fact_tokens):
    word = max(fact_tokens[:4], key=len)  # e.g. " Paris"
    stop = word[:-2]
    out = local_backend.text_generation(FACT_PROMPT, max_new_tokens=12, stop=[stop])
    assert out == _text_until(fact_tokens, stop)
    assert out.endswith(word)


def test_the_earliest_of_several_stop_sequences_ends_the_text(local_backend, fact_tokens):
    early, late = fact_tokens[1], fact_tokens[5]
    assert early.strip() and early not in fact_tokens[0]
    out = local_backend.text_generation(FACT_PROMPT, max_new_tokens=12, stop=[late, early])
    assert out == _text_until(fact_tokens, early)


# -- chat_completion -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def count_reference(local_backend) -> str:
    out = local_backend.chat_completion(COUNT, max_tokens=30, temperature=0)
    return out.choices[0].message.content


def test_chat_completion_returns_message_and_usage(local_backend, tokenizer):
    out = local_backend.chat_completion(COUNT, max_tokens=5, temperature=0)
    assert isinstance(out, ChatCompletionOutput)
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "length"
    prompt = tokenizer.apply_chat_template(COUNT, add_generation_prompt=True, tokenize=False)
    assert out.usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False).input_ids)
    assert out.usage.completion_tokens == 5
    assert out.usage.total_tokens == out.usage.prompt_tokens + 5
    assert out.model == "SmolLM2-135M-Instruct"
    assert out.id.startswith("chatcmpl-")


def test_chat_ending_on_eos_finishes_with_stop(local_backend):
    out = local_backend.chat_completion(
        [{"role": "user", "content": "Hi"}], max_tokens=60, temperature=0
    )
    assert out.choices[0].finish_reason == "stop"
    assert "<|im_end|>" not in out.choices[0].message.content
    assert out.usage.completion_tokens < 60


def test_chat_stop_sequence_is_not_in_the_content(local_backend, count_reference):
    stop = count_reference[8:12]  # somewhere in the middle of the reference answer
    expected = count_reference[: count_reference.index(stop)]
    assert expected
    out = local_backend.chat_completion(COUNT, max_tokens=30, temperature=0, stop=[stop])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == expected


def test_chat_stream_never_shows_the_stop_sequence(local_backend, count_reference):
    stop = count_reference[8:12]
    chunks = list(
        local_backend.chat_completion(COUNT, max_tokens=30, temperature=0, stop=[stop], stream=True)
    )
    deltas = [c.choices[0].delta.content for c in chunks]
    assert "".join(deltas) == count_reference[: count_reference.index(stop)]
    assert not any(stop in d for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert all(c.usage is None and c.choices[0].finish_reason is None for c in chunks[:-1])


# -- cancellation --------------------------------------------------------------------------


def test_close_cancels_within_a_token_and_the_next_request_runs(engine, tokenizer):
    stream = engine.submit(tokenizer(PROMPT).input_ids, SamplingParams(max_new_tokens=LONG))
    events = iter(stream)
    received = [next(events), next(events)]
    stream.close()
    received += list(events)  # ends (instead of running to 500) once the worker sees close()
    assert len(received) < LONG
    assert received[-1].finish_reason is None
    wait_until_idle(engine)
    after = generate(engine, tokenizer, max_new_tokens=3)
    assert after[-1].finish_reason == "length"


def test_closing_the_backend_stream_generator_cancels(local_backend, submitted):
    outputs = local_backend.text_generation(PROMPT, max_new_tokens=LONG, stream=True, details=True)
    next(outputs), next(outputs)
    outputs.close()  # what Gradio's stop button / a dropped API connection does
    (request,) = submitted
    assert len(list(request)) < LONG - 2
    assert outputs._outputs.gi_frame is None  # the wrapped generator has finished


def test_closing_the_chat_stream_generator_cancels(local_backend, submitted):
    chunks = local_backend.chat_completion(COUNT, max_tokens=LONG, stream=True)
    next(chunks)
    chunks.close()
    (request,) = submitted
    assert len(list(request)) < LONG - 1


def test_closing_a_stream_before_its_first_token_holds_no_engine_slot(local_backend, submitted):
    outputs = local_backend.text_generation(PROMPT, max_new_tokens=LONG, stream=True, details=True)
    outputs.close()  # e.g. the client disconnected while waiting in the queue
    assert all(s._request.cancelled.is_set() for s in submitted)
    assert local_backend._engine.queue.in_flight == 0


def test_a_full_queue_is_overloaded(loaded, tokenizer):
    small = Engine(loaded, max_queue=1)
    try:
        running = small.submit(tokenizer(PROMPT).input_ids, SamplingParams(max_new_tokens=LONG))
        with pytest.raises(OverloadedError, match="busy"):
            small.submit(tokenizer(PROMPT).input_ids, SamplingParams(max_new_tokens=1))
        running.close()
        list(running)
    finally:
        small.shutdown()


def test_a_failing_model_gives_the_consumer_a_generation_error(loaded, tokenizer):
    def broken(**kwargs):
        raise RuntimeError("out of cheese")

    broken_model = LoadedModel(broken, tokenizer, "broken", "cpu", "float32", 8192)
    engine = Engine(broken_model)
    try:
        for _ in range(2):  # the worker survives and serves the next request
            stream = engine.submit([1, 2, 3], SamplingParams(max_new_tokens=2))
            with pytest.raises(GenerationError, match="out of cheese"):
                list(stream)
        wait_until_idle(engine)
    finally:
        engine.shutdown()


# -- input validation ----------------------------------------------------------------------


def test_prompt_longer_than_the_context_is_rejected(local_backend):
    with pytest.raises(InputValidationError, match="8192") as info:
        local_backend.text_generation("word " * 40_000, max_new_tokens=10)  # 200,000 chars
    assert info.value.field == "inputs"


def test_max_new_tokens_past_the_context_is_rejected(local_backend):
    with pytest.raises(InputValidationError, match="`max_new_tokens` must be <= 8192"):
        local_backend.text_generation(PROMPT, max_new_tokens=8192)


def test_chat_longer_than_the_context_is_rejected(local_backend):
    with pytest.raises(InputValidationError, match="8192"):
        local_backend.chat_completion([{"role": "user", "content": "word " * 40_000}])


def test_empty_inputs_are_rejected(local_backend):
    with pytest.raises(InputValidationError, match="`inputs` cannot be empty"):
        local_backend.text_generation("")
    with pytest.raises(InputValidationError, match="`messages` cannot be empty"):
        local_backend.chat_completion([])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.text_generation(PROMPT, top_p=1.5), "top_p"),
        (lambda b: b.text_generation(PROMPT, stop=["a"] * 5), "stop"),
        (lambda b: b.chat_completion(COUNT, temperature=3), "temperature"),
        (lambda b: b.chat_completion([{"role": "robot", "content": "hi"}]), "role"),
    ],
)
def test_invalid_parameters_are_rejected_before_generating(local_backend, engine, call, field):
    with pytest.raises(InputValidationError) as info:
        call(local_backend)
    assert info.value.field == field
    assert engine.queue.in_flight == 0


def test_endpoint_info_reports_the_model(local_backend):
    info = local_backend.get_endpoint_info()
    assert info["model_id"] == "SmolLM2-135M-Instruct"
    assert info["max_total_tokens"] == 8192
    assert info["max_input_tokens"] == 8191
    assert local_backend.health_check()


def test_the_transformers_engine_is_a_generation_engine(engine):
    from backends.local.engine.protocol import GenerationEngine

    assert isinstance(engine, GenerationEngine)
    assert engine.name == "transformers" and engine.dtype == "float32"
    assert engine.describe() == (
        f"transformers engine (continuous batching, up to {engine.max_batch_size})"
    )


def test_metrics_count_finished_cancelled_and_generated_tokens(loaded, tokenizer):
    from backends.local.engine.transformers import TransformersEngine

    engine = TransformersEngine(loaded, max_queue=4)
    try:
        assert generate(engine, tokenizer, max_new_tokens=3)[-1].finish_reason == "length"
        stream = engine.submit(tokenizer(PROMPT).input_ids, SamplingParams(max_new_tokens=LONG))
        events = iter(stream)
        next(events)
        stream.close()
        list(events)
        wait_until_idle(engine)
        counts = engine.queue.metrics()
        cancelled = counts["cancelled_tokens"]
        assert counts["finished"] == {"length": 1} and counts["cancelled"] == 1
        assert 1 <= cancelled < LONG and counts["tokens"] == 3 + cancelled
        assert counts["admitted"] == 2
        assert (counts["running"], counts["waiting"], counts["max_queue"]) == (0, 0, 4)
        assert counts["failed"] == 0
    finally:
        engine.shutdown()
