"""OpenAI's routes: ``/v1/chat/completions`` (also ``/chat/completions``) and ``/v1/models``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.models import ChatRequest, openapi_body, parse_body
from api.responses import event_stream, plain
from backends import Backend


def openai_routes(backend: Backend) -> APIRouter:
    """The OpenAI routes over ``backend`` (paths relative to the API's prefix)."""
    router = APIRouter()

    async def chat_completions(request: Request) -> Response:
        """OpenAI ``/v1/chat/completions``, streaming or not."""
        body = await parse_body(request, ChatRequest)
        messages, kwargs = body.backend_messages(), body.backend_kwargs()
        if not body.stream:
            output = await run_in_threadpool(
                backend.chat_completion, messages, **kwargs, stream=False
            )
            return JSONResponse({"object": "chat.completion", **plain(output)})
        stream = backend.chat_completion(messages, **kwargs, stream=True)
        return await event_stream(
            iter(stream), lambda c: {"object": "chat.completion.chunk", **plain(c)}, "[DONE]"
        )

    async def models(request: Request) -> Response:
        """OpenAI ``/v1/models``: the one model this server runs."""
        info = await run_in_threadpool(backend.get_endpoint_info)
        model = {"id": info["model_id"], "object": "model", "created": int(time.time())}
        return JSONResponse({"object": "list", "data": [{**model, "owned_by": "local"}]})

    documented = dict(
        openapi_extra=openapi_body(ChatRequest),
        responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
    )
    router.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"], **documented)
    router.add_api_route("/chat/completions", chat_completions, methods=["POST"], **documented)
    router.add_api_route("/v1/models", models, methods=["GET"])
    return router
