"""Remote failures → the project's ``BackendError``s, in the style of TGI's client
``parse_error``: the server's ``error_type`` first, then the HTTP status, then transport
failures (connection refused, timeout, malformed SSE). Messages name the target and the
server's reason; hints say what to do.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
from huggingface_hub import errors as hf

from backends.errors import (
    AuthenticationError,
    BackendError,
    GenerationError,
    IncompleteGenerationError,
    InputValidationError,
    ModelNotFoundError,
    OverloadedError,
    UnavailableError,
)

MAX_LOAD_POLL_S = 10.0  # re-ask at least this often while a model loads

# -- error mapping (TGI's parse_error: error_type first, then the HTTP status) -----------------

_HF_ERROR_TYPES = {
    hf.ValidationError: "validation",
    hf.GenerationError: "generation",
    hf.IncompleteGenerationError: "incomplete_generation",
    hf.OverloadedError: "overloaded",
}
_BY_ERROR_TYPE: dict[str, tuple[type[BackendError], str]] = {
    "validation": (InputValidationError, "Change the input or the parameters and retry."),
    "generation": (GenerationError, "The model failed while generating: retry or change it."),
    "incomplete_generation": (IncompleteGenerationError, "The answer was cut short: retry."),
    "overloaded": (OverloadedError, "It is rate limited or overloaded: retry in a moment."),
}
_CHECK_TOKEN = "Check your token: it must be valid and allowed to use this model or endpoint."
_BY_STATUS: dict[int, tuple[type[BackendError], str, str]] = {
    400: (InputValidationError, "refused the request", "Change the input or the parameters."),
    401: (AuthenticationError, "refused the token", _CHECK_TOKEN),
    403: (AuthenticationError, "refused access", _CHECK_TOKEN),
    404: (ModelNotFoundError, "was not found", "Check the model id / URL (and your token)."),
    413: (InputValidationError, "refused the request as too large", "Shorten the input."),
    422: (InputValidationError, "refused the request", "Change the input or the parameters."),
    424: (GenerationError, "failed while generating", "Retry, or change the parameters."),
    429: (OverloadedError, "is rate limited or overloaded", "Retry in a moment."),
    503: (UnavailableError, "is unavailable", "Retry later, or check the endpoint's status."),
}


def shorten(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_body(response: httpx2.Response | None) -> dict[str, Any]:
    try:
        data = response.json() if response is not None else {}
    except Exception:  # not JSON, or a stream nobody read
        return {}
    return data if isinstance(data, dict) else {}


def _reason(exc: BaseException, response: httpx2.Response | None, body: dict[str, Any]) -> str:
    """The server's own words: TGI ``error``, OpenAI ``error.message``, or the body text."""
    if response is None:
        return shorten(str(exc) or type(exc).__name__)
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    message = error or body.get("message") or body.get("detail")
    if message:
        return shorten(message)
    try:
        text = response.text
    except Exception:
        text = ""
    return shorten(text) if text.strip() else response.reason_phrase or "no details"


def _is_loading(body: dict[str, Any], reason: str) -> bool:
    return "estimated_time" in body or "loading" in reason.lower()


def to_backend_error(
    exc: BaseException, *, target: str, timeout: float | None = None
) -> BackendError:
    """Map what huggingface_hub, httpx2 or ``json`` raised to a ``BackendError`` subclass
    whose message names ``target`` and the server's reason, and whose hint says what to do.

    Args:
        exc: The exception. target: The URL or model id. timeout: Named when it timed out.
    """
    if isinstance(exc, BackendError):
        return exc
    response = exc.response if isinstance(exc, hf.HfHubHTTPError) else None
    body = _json_body(response)
    reason = _reason(exc, response, body)
    error_type = next((t for c, t in _HF_ERROR_TYPES.items() if isinstance(exc, c)), None)
    error_type = error_type or body.get("error_type")
    if error_type in _BY_ERROR_TYPE:
        cls, hint = _BY_ERROR_TYPE[error_type]
        return cls(f"{target}: {reason}", hint=hint)
    if response is not None:
        status = response.status_code
        if status == 503 and _is_loading(body, reason):
            return UnavailableError(
                f"The model is loading on {target}: {reason}",
                hint="Retry in a minute: loading a model can take a few minutes.",
            )
        default = (UnavailableError, "failed", "Retry later.") if status >= 500 else None
        cls, what, hint = _BY_STATUS.get(status) or default or (BackendError, "refused", "")
        return cls(f"{target} {what} (HTTP {status}): {reason}", hint=hint or None)
    if isinstance(exc, hf.TextGenerationError):  # UnknownError: TGI named no known error_type
        return GenerationError(f"{target}: {reason}", hint="Retry, or change the parameters.")
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return UnavailableError(
            f"HF_HUB_OFFLINE=1 blocks every request, even to {target}.",
            hint="Unset HF_HUB_OFFLINE to use a remote backend.",
        )
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        within = f" within {timeout:g} s" if timeout else ""
        return UnavailableError(
            f"{target} did not answer{within}.",
            hint="It may be overloaded or starting up: retry, or raise the timeout.",
        )
    if isinstance(exc, json.JSONDecodeError):
        return GenerationError(
            f"{target} sent a malformed reply: {shorten(exc.doc, 80)!r}",
            hint="Is this an inference server (TGI, Inference Endpoint, OpenAI-compatible)? "
            "Check the URL.",
        )
    if type(exc).__name__ == "UnidentifiedImageError":  # PIL, without importing it here
        return GenerationError(
            f"{target} answered with something that is not an image.",
            hint="Check that the endpoint serves a model for this task.",
        )
    if isinstance(exc, httpx2.TransportError | ConnectionError):
        return UnavailableError(
            f"Cannot connect to {target}: {reason}",
            hint="Check the URL and that the server is running.",
        )
    if isinstance(exc, ValueError):  # InferenceClient's request building (provider, api key)
        if "api_key" in str(exc):
            return AuthenticationError(f"{target}: {reason}", hint="Enter a token.")
        return InputValidationError(f"{target}: {reason}")
    return BackendError(f"Unexpected error from {target}: {type(exc).__name__}: {reason}")


def loading_delay(exc: BaseException, attempt: int) -> float | None:
    """Seconds to wait before retrying a 503 "model is loading", or None for other errors."""
    if not isinstance(exc, hf.HfHubHTTPError) or exc.response.status_code != 503:
        return None
    body = _json_body(exc.response)
    if not _is_loading(body, _reason(exc, exc.response, body)):
        return None
    estimate = body.get("estimated_time") or exc.response.headers.get("retry-after")
    try:
        delay = float(estimate)
    except (TypeError, ValueError):
        delay = 2.0**attempt
    return min(max(delay, 0.1), MAX_LOAD_POLL_S)
