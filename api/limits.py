"""Per-visitor fairness on the local HTTP API (``backends.fairness``): a rate limit per API
key or client address, and generations at once per address, both answered with TGI's 429
``{"error", "error_type": "overloaded"}`` (and ``Retry-After`` for the rate limit).

An ASGI middleware rather than a route dependency: a streamed answer keeps its slot until
its last byte is sent (or the client goes away), which a dependency cannot see.
"""

from __future__ import annotations

import secrets

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from backends.errors import OverloadedError
from backends.fairness import Fairness, key_of

# Routes that only read (and the probes) are never limited.
READ_ONLY = {"GET", "HEAD", "OPTIONS"}


class FairnessMiddleware:
    """Applies ``fairness`` to requests under ``prefix`` that are not read-only."""

    def __init__(self, app: ASGIApp, *, fairness: Fairness, prefix: str, api_key: str | None):
        self.app = app
        self.fairness = fairness
        self.prefix = prefix
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        limited = (
            scope["type"] == "http"
            and scope.get("method") not in READ_ONLY
            and (path == self.prefix or path.startswith(self.prefix + "/"))
        )
        if not limited:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer = scope["client"][0] if scope.get("client") else None
        visitor = self.fairness.visitor(None, peer, headers)
        try:
            if self.fairness.api_rate is not None:
                self.fairness.api_rate.hit(self._rate_key(headers, visitor.address))
            self.fairness.limits.acquire(visitor)
        except OverloadedError as exc:
            response = error_response(exc)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.fairness.limits.release(visitor)

    def _rate_key(self, headers: Headers, address: str | None) -> str:
        """Per key when the server has one (a key is who you are: a right key was checked
        by the route); otherwise per address (a made-up key must not buy a fresh quota)."""
        if self.api_key is not None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = token.strip().encode("latin-1")
            if scheme.lower() == "bearer" and secrets.compare_digest(given, self.api_key.encode()):
                return key_of(self.api_key)
        return f"address:{address}"
