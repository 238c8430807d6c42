"""TGI- and OpenAI-compatible HTTP routes over a Backend, so any client can use the local
model: ``InferenceClient``, ``text_generation.Client``, the ``openai`` SDK, curl.

Mounted by app.py under ``/api`` on the same server as the UI (``mount_api``):

    POST /api                       TGI compat route (what InferenceClient / text-generation use)
    POST /api/generate              TGI: one JSON answer
    POST /api/generate_stream       TGI: SSE ``data:`` events, one per token
    POST /api/v1/chat/completions   OpenAI: JSON, or SSE chunks ending with ``data: [DONE]``
    GET  /api/v1/models             OpenAI: the served model
    GET  /api/info                  TGI: model id, dtype, device, limits, version; ``public``
    GET  /api/health                200 when the model is ready, 503 otherwise
    GET  /api/metrics               the local engine's counts, Prometheus text (``metrics=``)
    POST /api/tokenize              TGI: tokens with character offsets

Bodies are ``api.models``; routes ``api.tgi`` and ``api.openai``; errors (TGI's
``{"error", "error_type"}``) ``api.errors``; the API key ``api.auth``. Admission is the
backend's: past its bound (the local engine's ``--max-concurrent-requests``) it raises
``OverloadedError``, answered 429 ``overloaded``; so are a visitor's requests past the
per-address and rate bounds (``api.limits``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from api.auth import require_key
from api.errors import ERROR_RESPONSES, add_error_handlers
from api.limits import FairnessMiddleware
from api.metrics import metrics_routes
from api.openai import openai_routes
from api.tgi import tgi_routes
from backends import Backend
from backends.errors import UnavailableError
from backends.fairness import NO_LIMITS, Fairness

PREFIX = "/api"


def create_api(
    backend: Backend,
    *,
    api_key: str | None = None,
    metrics: Callable[[], dict[str, Any]] | None = None,
    public: bool = False,
) -> APIRouter:
    """Every route of the API (under ``/api``); all but ``/health`` need ``api_key``.
    ``metrics``: the local engine's counts (``LocalBackend.metrics``) for ``/metrics``.
    ``public``: public mode (``/info`` says so)."""

    async def health(request: Request) -> Response:
        """200 once the model is loaded and serving; 503 while loading or after a failure."""
        if backend.health_check():
            return Response(status_code=200)
        raise UnavailableError(backend.status().message)

    router = APIRouter(tags=["local API"])
    keyed = dict(prefix=PREFIX, dependencies=[Depends(require_key(api_key))])
    keyed["responses"] = ERROR_RESPONSES  # documented in /api/openapi.json
    router.include_router(tgi_routes(backend, public=public), **keyed)
    router.include_router(openai_routes(backend), **keyed)
    if metrics is not None:
        router.include_router(metrics_routes(metrics), **keyed)
    # Health probes (load balancers, Spaces) carry no key: /health reveals only readiness.
    router.add_api_route(
        f"{PREFIX}/health",
        health,
        methods=["GET"],
        response_class=Response,
        responses={200: {"description": "ready (no body)"}, 503: ERROR_RESPONSES[503]},
    )
    return router


def mount_api(
    app: FastAPI,
    backend: Backend,
    *,
    api_key: str | None = None,
    metrics: Callable[[], dict[str, Any]] | None = None,
    public: bool = False,
    fairness: Fairness = NO_LIMITS,
) -> None:
    """Add the API's routes and error handlers to ``app`` (before the UI is mounted at ``/``);
    ``fairness``: per-visitor bounds on its routes that generate (``api.limits``)."""
    add_error_handlers(app)
    if fairness.limits.active or fairness.api_rate is not None:
        app.add_middleware(FairnessMiddleware, fairness=fairness, prefix=PREFIX, api_key=api_key)
    app.include_router(create_api(backend, api_key=api_key, metrics=metrics, public=public))
