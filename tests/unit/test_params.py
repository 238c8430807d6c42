"""Parameter validation: TGI's / OpenAI's bounds, unknown keys, and readable messages."""

from __future__ import annotations

import pytest

from backends.errors import InputValidationError
from backends.params import (
    MAX_SEED,
    ChatCompletionParameters,
    ChatMessage,
    TextGenerationParameters,
    check_text,
    validate,
)

# (values, field named, text the message must contain)
TEXT_GENERATION_INVALID = [
    ({"max_new_tokens": 0}, "max_new_tokens", "must be >= 1 (got 0)"),
    ({"max_new_tokens": "many"}, "max_new_tokens", "valid integer"),
    ({"temperature": 0}, "temperature", "must be > 0"),
    ({"temperature": -1.0}, "temperature", "must be > 0"),
    ({"temperature": 100.5}, "temperature", "must be <= 100"),
    ({"top_k": 0}, "top_k", "must be > 0 (got 0)"),
    ({"top_p": 0}, "top_p", "must be > 0"),
    ({"top_p": 1.0}, "top_p", "must be < 1"),
    ({"top_p": 1.5}, "top_p", "must be < 1.0 (got 1.5)"),
    ({"repetition_penalty": 0}, "repetition_penalty", "must be > 0"),
    ({"seed": -1}, "seed", "must be >= 0 (got -1)"),
    ({"seed": MAX_SEED + 1}, "seed", f"must be <= {MAX_SEED}"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "accepts at most 4 items (got 5)"),
    ({"stop": ["ok", ""]}, "stop", "must not be empty"),
    ({"max_tokens": 10}, "max_tokens", "is not a known parameter"),
]

CHAT_INVALID = [
    ({"max_tokens": 0}, "max_tokens", "must be >= 1 (got 0)"),
    ({"temperature": -0.1}, "temperature", "must be >= 0"),
    ({"temperature": 2.5}, "temperature", "must be <= 2"),
    ({"top_p": 0}, "top_p", "must be > 0"),
    ({"top_p": 1.01}, "top_p", "must be <= 1"),
    ({"seed": -5}, "seed", "must be >= 0"),
    ({"stop": ["1", "2", "3", "4", "5"]}, "stop", "accepts at most 4 items"),
    ({"stop": [""]}, "stop", "must not be empty"),
    ({"max_new_tokens": 10}, "max_new_tokens", "is not a known parameter"),
]

TEXT_GENERATION_VALID = [
    {},
    {"max_new_tokens": 1},
    {"temperature": 100.0, "top_k": 1, "top_p": 0.99, "repetition_penalty": 1.2},
    {"temperature": 0.01, "do_sample": True},
    {"seed": 0},
    {"seed": MAX_SEED},
    {"stop": ["a", "b", "c", "d"]},
    {"return_full_text": True, "details": True},
]

CHAT_VALID = [
    {},
    {"max_tokens": 1},
    {"temperature": 0},  # TGI: greedy
    {"temperature": 2, "top_p": 1},
    {"seed": MAX_SEED, "stop": ["\n", "User:"]},
]


def _message(model, values) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        validate(model, values)
    return info.value


@pytest.mark.parametrize(("values", "field", "expected"), TEXT_GENERATION_INVALID)
def test_text_generation_rejects(values, field, expected):
    error = _message(TextGenerationParameters, values)
    assert error.field == field
    assert f"`{field}`" in error.message
    assert expected in error.message
    assert error.status_code == 422


@pytest.mark.parametrize(("values", "field", "expected"), CHAT_INVALID)
def test_chat_completion_rejects(values, field, expected):
    error = _message(ChatCompletionParameters, values)
    assert error.field == field
    assert f"`{field}`" in error.message
    assert expected in error.message


@pytest.mark.parametrize("values", TEXT_GENERATION_VALID)
def test_text_generation_accepts(values):
    params = validate(TextGenerationParameters, values)
    assert params.model_dump(exclude_unset=True) == values


@pytest.mark.parametrize("values", CHAT_VALID)
def test_chat_completion_accepts(values):
    params = validate(ChatCompletionParameters, values)
    assert params.model_dump(exclude_unset=True) == values


def test_every_offending_field_is_named():
    error = _message(TextGenerationParameters, {"top_k": 0, "top_p": 2.0, "typo": 1})
    assert "`top_k`" in error.message
    assert "`top_p`" in error.message
    assert "`typo` is not a known parameter" in error.message
    assert error.message.count("; ") == 2
    assert error.field == "top_k"  # the first one


@pytest.mark.parametrize(
    ("message", "field", "expected"),
    [
        ({"role": "bot", "content": "hi"}, "role", "must match"),
        ({"role": "user"}, "content", "field required"),
        ({"role": "user", "content": "hi", "name": "x"}, "name", "is not a known parameter"),
        ({"role": "user", "content": "hi \ud800"}, "content", "position 3: '\\ud800' is half"),
    ],
)
def test_chat_message_rejects(message, field, expected):
    error = _message(ChatMessage, message)
    assert error.field == field
    assert expected in error.message


@pytest.mark.parametrize("role", ["system", "user", "assistant"])
def test_chat_message_accepts_known_roles(role):
    assert validate(ChatMessage, {"role": role, "content": ""}).role == role


@pytest.mark.parametrize("text", ["\ud800", "a\udfff b", "\udc80\ud800"])
def test_text_with_a_lone_surrogate_is_refused_naming_the_field(text):
    # JSON's "\ud800" escape decodes to a lone surrogate: tokenizers raise a TypeError.
    with pytest.raises(InputValidationError, match="surrogate") as info:
        check_text(text, "inputs")
    assert info.value.field == "inputs"
    assert info.value.message.startswith("`inputs` holds an invalid character at position")


@pytest.mark.parametrize("text", ["", "plain", "héllo wörld 🙂", "\x00"])
def test_valid_unicode_text_passes(text):
    assert check_text(text, "inputs") == text
