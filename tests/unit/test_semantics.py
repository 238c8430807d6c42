"""TGI parameter semantics on the real bundled model: each test fails if the parameter
were ignored."""

from __future__ import annotations

import math

import pytest

from backends.errors import InputValidationError

PROMPT = "The history of the printing press begins"


def generate(backend, **kwargs):
    kwargs.setdefault("max_new_tokens", 8)
    return backend.text_generation(PROMPT, details=True, **kwargs)


def test_top_k_1_equals_greedy(local_backend):
    greedy = generate(local_backend).generated_text
    for seed in (1, 2, 3):
        assert generate(local_backend, do_sample=True, top_k=1, seed=seed).generated_text == greedy


def test_typical_p_changes_sampling(local_backend):
    plain = {generate(local_backend, do_sample=True, seed=s).generated_text for s in range(4)}
    typical = {
        generate(local_backend, do_sample=True, typical_p=0.2, seed=s).generated_text
        for s in range(4)
    }
    # A very small typical mass leaves few candidates: the same seeds give other texts.
    assert typical != plain


def test_frequency_penalty_discourages_repeats(local_backend):
    prompt = "Repeat after me: cat cat cat cat cat cat"
    plain = local_backend.text_generation(prompt, max_new_tokens=12)
    penalised = local_backend.text_generation(prompt, max_new_tokens=12, frequency_penalty=2.0)
    assert penalised.count("cat") < plain.count("cat")


def test_truncate_keeps_the_last_n_input_tokens(local_backend):
    out = generate(local_backend, truncate=3, decoder_input_details=True)
    assert len(out.details.prefill) == 3
    last_three = local_backend.tokenize(PROMPT)[-3:]
    assert [t.id for t in out.details.prefill] == [t["id"] for t in last_three]


def test_top_n_tokens_gives_n_alternatives_per_step(local_backend):
    out = generate(local_backend, top_n_tokens=3)
    assert len(out.details.top_tokens) == len(out.details.tokens) == 8
    for chosen, alternatives in zip(out.details.tokens, out.details.top_tokens, strict=True):
        assert len(alternatives) == 3
        assert alternatives[0].id == chosen.id  # greedy: the chosen token is the best one
        logprobs = [a.logprob for a in alternatives]
        assert logprobs == sorted(logprobs, reverse=True)


def test_decoder_input_details_gives_prefill_logprobs(local_backend):
    out = generate(local_backend, decoder_input_details=True)
    prefill = out.details.prefill
    assert [t.id for t in prefill] == [t["id"] for t in local_backend.tokenize(PROMPT)]
    assert prefill[0].logprob is None
    assert all(t.logprob <= 0 for t in prefill[1:])


def test_details_tokens_carry_ids_text_and_logprobs(local_backend):
    out = generate(local_backend)
    assert "".join(t.text for t in out.details.tokens) == out.generated_text
    assert all(t.logprob <= 0 and not t.special for t in out.details.tokens)


def test_best_of_returns_the_most_likely_sequence_and_the_others(local_backend):
    out = generate(local_backend, best_of=3, do_sample=True, temperature=1.2)
    others = out.details.best_of_sequences
    assert len(others) == 2
    total = sum(t.logprob for t in out.details.tokens)
    assert all(total >= sum(t.logprob for t in o.tokens) for o in others)
    assert out.details.seed is not None and all(o.seed is not None for o in others)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"best_of": 2}, "sampling"),
        ({"best_of": 2, "do_sample": True, "seed": 1}, "seed"),
        ({"top_n_tokens": 6}, "top_n_tokens"),
        ({"typical_p": 1.0}, "typical_p"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"truncate": 0}, "truncate"),
    ],
)
def test_bounds_are_checked_before_any_compute(local_backend, kwargs, message):
    with pytest.raises(InputValidationError, match=message):
        generate(local_backend, **kwargs)


def test_best_of_cannot_stream(local_backend):
    with pytest.raises(InputValidationError, match="streaming"):
        local_backend.text_generation(PROMPT, best_of=2, do_sample=True, stream=True)


def test_watermarked_text_is_detected_and_plain_text_is_not(local_backend):
    prompt = "Write a long essay about the history of the printing press."
    for seed in (1, 2):
        marked = local_backend.text_generation(
            prompt, max_new_tokens=80, do_sample=True, seed=seed, watermark=True
        )
        verdict = local_backend.detect_watermark(marked)
        assert verdict["watermarked"] and verdict["z_score"] > 4
    plain = (
        "The printing press, developed by Johannes Gutenberg around 1440, transformed how "
        "knowledge spread across Europe. Books became cheaper, literacy rose, and ideas "
        "travelled faster than ever before, shaping the Reformation and the sciences."
    )
    verdict = local_backend.detect_watermark(plain)
    assert not verdict["watermarked"] and verdict["z_score"] < 4


def test_watermark_detection_needs_enough_text(local_backend):
    with pytest.raises(InputValidationError, match="at least 16 tokens"):
        local_backend.detect_watermark("Too short.")


def test_chat_logprobs_and_penalties(local_backend):
    messages = [{"role": "user", "content": "Say hello"}]
    out = local_backend.chat_completion(
        messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2
    )
    entries = out.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == out.choices[0].message.content
    assert all(len(e.top_logprobs) == 2 and e.top_logprobs[0].token == e.token for e in entries)
    assert all(math.isfinite(e.logprob) for e in entries)
    with pytest.raises(InputValidationError, match="logprobs"):
        local_backend.chat_completion(messages, top_logprobs=2)
    repeat = [{"role": "user", "content": "Write the word cat ten times: cat cat cat"}]
    plain = local_backend.chat_completion(repeat, max_tokens=16, temperature=0)
    pushed = local_backend.chat_completion(
        repeat, max_tokens=16, temperature=0, presence_penalty=2.0, frequency_penalty=1.0
    )
    text, pushed_text = plain.choices[0].message.content, pushed.choices[0].message.content
    assert pushed_text.lower().count("cat") < text.lower().count("cat"), (text, pushed_text)


# -- extreme values within the bounds: finite answers, never NaN or an engine error ------


def test_a_tiny_temperature_is_greedy_decoding(local_backend):
    # 1e-300 rounds to 0 in float32: dividing by it gave NaN probabilities (a 424).
    greedy = generate(local_backend).generated_text
    out = generate(local_backend, do_sample=True, temperature=1e-300, seed=1)
    assert out.generated_text == greedy
    assert all(math.isfinite(t.logprob) for t in out.details.tokens)


@pytest.mark.parametrize("penalty", [1e-300, 1e-30, 1e300])
def test_an_extreme_repetition_penalty_gives_finite_logprobs(local_backend, penalty):
    # 1e-300 divided positive scores by 0: +inf, then NaN logprobs (which sent
    # huggingface_hub's output types into endless recursion: a 500).
    out = generate(local_backend, repetition_penalty=penalty, top_n_tokens=2)
    assert out.details.generated_tokens == 8
    assert all(math.isfinite(t.logprob) for t in out.details.tokens)
    assert all(math.isfinite(t.logprob) for step in out.details.top_tokens for t in step)


def test_alternatives_leave_out_tokens_a_warper_ruled_out(local_backend):
    # top_k=1 leaves one possible token: the other four "alternatives" had logprob -inf,
    # which JSON cannot carry (a 500 on /generate, -Infinity in the stream).
    out = generate(local_backend, do_sample=True, top_k=1, top_n_tokens=5, seed=1)
    for token, top in zip(out.details.tokens, out.details.top_tokens, strict=True):
        assert [(t.id, t.logprob) for t in top] == [(token.id, 0.0)]
