"""TGI's routes: ``POST /``, ``/generate``, ``/generate_stream``, ``/info``, ``/tokenize``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.models import GenerateRequest, TokenizeRequest, openapi_body, parse_body
from api.responses import event_stream, plain
from backends import Backend
from backends.errors import InputValidationError


def tgi_routes(backend: Backend, *, public: bool = False) -> APIRouter:
    """The TGI routes over ``backend`` (paths relative to the API's prefix); ``/info`` adds
    ``"public"``: whether the app runs in public mode (visitor URLs to this network refused)."""
    router = APIRouter()

    async def _generate(body: GenerateRequest) -> dict[str, Any]:
        kwargs = body.backend_kwargs()
        details = bool(kwargs.pop("details", False))
        output = await run_in_threadpool(
            backend.text_generation, body.inputs, **kwargs, details=True, stream=False
        )
        result = plain(output)
        if not details:
            result.pop("details", None)
        return result

    async def _generate_stream(body: GenerateRequest) -> Response:
        kwargs = body.backend_kwargs()
        kwargs.pop("details", None)
        stream = backend.text_generation(body.inputs, **kwargs, details=True, stream=True)

        def encode(chunk) -> dict[str, Any]:
            data = plain(chunk)
            # TGI sends both keys on every event, null until the last one.
            data.setdefault("generated_text", None)
            data.setdefault("details", None)
            return data

        return await event_stream(iter(stream), encode, done=None)

    async def compat_generate(request: Request) -> Response:
        """TGI's ``POST /``: ``stream`` picks ``/generate_stream`` or ``[/generate]``."""
        body = await parse_body(request, GenerateRequest)
        if body.stream:
            return await _generate_stream(body)
        return JSONResponse([await _generate(body)])

    async def generate(request: Request) -> Response:
        """TGI ``/generate``: ``{"inputs", "parameters"}`` → ``{"generated_text", "details"?}``."""
        return JSONResponse(await _generate(await parse_body(request, GenerateRequest)))

    async def generate_stream(request: Request) -> Response:
        """TGI ``/generate_stream``: one SSE ``data:`` event per token."""
        return await _generate_stream(await parse_body(request, GenerateRequest))

    async def info(request: Request) -> Response:
        """TGI ``/info``, and ``public`` (this app's mode)."""
        info = await run_in_threadpool(backend.get_endpoint_info)
        return JSONResponse({**info, "public": public})

    async def tokenize(request: Request) -> Response:
        """TGI ``/tokenize``: ``{"inputs"}`` → ``[{"id", "text", "start", "stop"}]``."""
        body = await parse_body(request, TokenizeRequest)
        if not hasattr(backend, "tokenize"):
            raise InputValidationError("This backend cannot tokenize.")
        return JSONResponse(await run_in_threadpool(backend.tokenize, body.inputs))

    generate_body = openapi_body(GenerateRequest)
    json_or_sse = {200: {"content": {"application/json": {}, "text/event-stream": {}}}}
    router.add_api_route(
        "", compat_generate, methods=["POST"], openapi_extra=generate_body, responses=json_or_sse
    )
    router.add_api_route("/", compat_generate, methods=["POST"], include_in_schema=False)
    router.add_api_route("/generate", generate, methods=["POST"], openapi_extra=generate_body)
    router.add_api_route(
        "/generate_stream",
        generate_stream,
        methods=["POST"],
        openapi_extra=generate_body,
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    router.add_api_route("/info", info, methods=["GET"])
    router.add_api_route(
        "/tokenize", tokenize, methods=["POST"], openapi_extra=openapi_body(TokenizeRequest)
    )
    return router
