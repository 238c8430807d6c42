"""The error hierarchy and its TGI error JSON."""

from __future__ import annotations

import pytest

from backends.errors import (
    BackendError,
    GenerationError,
    IncompleteGenerationError,
    InputValidationError,
    OverloadedError,
    UnavailableError,
)


@pytest.mark.parametrize(
    ("cls", "status_code", "error_type"),
    [
        (BackendError, 500, "unknown"),
        (InputValidationError, 422, "validation"),
        (GenerationError, 424, "generation"),
        (IncompleteGenerationError, 500, "incomplete_generation"),
        (OverloadedError, 429, "overloaded"),
        (UnavailableError, 503, "unavailable"),
    ],
)
def test_status_code_and_error_type(cls, status_code, error_type):
    error = cls("Something broke.")
    assert isinstance(error, BackendError)
    assert error.status_code == status_code
    assert error.error_type == error_type
    assert error.to_json() == {"error": "Something broke.", "error_type": error_type}


def test_hint_is_appended_to_the_message():
    error = OverloadedError("The model is busy.", hint="Retry in a moment.")
    assert str(error) == "The model is busy."
    assert error.user_message() == "The model is busy. Retry in a moment."
    assert error.to_json() == {
        "error": "The model is busy. Retry in a moment.",
        "error_type": "overloaded",
    }


def test_without_hint_the_user_message_is_the_message():
    error = UnavailableError("No model.")
    assert error.hint is None
    assert error.user_message() == "No model."


def test_validation_error_keeps_the_field():
    error = InputValidationError("`top_p` must be < 1.0 (got 1.5)", field="top_p")
    assert error.field == "top_p"
    assert InputValidationError("bad").field is None


def test_errors_can_be_raised_and_caught_as_backend_errors():
    with pytest.raises(BackendError) as info:
        raise GenerationError("Generation failed: boom")
    assert info.value.message == "Generation failed: boom"


def test_a_hint_after_a_message_without_a_full_stop_gets_one():
    error = OverloadedError("Model is overloaded", hint="Retry in a moment.")
    assert error.user_message() == "Model is overloaded. Retry in a moment."
