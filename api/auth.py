"""The API key: ``Authorization: Bearer <key>`` on every route but ``/health``."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Request

from backends.errors import AuthenticationError


def require_key(api_key: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency refusing (401 ``authentication``) a request without ``api_key``
    as its Bearer token; ``None``: no key is needed."""

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken says nothing about how much of the key matched.
        # Bytes: a header is latin-1 text, and a non-ASCII str would make it raise.
        given = token.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, api_key.encode()):
            raise AuthenticationError(
                "Missing or wrong API key.", hint="Send `Authorization: Bearer <api key>`."
            )

    return check_key
