"""What both local engines share between the threads that submit requests and the worker
that serves them: the bounded queue (``RequestQueue``) and the consumer's ``TokenStream``."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from backends.errors import BackendError, OverloadedError, UnavailableError
from backends.local.engine.sequence import Request, TokenEvent, end_request

log = logging.getLogger("backends.local.engine")


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


@dataclass(frozen=True)
class EngineEvent:
    """A fact about the engine's work, for observers (``RequestQueue.on_event``): tests and
    tools read these instead of log text. ``admitted``: a request joined the running batch
    (``running``/``waiting`` after it); ``cancelled``: a request was dropped by its consumer
    after ``tokens`` generated tokens."""

    kind: Literal["admitted", "cancelled"]
    facts: dict[str, int] = field(default_factory=dict)


_EVENT_LOG = {
    "admitted": (logging.DEBUG, "request admitted: {running} running, {waiting} waiting"),
    "cancelled": (logging.INFO, "request cancelled after {tokens} tokens"),
}


class RequestQueue:
    """Requests submitted from any thread wait in ``_pending`` for the engine's worker; at
    most ``max_queue`` are in flight (running + waiting). ``_cond`` guards ``_pending``,
    ``_in_flight`` and ``_stopping``; the worker waits on it.

    The worker runs ``_run`` (each engine's loop) inside ``_work``: if the loop itself dies
    (any exception that escapes it), ``failure`` is set, every request in flight ends with
    it, and every later ``submit`` raises it — an ``UnavailableError`` (HTTP 503) with the
    reason — instead of waiting forever on a worker that is gone.
    """

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self.failure: BackendError | None = None  # set once when the worker has died
        # Called (on the worker thread) with every EngineEvent; keep it quick.
        self.on_event: Callable[[EngineEvent], None] | None = None
        self._cond = threading.Condition()
        self._pending: deque[Request] = deque()
        self._in_flight = 0
        self._stopping = False

    def _emit(self, kind: str, **facts: int) -> None:
        """Log the fact and hand it to the observer."""
        level, message = _EVENT_LOG[kind]
        log.log(level, message.format(**facts))
        if self.on_event is not None:
            self.on_event(EngineEvent(kind, facts))

    def _start_worker(self, name: str) -> None:
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def _serving(self) -> list[Request]:
        """Requests the worker has taken from ``_pending`` and not ended (engine-specific)."""
        return []

    def _work(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # the loop itself broke: nothing will serve requests
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        log.critical("the local engine's worker died; requests now fail", exc_info=exc)
        failure = UnavailableError(
            f"The local engine stopped: {type(exc).__name__}: {exc}",
            hint="Restart the app; the server log has the stack trace.",
        )
        with self._cond:
            self.failure = failure
            self._stopping = True
            requests = [*self._serving(), *self._pending]
            self._pending.clear()
        for request in requests:
            self._end(request, failure)

    def _end(self, request: Request, error: BaseException | None = None) -> None:
        """End ``request``'s stream, once only (a failure of a whole batch can reach a
        request that had just ended); it is counted out before its stream ends, so a
        consumer that has seen its end never finds it still counted."""
        if request.ended:
            return
        request.ended = True
        with self._cond:
            self._in_flight -= 1
        end_request(request, error)

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
            if self.failure is not None:
                raise self.failure
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
