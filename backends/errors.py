"""One error hierarchy for every backend, and its mapping to TGI's HTTP error JSON.

Backends raise these; the UI turns them into messages (components/common.py) and the local
API into ``{"error": ..., "error_type": ...}`` responses with TGI's status codes.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base class: something the user should be told about, with what to do next."""

    error_type = "unknown"
    status_code = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_message(self) -> str:
        """The message plus the hint, as one line for a toast or an API error."""
        if not self.hint:
            return self.message
        end = "" if self.message.endswith((".", "!", "?", ":")) else "."
        return f"{self.message}{end} {self.hint}"

    def to_json(self) -> dict[str, str]:
        """TGI's error body."""
        return {"error": self.user_message(), "error_type": self.error_type}


class InputValidationError(BackendError):
    """A parameter or input the backend refuses before any compute (TGI: 422 validation)."""

    error_type = "validation"
    status_code = 422

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class GenerationError(BackendError):
    """The model failed while generating (TGI: 424 generation)."""

    error_type = "generation"
    status_code = 424


class IncompleteGenerationError(BackendError):
    """The stream ended before the generation finished (TGI: 500 incomplete_generation)."""

    error_type = "incomplete_generation"
    status_code = 500


class OverloadedError(BackendError):
    """Too many requests in flight (TGI: 429 overloaded)."""

    error_type = "overloaded"
    status_code = 429


class UnavailableError(BackendError):
    """The model is not loaded (yet), failed to load, or the endpoint cannot be reached."""

    error_type = "unavailable"
    status_code = 503


class AuthenticationError(BackendError):
    """The endpoint refused the token (HTTP 401/403)."""

    error_type = "authentication"
    status_code = 401


class ModelNotFoundError(BackendError):
    """The model or endpoint does not exist, or the token cannot see it (HTTP 404)."""

    error_type = "not_found"
    status_code = 404
