"""TGI's error responses: ``{"error": ..., "error_type": ...}`` with the status code of
the ``BackendError`` raised (422 validation, 424 generation, 429 overloaded, 401
authentication, 503 unavailable, 500 otherwise). Any other exception is a bug: its text is
logged (with the stack), never sent.

Routes just raise; one handler answers. An error after a stream started cannot change the
status any more: ``api.responses.event_stream`` sends it as the stream's last ``data:``
event, in the same shape.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from backends.errors import BackendError


def error_response(exc: BackendError) -> JSONResponse:
    """TGI's error body with the status code its ``error_type`` maps to."""
    return JSONResponse(exc.to_json(), status_code=exc.status_code)


async def _backend_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BackendError)
    return error_response(exc)


# TGI's error body, documented for every route (``/api/openapi.json``).
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_type": {"type": "string"}},
    "required": ["error", "error_type"],
}
_ERRORS = {
    401: "authentication: a missing or wrong API key",
    422: "validation: the request is refused before any compute",
    424: "generation: the model failed while generating",
    429: "overloaded: too many requests in flight",
    500: "unknown: a bug (the server logs it)",
    503: "unavailable: the model is loading or failed to load",
}
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"description": what, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, what in _ERRORS.items()
}

UNEXPECTED = "The server failed on this request (a bug: its log has the details)."


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Neither a stack trace nor the exception's text to the client (it may name paths,
    # internals or echo the input); the server logs both (uvicorn, as for any crash).
    return JSONResponse({"error": UNEXPECTED, "error_type": "unknown"}, status_code=500)


def add_error_handlers(app: FastAPI) -> None:
    """Answer ``BackendError`` (and any other exception) raised by a route in TGI's shape."""
    app.add_exception_handler(BackendError, _backend_error)
    app.add_exception_handler(Exception, _unexpected_error)
