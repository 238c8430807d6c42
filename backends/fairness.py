"""Per-visitor fairness: no one visitor takes every generation slot or floods the API.

Two bounds, both answered with TGI's 429 ``overloaded`` (``OverloadedError``) and a
sentence saying what to do:

* ``ConcurrencyLimits``: generations running at once per browser session and per client
  address (the UI's tabs, the Gradio API and the local HTTP API count alike). A slot is
  held for the whole stream and released when it ends, fails or is cancelled.
* ``RateLimit``: requests per window on the local HTTP API, per API key (when the server
  has one) or per client address, with the ``limits`` library's moving window.

``client_address`` picks the visitor's address: the peer's, or — behind a proxy that sets
it (a Hugging Face Space) — the first hop of ``X-Forwarded-For``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from limits import parse as parse_rate
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backends.errors import InputValidationError, OverloadedError

# Public mode's defaults (a Space): flags and variables override them anywhere.
PUBLIC_PER_SESSION = 2
PUBLIC_PER_ADDRESS = 4
PUBLIC_API_RATE = "60/minute"


def client_address(peer: str | None, headers: Mapping[str, str], *, trust_forwarded: bool) -> str:
    """The visitor's address: ``peer`` (the socket's), or the first ``X-Forwarded-For``
    hop when a trusted proxy sets it (never trusted by default: a visitor could write it)."""
    if trust_forwarded:
        forwarded = headers.get("x-forwarded-for", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return peer or "unknown"


@dataclass(frozen=True)
class Visitor:
    """Who asks: a browser ``session`` (Gradio's session hash; None for the HTTP API) and
    a client ``address``."""

    session: str | None
    address: str | None


class ConcurrencyLimits:
    """At most ``per_session`` generations at once per session and ``per_address`` per
    client address (None: no bound)."""

    def __init__(self, per_session: int | None = None, per_address: int | None = None) -> None:
        for name, value in (("per_session", per_session), ("per_address", per_address)):
            if value is not None and value < 1:
                raise InputValidationError(f"{name} must be at least 1 (got {value}).")
        self.per_session = per_session
        self.per_address = per_address
        self._lock = threading.Lock()
        self._sessions: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        return self.per_session is not None or self.per_address is not None

    def running(self, visitor: Visitor) -> tuple[int, int]:
        """``(in this session, from this address)`` now."""
        with self._lock:
            return (
                self._sessions[visitor.session] if visitor.session else 0,
                self._addresses[visitor.address] if visitor.address else 0,
            )

    def acquire(self, visitor: Visitor) -> None:
        """Take a slot for ``visitor``, or raise ``OverloadedError`` naming the bound."""
        with self._lock:
            session, address = visitor.session, visitor.address
            if session and self.per_session is not None:
                if self._sessions[session] >= self.per_session:
                    raise OverloadedError(
                        f"You already have {self._sessions[session]} generation"
                        f"{'s' if self._sessions[session] != 1 else ''} running in this "
                        f"browser session (at most {self.per_session} at once).",
                        hint="Wait for one to finish or press Stop, then try again.",
                    )
            if address and self.per_address is not None:
                if self._addresses[address] >= self.per_address:
                    raise OverloadedError(
                        f"Your address already has {self._addresses[address]} generations "
                        f"running (at most {self.per_address} at once per address).",
                        hint="Wait for one to finish, then try again.",
                    )
            if session:
                self._sessions[session] += 1
            if address:
                self._addresses[address] += 1

    def release(self, visitor: Visitor) -> None:
        with self._lock:
            pairs = ((self._sessions, visitor.session), (self._addresses, visitor.address))
            for counter, key in pairs:
                if key:
                    counter[key] -= 1
                    if counter[key] <= 0:
                        del counter[key]

    @contextmanager
    def hold(self, visitor: Visitor) -> Iterator[None]:
        """A slot for the block (released however it ends: done, error, cancelled)."""
        self.acquire(visitor)
        try:
            yield
        finally:
            self.release(visitor)

    def held(self, items: Iterator, visitor: Visitor) -> Iterator:
        """``items`` (a stream) with a slot held until it ends or is closed. The slot is
        taken at the first ``next``, so a refusal is raised where the stream is read."""
        with self.hold(visitor):
            yield from items


class RateLimit:
    """``spec`` requests per window (``limits`` notation: ``"60/minute"``, ``"5/second"``)
    per key, in a moving window kept in memory."""

    def __init__(self, spec: str) -> None:
        try:
            self.item = parse_rate(spec)
        except ValueError:
            raise InputValidationError(
                f"Not a rate: {spec!r}.", hint='Write it like "60/minute" or "5/second".'
            ) from None
        self.spec = spec
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def describe(self) -> str:
        """``"5 requests per minute"``."""
        unit, count = self.item.GRANULARITY.name, self.item.multiples
        window = unit if count == 1 else f"{count} {unit}s"
        return f"{self.item.amount} requests per {window}"

    def hit(self, key: str) -> None:
        """Count one request for ``key``; past the rate raise ``OverloadedError`` saying
        when to retry (``retry_after`` seconds on the error)."""
        if self._limiter.hit(self.item, key):
            return
        reset = self._limiter.get_window_stats(self.item, key).reset_time
        wait = max(1, int(reset - time.time() + 0.999))
        error = OverloadedError(
            f"Rate limit reached: at most {self.describe()}.",
            hint=f"Retry in {wait} s.",
        )
        error.retry_after = wait
        raise error


def key_of(api_key: str) -> str:
    """A rate-limit key for an API key that never holds the key itself."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Fairness:
    """The server's fairness settings, built once in app.py: ``limits`` for generations,
    ``api_rate`` for the HTTP API (None: none), and whether ``X-Forwarded-For`` is trusted."""

    limits: ConcurrencyLimits
    api_rate: RateLimit | None = None
    trust_forwarded: bool = False

    def visitor(self, session: str | None, peer: str | None, headers: Mapping[str, str]) -> Visitor:
        return Visitor(session, client_address(peer, headers, trust_forwarded=self.trust_forwarded))

    def describe(self) -> str:
        parts = []
        if self.limits.per_session is not None:
            n = self.limits.per_session
            parts.append(f"{n} generation{'s' if n != 1 else ''} at once per session")
        if self.limits.per_address is not None:
            parts.append(f"{self.limits.per_address} per address")
        if self.api_rate is not None:
            parts.append(f"API: {self.api_rate.describe()}")
        return ", ".join(parts)


NO_LIMITS = Fairness(ConcurrencyLimits())
