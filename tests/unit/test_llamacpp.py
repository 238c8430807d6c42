"""The llama.cpp engine on the bundled GGUF: the default engine's semantics for every
parameter it supports, its greedy output equal to raw llama.cpp's, and engine selection.

The llama.cpp tests are skipped where llama-cpp-python is not installed (the optional extra,
``make setup-fast``; CI installs it). Nothing here loads the fp32 torch weights: the engine
gets ``load_tokenizer_only``'s tokenizer, as it does in the app. Generations are kept short;
expectations that depend on what the model says come from a reference run in the same test.
"""

from __future__ import annotations

import json
import re
import time

import jsonschema
import pytest

from backends.errors import (
    GenerationError,
    InputValidationError,
    OverloadedError,
    UnavailableError,
)
from backends.local.engine.llamacpp import (
    LlamaCppEngine,
    llamacpp_available,
)
from backends.local.engine.protocol import GenerationEngine
from backends.local.engine.queue import EngineEvent
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.select import (
    create_engine,
    load_for_engine,
    select_engine,
)
from backends.local.model import ModelSource, bundled_gguf, load_tokenizer_only, resolve_model
from tests.unit.test_constrained import PERSON  # the same schema on both engines

needs_llamacpp = pytest.mark.skipif(
    not llamacpp_available(),
    reason="llama-cpp-python is not installed (optional extra: `make setup-fast` or "
    "`pip install -r requirements-fast.txt`)",
)

PROMPT = "The history of the printing press begins"
FACT_PROMPT = "The capital of France is"
LONG = 500  # far more tokens than any test waits for


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> ModelSource:
    return resolve_model(str(bundled_gguf()))


@pytest.fixture(scope="module")
def loaded(source):
    return load_tokenizer_only(source)


@pytest.fixture(scope="module")
def tokenizer(loaded):
    return loaded.tokenizer


@pytest.fixture(scope="module")
def fast(loaded, source):
    engine = LlamaCppEngine(loaded, source.location)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def raw(source, loaded, fast):
    """Plain llama-cpp-python on the same file, context and threads: the reference."""
    from llama_cpp import Llama

    llm = Llama(
        source.location,
        n_ctx=loaded.max_context,
        n_threads=fast.n_threads,
        n_threads_batch=fast.n_threads,
        logits_all=False,
        flash_attn=True,  # as the engine's context runs (llama.cpp's default "auto" on CPU)
        verbose=False,
    )
    yield llm
    llm.close()


@pytest.fixture
def make_engine(loaded, source):
    """Small extra engines (llama.cpp loads the file in ~0.1 s), shut down after the test."""
    engines: list[LlamaCppEngine] = []

    def make(**options) -> LlamaCppEngine:
        options.setdefault("n_ctx", 256)
        engines.append(LlamaCppEngine(loaded, source.location, **options))
        return engines[-1]

    yield make
    for engine in engines:
        engine.shutdown()


@pytest.fixture(scope="module")
def backend(loaded, fast):
    """LocalBackend serving through the llama.cpp engine (text_generation, chat, grammar)."""
    from backends.local.backend import LocalBackend

    # Until LocalBackend takes an engine argument: give it the loaded tokenizer and the
    # engine, as its loader would (constructing it only resolves the model path).
    backend = LocalBackend(str(bundled_gguf()))
    backend._loaded, backend._engine = loaded, fast
    backend._ready.set()
    return backend


def generate(engine, tokenizer, prompt: str = PROMPT, **params):
    with engine.submit(tokenizer(prompt).input_ids, SamplingParams(**params)) as stream:
        return list(stream)


def wait_until_idle(engine, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while engine.queue.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.queue.in_flight == 0


# -- tokenizer and loading without weights -------------------------------------------------

TOKENIZER_CASES = [
    "Hello, world!",
    "héllo 🌍 日本",
    "Ünïcödé — “quotes” naïve café 北京 😀👍🏽",
    "  two  spaces\n\nnewlines\t tab",
    "<|im_start|>user\nHi<|im_end|>\n",
    "def f(x):\n    return x**2",
]


@needs_llamacpp
@pytest.mark.parametrize("text", TOKENIZER_CASES)
def test_hf_tokenizer_ids_are_the_gguf_vocabulary(tokenizer, raw, text):
    ours = tokenizer(text, add_special_tokens=False).input_ids
    assert ours == raw.tokenize(text.encode(), add_bos=False, special=True)
    assert tokenizer.decode(ours) == text


@needs_llamacpp
def test_tokenizer_only_load_has_the_models_limits_and_no_weights(loaded, raw):
    import llama_cpp

    assert loaded.model is None
    assert loaded.max_context == llama_cpp.llama_model_n_ctx_train(raw.model) == 8192
    assert loaded.eos_token_ids == {raw.token_eos()}
    assert loaded.config.vocab_size == raw.n_vocab()
    assert loaded.model_id == "SmolLM2-135M-Instruct"


@needs_llamacpp
def test_tokenizer_only_load_converts_no_weights_and_caches_the_tokenizer(source, raw, tmp_path):
    first = load_tokenizer_only(source, cache_dir=tmp_path)  # reads the GGUF's tokenizer
    (folder,) = (tmp_path / "converted").iterdir()
    assert folder.name.endswith(".tokenizer")
    assert not list(folder.glob("*.safetensors")) and (folder / "config.json").is_file()
    again = load_tokenizer_only(source, cache_dir=tmp_path)  # from the cache
    assert list((tmp_path / "converted").iterdir()) == [folder]
    for loaded in (first, again):
        text = TOKENIZER_CASES[2]
        ids = loaded.tokenizer(text, add_special_tokens=False).input_ids
        assert ids == raw.tokenize(text.encode(), add_bos=False, special=True)
        assert (loaded.max_context, loaded.eos_token_ids) == (8192, {raw.token_eos()})


def test_tokenizer_only_load_refuses_a_non_gguf_source():
    with pytest.raises(UnavailableError, match="not a GGUF"):
        load_tokenizer_only(ModelSource("hub", "org/model", "org/model"))


# -- the same tokens as raw llama.cpp ------------------------------------------------------


@needs_llamacpp
@pytest.mark.parametrize("prompt", [PROMPT, "Once upon a time"])
def test_greedy_output_equals_raw_llamacpp_greedy(fast, raw, tokenizer, prompt):
    ids = tokenizer(prompt).input_ids
    expected = []
    for token in raw.generate(ids, temp=0.0, reset=True):
        expected.append(token)
        if len(expected) == 24:
            break
    events = generate(fast, tokenizer, prompt, max_new_tokens=24)
    assert [e.id for e in events] == expected[: len(events)]
    assert len(events) == 24 or events[-1].finish_reason == "eos_token"


# -- semantics shared with the default engine ----------------------------------------------


@needs_llamacpp
def test_stream_events_and_length_finish(fast, tokenizer):
    events = generate(fast, tokenizer, max_new_tokens=6)
    assert [e.index for e in events] == list(range(1, 7))
    assert all(e.finish_reason is None and e.generated_text is None for e in events[:-1])
    last = events[-1]
    assert last.finish_reason == "length"
    assert last.generated_text == "".join(e.text for e in events) and last.generated_text.strip()
    assert {e.input_length for e in events} == {len(tokenizer(PROMPT).input_ids)}
    assert all(e.logprob <= 0.0 for e in events)
    assert last.seed is None  # greedy


@needs_llamacpp
def test_greedy_is_deterministic_and_top_k_1_is_greedy(fast, tokenizer):
    greedy = [e.id for e in generate(fast, tokenizer, max_new_tokens=8)]
    assert [e.id for e in generate(fast, tokenizer, max_new_tokens=8)] == greedy
    top_k_1 = generate(fast, tokenizer, max_new_tokens=8, do_sample=True, top_k=1, seed=3)
    assert [e.id for e in top_k_1] == greedy


@needs_llamacpp
def test_same_seed_same_text_other_seed_differs_unseeded_replays(fast, tokenizer):
    def sampled(seed):
        return generate(fast, tokenizer, max_new_tokens=8, do_sample=True, seed=seed)[-1]

    a, b, c, free = sampled(1), sampled(1), sampled(2), sampled(None)
    assert a.generated_text == b.generated_text != c.generated_text
    assert (a.seed, c.seed) == (1, 2)
    assert free.seed is not None and sampled(free.seed).generated_text == free.generated_text


@needs_llamacpp
def test_eos_ends_the_generation_and_is_not_in_the_text(fast, tokenizer):
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(prompt, add_special_tokens=False).input_ids
    with fast.submit(ids, SamplingParams(max_new_tokens=60)) as stream:
        events = list(stream)
    last = events[-1]
    assert last.finish_reason == "eos_token" and last.special and len(events) < 60
    assert last.text == tokenizer.convert_ids_to_tokens(last.id)
    assert last.text not in last.generated_text


@needs_llamacpp
def test_top_n_tokens_gives_sorted_alternatives_led_by_the_greedy_choice(fast, tokenizer):
    events = generate(fast, tokenizer, max_new_tokens=6, top_n_tokens=3)
    for event in events:
        assert len(event.top_tokens) == 3
        assert event.top_tokens[0][0] == event.id
        assert event.top_tokens[0][2] == pytest.approx(event.logprob)
        logprobs = [t[2] for t in event.top_tokens]
        assert logprobs == sorted(logprobs, reverse=True)


@needs_llamacpp
def test_repetition_and_frequency_penalties_discourage_repeats(fast, tokenizer):
    prompt = "Repeat after me: cat cat cat cat cat cat"

    def text(**params):
        return generate(fast, tokenizer, prompt, max_new_tokens=12, **params)[-1].generated_text

    plain = text()
    assert text(repetition_penalty=2.0).count("cat") < plain.count("cat")
    assert text(frequency_penalty=2.0).count("cat") < plain.count("cat")


@needs_llamacpp
def test_prefill_logprobs_are_the_models_own_and_chunking_does_not_change_them(
    fast, tokenizer, make_engine
):
    ids = tokenizer(PROMPT * 3).input_ids  # 21 tokens: three chunks of 8 below
    params = SamplingParams(max_new_tokens=1, prefill_details=True)
    with fast.submit(ids, params) as stream:
        (whole,) = list(stream)
    chunked_engine = make_engine(n_batch=8, max_batch_size=4)
    with chunked_engine.submit(ids, params) as stream:
        (chunked,) = list(stream)
    assert [t[0] for t in whole.prefill] == ids == [t[0] for t in chunked.prefill]
    assert whole.prefill[0][2] is None and chunked.prefill[0][2] is None
    assert all(t[2] <= 0 for t in whole.prefill[1:])
    # The repeated text is predictable the second time: a real logprob per position, so a
    # row shifted by one (a wrong offset at a chunk boundary) could not match.
    assert sum(t[2] for t in whole.prefill[-6:]) > sum(t[2] for t in whole.prefill[1:7])
    for a, b in zip(whole.prefill[1:], chunked.prefill[1:], strict=True):
        assert a[2] == pytest.approx(b[2], abs=1e-3)
    assert chunked.id == whole.id


@needs_llamacpp
def test_watermark_is_applied_and_detected(fast, tokenizer, loaded):
    import torch
    from transformers.generation import WatermarkDetector, WatermarkingConfig

    from backends.params import WATERMARK_DELTA, WATERMARK_GAMMA

    detector = WatermarkDetector(
        loaded.config,
        "cpu",
        WatermarkingConfig(greenlist_ratio=WATERMARK_GAMMA, bias=WATERMARK_DELTA),
    )
    prompt = "Write a long essay about the history of the printing press."

    def z_score(watermark: bool) -> float:
        events = generate(
            fast, tokenizer, prompt, max_new_tokens=60, do_sample=True, seed=1, watermark=watermark
        )
        out = detector(torch.tensor([[e.id for e in events]]), return_dict=True)
        return float(out.z_score[0])

    assert z_score(True) > 4 > z_score(False)


# -- through LocalBackend: stops, grammar, chat --------------------------------------------


@needs_llamacpp
def test_text_generation_stops_right_after_a_stop_sequence(backend):
    reference = backend.text_generation(FACT_PROMPT, max_new_tokens=12, details=True)
    tokens = [t.text for t in reference.details.tokens]
    stop = tokens[4] + tokens[5]
    out = backend.text_generation(FACT_PROMPT, max_new_tokens=12, stop=[stop], details=True)
    assert out.details.finish_reason == "stop_sequence"
    assert out.generated_text == "".join(tokens[:6]) and out.generated_text.endswith(stop)
    assert out.details.generated_tokens == 6


@needs_llamacpp
@pytest.mark.parametrize("seed", range(2))
def test_json_schema_grammar_output_validates(backend, seed):
    out = backend.text_generation(
        "A person as JSON:", max_new_tokens=60, do_sample=True, seed=seed,
        grammar={"type": "json", "value": PERSON},
    )  # fmt: skip
    jsonschema.validate(json.loads(out), PERSON)


@needs_llamacpp
def test_regex_grammar_output_fully_matches_and_ends_with_eos(backend):
    pattern = r"\d{4}-\d{2}-\d{2}"
    out = backend.text_generation(
        "Today's date:", max_new_tokens=16, do_sample=True, seed=0, details=True,
        grammar={"type": "regex", "value": pattern},
    )  # fmt: skip
    assert re.fullmatch(pattern, out.generated_text), out.generated_text
    assert out.details.finish_reason == "eos_token"


@needs_llamacpp
def test_chat_response_format_and_stop(backend):
    schema = {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}},
              "required": ["color"], "additionalProperties": False}  # fmt: skip
    out = backend.chat_completion(
        [{"role": "user", "content": "Pick a color."}], max_tokens=20,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )  # fmt: skip
    jsonschema.validate(json.loads(out.choices[0].message.content), schema)
    count = [{"role": "user", "content": "Count from 1 to 10."}]
    reference = backend.chat_completion(count, max_tokens=30, temperature=0)
    text = reference.choices[0].message.content
    stop = text[8:12]
    out = backend.chat_completion(count, max_tokens=30, temperature=0, stop=[stop])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == text[: text.index(stop)]


# -- queue, cancellation, shutdown ---------------------------------------------------------


@needs_llamacpp
def test_close_cancels_within_a_token_and_the_next_request_runs(fast, tokenizer):
    facts: list[EngineEvent] = []
    fast.queue.on_event = facts.append
    stream = fast.submit(tokenizer(PROMPT).input_ids, SamplingParams(max_new_tokens=LONG))
    events = iter(stream)
    received = [next(events), next(events)]
    stream.close()
    received += list(events)
    assert len(received) < LONG and received[-1].finish_reason is None
    wait_until_idle(fast)
    cancelled = [e.facts["tokens"] for e in facts if e.kind == "cancelled"]
    assert len(cancelled) == 1 and 2 <= cancelled[0] < LONG  # at most a token after close
    fast.queue.on_event = None
    after = generate(fast, tokenizer, max_new_tokens=3)
    assert after[-1].finish_reason == "length"


@needs_llamacpp
def test_a_batch_of_one_serves_in_arrival_order_and_a_full_queue_is_overloaded(
    make_engine, tokenizer
):
    engine = make_engine(max_queue=2, max_batch_size=1)  # a batch of one: the second waits
    ids = tokenizer(PROMPT).input_ids
    first = engine.submit(ids, SamplingParams(max_new_tokens=LONG))
    second = engine.submit(ids, SamplingParams(max_new_tokens=2))
    with pytest.raises(OverloadedError, match="busy"):
        engine.submit(ids, SamplingParams(max_new_tokens=1))
    next(iter(first))
    assert (engine.queue.running, engine.queue.waiting) == (1, 1)
    assert engine.stats()["batch_tokens"] > len(ids)  # the running request's prompt + output
    first.close()
    assert [e.index for e in second] == [1, 2]
    wait_until_idle(engine)


@needs_llamacpp
def test_shutdown_ends_requests_in_flight_and_refuses_new_ones(make_engine, tokenizer):
    engine = make_engine(max_batch_size=1)  # one running, one waiting (not done before)
    ids = tokenizer(PROMPT).input_ids
    running = engine.submit(ids, SamplingParams(max_new_tokens=200))
    waiting = engine.submit(ids, SamplingParams(max_new_tokens=2))
    next(iter(running))
    engine.shutdown()
    for stream in (running, waiting):
        with pytest.raises(UnavailableError, match="shut down"):
            list(stream)
    with pytest.raises(UnavailableError, match="shut down"):
        engine.submit(ids, SamplingParams(max_new_tokens=1))


@needs_llamacpp
def test_a_prompt_longer_than_llamacpp_context_gives_a_generation_error(make_engine, tokenizer):
    engine = make_engine(n_ctx=256, max_batch_size=1)
    assert engine.stats()["max_batch_tokens"] == 256
    stream = engine.submit(tokenizer("word " * 300).input_ids, SamplingParams(max_new_tokens=4))
    with pytest.raises(GenerationError, match="does not fit"):
        list(stream)
    wait_until_idle(engine)
    assert generate(engine, tokenizer, max_new_tokens=2)[-1].finish_reason == "length"


# -- engine selection ----------------------------------------------------------------------

GGUF = ModelSource("gguf", "/models/m.Q4_0.gguf", "m")
FOLDER = ModelSource("dir", "/models/m", "m")


@pytest.mark.parametrize(
    ("kind", "source", "device", "installed", "expected"),
    [
        ("auto", GGUF, "cpu", True, "llama.cpp"),
        ("auto", GGUF, "cpu", False, "transformers"),
        ("auto", FOLDER, "cpu", True, "transformers"),
        ("auto", GGUF, "cuda", True, "transformers"),
        ("transformers", GGUF, "cpu", True, "transformers"),
        ("llama.cpp", GGUF, "cpu", True, "llama.cpp"),
        ("llama.cpp", GGUF, "auto", True, "llama.cpp"),
    ],
)
def test_select_engine(monkeypatch, kind, source, device, installed, expected):
    monkeypatch.setattr("backends.local.engine.select.llamacpp_available", lambda: installed)
    assert select_engine(kind, source, device) == expected


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_device_picks_llamacpp_only_without_cuda(monkeypatch, cuda):
    import torch

    monkeypatch.setattr("backends.local.engine.select.llamacpp_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert select_engine("auto", GGUF, "auto") == ("transformers" if cuda else "llama.cpp")


@pytest.mark.parametrize(
    ("kind", "source", "device", "installed", "message"),
    [
        ("llama.cpp", GGUF, "cpu", False, "make setup-fast"),
        ("llama.cpp", FOLDER, "cpu", True, "GGUF"),
        ("llama.cpp", GGUF, "cuda", True, "CPU"),
        ("vllm", GGUF, "cpu", True, "auto, transformers or llama.cpp"),
    ],
)
def test_select_engine_refuses_what_cannot_run(
    monkeypatch, kind, source, device, installed, message
):
    monkeypatch.setattr("backends.local.engine.select.llamacpp_available", lambda: installed)
    with pytest.raises(UnavailableError) as info:
        select_engine(kind, source, device)
    assert message in info.value.user_message()


@needs_llamacpp
def test_create_engine_builds_llamacpp_without_torch_weights(source):
    loaded = load_for_engine("llama.cpp", source)
    assert loaded.model is None
    engine = create_engine("llama.cpp", loaded, model_path=source.location, max_queue=3)
    try:
        assert isinstance(engine, LlamaCppEngine) and engine.queue.max_queue == 3
        assert isinstance(engine, GenerationEngine)
        assert engine.dtype == "Q4_1" and engine.describe().startswith("llama.cpp engine (Q4_1,")
    finally:
        engine.shutdown()
    with pytest.raises(ValueError, match="model_path"):
        create_engine("llama.cpp", loaded)


def test_the_backend_reports_and_checks_the_context_a_batched_sequence_really_has():
    """16 sequences in 16384 batch tokens hold 2048 KV cells each, not the model's 8192:
    /info says so and a longer request is refused before it queues (it used to be accepted
    and fail at run time)."""
    from backends.local.backend import LocalBackend

    backend = LocalBackend(
        str(bundled_gguf()),
        engine="llama.cpp",
        max_batch_size=16,
        max_batch_tokens=16384,
        threads=1,  # --threads
    ).load()
    try:
        assert backend.status().state == "ready", backend.status()
        info = backend.get_endpoint_info()
        assert (info["max_total_tokens"], info["max_input_tokens"]) == (2048, 2047)
        message = backend.status().message
        assert "2048 tokens of context a request (the model has 8192" in message
        assert "(Q4_1, 1 thread, continuous batching" in message
        with pytest.raises(InputValidationError, match="must be <= 2048"):
            backend.text_generation("word " * 2100, max_new_tokens=4)
    finally:
        backend.shutdown()
