"""What both local engines share between the threads that submit requests and the worker
that serves them: the bounded queue (``RequestQueue``) and the consumer's ``TokenStream``."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

from backends.errors import OverloadedError, UnavailableError
from backends.local.sequence import Request, TokenEvent


class TokenStream:
    """Iterator over a request's ``TokenEvent``s. ``close()`` cancels the request; use it
    in a ``finally`` (or as a context manager) so an abandoned consumer frees the engine."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def __iter__(self) -> Iterator[TokenEvent]:
        yield from self._request.stream()

    def close(self) -> None:
        self._request.cancelled.set()

    def __enter__(self) -> TokenStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RequestQueue:
    """Requests submitted from any thread wait in ``_pending`` for the engine's worker; at
    most ``max_queue`` are in flight (running + waiting). ``_cond`` guards ``_pending``,
    ``_in_flight`` and ``_stopping``; the worker waits on it."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._pending: deque[Request] = deque()
        self._in_flight = 0
        self._stopping = False

    @property
    def queue_size(self) -> int:
        """Requests submitted and not yet finished (running ones included)."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests queued for the worker."""
        return len(self._pending)

    @property
    def running(self) -> int:
        """Requests being served."""
        return max(0, self._in_flight - len(self._pending))

    def _enqueue(self, request: Request) -> TokenStream:
        """Queue ``request`` for the worker; raises ``OverloadedError`` past ``max_queue``
        in flight and ``UnavailableError`` after shutdown."""
        with self._cond:
            if self._stopping:
                raise UnavailableError("The local model has shut down.")
            if self._in_flight >= self.max_queue:
                raise OverloadedError(
                    f"The local model is busy ({self._in_flight} requests queued).",
                    hint="Retry in a moment.",
                )
            self._in_flight += 1
            self._pending.append(request)
            self._cond.notify()
        return TokenStream(request)

    def _request_stop(self) -> None:
        """Tell the worker to stop (it ends what is in flight with ``UnavailableError``)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
