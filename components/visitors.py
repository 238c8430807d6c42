"""Who is asking: a visitor's browser session, address and Hugging Face sign-in.

Event handlers take ``request: gr.Request`` and ``oauth: gr.OAuthToken | None`` (Gradio
fills both in) and hand them here:

* ``Visitors.hold`` / ``Visitors.stream`` keep one of the visitor's generation slots
  (``backends.fairness``) for as long as a reply streams;
* ``connection.signed_in`` puts a signed-in visitor's OAuth token on their ``Connection``
  for that request only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import gradio as gr

from backends.fairness import NO_LIMITS, Fairness, Visitor


class Visitors:
    """The server's per-visitor bounds (``fairness``) and whether Sign in with HF is on."""

    def __init__(self, fairness: Fairness = NO_LIMITS, *, oauth: bool = False) -> None:
        self.fairness = fairness
        self.oauth = oauth

    def visitor(self, request: gr.Request | None) -> Visitor:
        if request is None:  # called as plain Python (tests): nobody to bound
            return Visitor(None, None)
        peer = request.client.host if request.client else None
        return self.fairness.visitor(request.session_hash, peer, request.headers)

    def hold(self, request: gr.Request | None) -> AbstractContextManager[None]:
        """One of the visitor's generation slots for the block; raises ``OverloadedError``
        (with what to do) when they have none left."""
        return self.fairness.limits.hold(self.visitor(request))

    def stream(self, items: Iterator, request: gr.Request | None) -> Iterator:
        """``items`` with a slot held until the stream ends or is closed."""
        return self.fairness.limits.held(items, self.visitor(request))
