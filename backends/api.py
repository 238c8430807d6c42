"""TGI- and OpenAI-compatible HTTP routes over a Backend, so any client can use the local
model: ``InferenceClient``, ``text_generation.Client``, the ``openai`` SDK, curl.

Mounted by app.py under ``/api`` on the same server as the UI:

    POST /api                       TGI compat route (what InferenceClient / text-generation use)
    POST /api/generate              TGI: one JSON answer
    POST /api/generate_stream       TGI: SSE ``data:`` events, one per token
    POST /api/v1/chat/completions   OpenAI: JSON, or SSE chunks ending with ``data: [DONE]``
    GET  /api/v1/models             OpenAI: the served model
    GET  /api/info                  TGI: model id, dtype, device, limits, version
    GET  /api/health                200 when the model is ready, 503 otherwise
    POST /api/tokenize              TGI: tokens with character offsets

Errors are TGI's ``{"error": ..., "error_type": ...}`` with 422 validation, 424 generation,
429 overloaded, 401 authentication, 503 unavailable, 500 otherwise; an error after a stream
started arrives as a last ``data:`` event in the same shape.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from backends import Backend
from backends.errors import (
    AuthenticationError,
    BackendError,
    InputValidationError,
    OverloadedError,
)

log = logging.getLogger(__name__)

# Parameters TGI clients may send that this server does not serve yet: only their "off"
# value is accepted.
_OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "adapter_id": (None,),
}
_CHAT_KEYS = {
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
}
_CHAT_OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "model": (),  # any value: one model is served
    "n": (None, 1),
    "stream": (),
    "stream_options": (),
    "logit_bias": (None,),
    "tool_prompt": (None,),
    "user": (),
}


def _plain(value: Any) -> Any:
    """A huggingface_hub output type as JSON-ready data, without ``None`` fields."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def error_response(exc: BackendError) -> JSONResponse:
    """TGI's error body with the status code its ``error_type`` maps to."""
    return JSONResponse(exc.to_json(), status_code=exc.status_code)


def _unserved(params: dict[str, Any], off_values: dict[str, tuple[Any, ...]]) -> None:
    for key, off in off_values.items():
        if off and key in params and params[key] not in off:
            raise InputValidationError(
                f"`{key}` is not supported by this server yet (got {params[key]!r})", field=key
            )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputValidationError("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InputValidationError("The request body must be a JSON object.")
    return body


def _text_generation_args(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise InputValidationError("`inputs` must be a string", field="inputs")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InputValidationError("`parameters` must be an object", field="parameters")
    _unserved(params, _OFF_VALUES)
    kwargs = {k: v for k, v in params.items() if k not in _OFF_VALUES and v is not None}
    return inputs, kwargs


def _message_text(content: Any) -> str:
    """OpenAI content: a string or a list of parts; only text parts are served."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InputValidationError(
                    f"Only text message parts are supported by this model (got {kind!r})",
                    field="messages",
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise InputValidationError("message `content` must be a string or a list of parts")


def _chat_args(body: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InputValidationError("`messages` must be a list", field="messages")
    unknown = set(body) - _CHAT_KEYS - set(_CHAT_OFF_VALUES) - {"messages"}
    if unknown:
        raise InputValidationError(
            f"Unknown parameter(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
        )
    _unserved(body, _CHAT_OFF_VALUES)
    plain = []
    for message in messages:
        if not isinstance(message, dict):
            raise InputValidationError("each message must be an object", field="messages")
        plain.append(
            {"role": message.get("role"), "content": _message_text(message.get("content"))}
        )
    kwargs = {k: body[k] for k in _CHAT_KEYS if body.get(k) is not None}
    if isinstance(kwargs.get("stop"), str):
        kwargs["stop"] = [kwargs["stop"]]
    return plain, kwargs


class _Bridge:
    """Pulls a blocking backend stream from async code, one item per worker-thread call.

    Cancellation (client gone) lands between items, after which the backend generator is
    closed, so the engine stops within one token.
    """

    def __init__(self, stream: Iterator[Any]) -> None:
        self.stream = stream

    async def next(self) -> Any:
        return await anyio.to_thread.run_sync(next, self.stream, _DONE)

    def close(self) -> None:
        self.stream.close()


_DONE = object()


def create_api(
    backend: Backend, *, api_key: str | None = None, max_concurrent_requests: int = 128
) -> APIRouter:
    """The router (prefix ``/api``); see the module docstring for the routes."""
    router = APIRouter(prefix="/api", tags=["local API"])
    in_flight = 0

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), api_key):
            raise AuthenticationError(
                "Missing or wrong API key.", hint="Send `Authorization: Bearer <api key>`."
            )

    def admit() -> None:
        nonlocal in_flight
        if in_flight >= max_concurrent_requests:
            raise OverloadedError("Model is overloaded", hint="Retry in a moment.")
        in_flight += 1

    def release() -> None:
        nonlocal in_flight
        in_flight -= 1

    async def stream_response(stream: Iterator[Any], encode, done: str | None) -> Response:
        """Start a stream: errors before the first item become a plain error response (so
        429/422 keep their status codes); later errors become a last ``data:`` event."""
        bridge = _Bridge(stream)
        closed = False

        def cleanup() -> None:
            # Idempotent: runs when the events end, and again as the response's background
            # task, which also covers a client gone before the first event was sent.
            nonlocal closed
            if not closed:
                closed = True
                bridge.close()
                release()

        try:
            first = await bridge.next()
        except BaseException:
            cleanup()
            raise

        async def events() -> AsyncIterator[dict[str, str]]:
            try:
                item = first
                while item is not _DONE:
                    yield {"data": json.dumps(encode(item), ensure_ascii=False)}
                    item = await bridge.next()
                if done is not None:
                    yield {"data": done}
            except BackendError as exc:
                yield {"data": json.dumps(exc.to_json())}
            finally:
                cleanup()

        return EventSourceResponse(events(), sep="\n", ping=15, background=BackgroundTask(cleanup))

    async def run(call, *args, **kwargs) -> Any:
        try:
            return await run_in_threadpool(call, *args, **kwargs)
        finally:
            release()

    def guarded(handler, *, public: bool = False):
        """Errors → TGI JSON; the API key is checked first (``public``: no key needed)."""

        async def endpoint(request: Request) -> Response:
            try:
                if not public:
                    check_key(request)
                return await handler(request)
            except BackendError as exc:
                return error_response(exc)
            except Exception as exc:  # never a stack trace to the client
                log.exception("local API error")
                return JSONResponse({"error": str(exc), "error_type": "unknown"}, status_code=500)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    async def _generate(body: dict[str, Any]) -> Any:
        inputs, kwargs = _text_generation_args(body)
        details = bool(kwargs.pop("details", False))
        admit()
        output = await run(backend.text_generation, inputs, **kwargs, details=True, stream=False)
        result = _plain(output)
        if not details:
            result.pop("details", None)
        return result

    async def _generate_stream(body: dict[str, Any]) -> Response:
        inputs, kwargs = _text_generation_args(body)
        kwargs.pop("details", None)
        admit()
        try:
            stream = backend.text_generation(inputs, **kwargs, details=True, stream=True)
        except BaseException:
            release()
            raise

        def encode(chunk) -> dict[str, Any]:
            data = _plain(chunk)
            data.setdefault("generated_text", None)
            data.setdefault("details", None)
            return data

        return await stream_response(iter(stream), encode, done=None)

    @guarded
    async def generate(request: Request) -> Response:
        """TGI ``/generate``: ``{"inputs", "parameters"}`` → ``{"generated_text", "details"?}``."""
        return JSONResponse(await _generate(await _json_body(request)))

    @guarded
    async def generate_stream(request: Request) -> Response:
        """TGI ``/generate_stream``: one SSE ``data:`` event per token."""
        return await _generate_stream(await _json_body(request))

    @guarded
    async def compat_generate(request: Request) -> Response:
        """TGI's ``POST /``: ``stream`` picks ``/generate_stream`` or ``[/generate]``."""
        body = await _json_body(request)
        if body.get("stream"):
            return await _generate_stream(body)
        return JSONResponse([await _generate(body)])

    @guarded
    async def chat_completions(request: Request) -> Response:
        """OpenAI ``/v1/chat/completions``, streaming or not."""
        body = await _json_body(request)
        messages, kwargs = _chat_args(body)
        admit()
        if not body.get("stream"):
            output = await run(backend.chat_completion, messages, **kwargs, stream=False)
            return JSONResponse({"object": "chat.completion", **_plain(output)})
        try:
            stream = backend.chat_completion(messages, **kwargs, stream=True)
        except BaseException:
            release()
            raise
        return await stream_response(
            iter(stream), lambda c: {"object": "chat.completion.chunk", **_plain(c)}, "[DONE]"
        )

    @guarded
    async def models(request: Request) -> Response:
        """OpenAI ``/v1/models``: the one model this server runs."""
        info = await run_in_threadpool(backend.get_endpoint_info)
        model = {"id": info["model_id"], "object": "model", "created": int(time.time())}
        return JSONResponse({"object": "list", "data": [{**model, "owned_by": "local"}]})

    @guarded
    async def info(request: Request) -> Response:
        """TGI ``/info``."""
        return JSONResponse(await run_in_threadpool(backend.get_endpoint_info))

    async def health(request: Request) -> Response:
        """200 once the model is loaded and serving; 503 while loading or after a failure."""
        if backend.health_check():
            return Response(status_code=200)
        status = backend.status()
        return JSONResponse({"error": status.message, "error_type": "unavailable"}, status_code=503)

    @guarded
    async def tokenize(request: Request) -> Response:
        """TGI ``/tokenize``: ``{"inputs"}`` → ``[{"id", "text", "start", "stop"}]``."""
        inputs, _ = _text_generation_args(await _json_body(request))
        if not hasattr(backend, "tokenize"):
            raise InputValidationError("This backend cannot tokenize.")
        return JSONResponse(await run_in_threadpool(backend.tokenize, inputs))

    router.add_api_route("", compat_generate, methods=["POST"])
    router.add_api_route("/", compat_generate, methods=["POST"], include_in_schema=False)
    router.add_api_route("/generate", generate, methods=["POST"])
    router.add_api_route("/generate_stream", generate_stream, methods=["POST"])
    router.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    router.add_api_route("/chat/completions", chat_completions, methods=["POST"])
    router.add_api_route("/v1/models", models, methods=["GET"])
    router.add_api_route("/info", info, methods=["GET"])
    # Health probes (load balancers, Spaces) carry no key: /health reveals only readiness.
    router.add_api_route("/health", guarded(health, public=True), methods=["GET"])
    router.add_api_route("/tokenize", tokenize, methods=["POST"])
    return router


def mount_api(app: FastAPI, backend: Backend, **kwargs: Any) -> None:
    """Add the local API routes to ``app`` (before the UI is mounted at ``/``)."""
    app.include_router(create_api(backend, **kwargs))
