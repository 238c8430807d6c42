"""What both local engines share between the threads that submit requests and the worker
that serves them: the bounded queue (``RequestQueue``) and the consumer's ``TokenStream``."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from backends.errors import BackendError, OverloadedError, UnavailableError
from backends.local.engine.scheduler import admit_count
from backends.local.engine.sequence import Request, Sequence, TokenEvent, end_request

log = logging.getLogger("backends.local.engine")


class TokenStream:
    """Iterator over a request's ``TokenEvent``s. ``close()`` cancels the request; use it
    in a ``finally`` (or as a context manager) so an abandoned consumer frees the engine."""

    def __init__(self, request: Request, queue: RequestQueue | None = None) -> None:
        self._request = request
        self._queue = queue

    def __iter__(self) -> Iterator[TokenEvent]:
        yield from self._request.stream()

    def waiting(self) -> tuple[int, float | None] | None:
        """While the request waits for the engine: ``(position, seconds)`` — its place in
        the queue (1 = next) and a rough wait estimate (None before any request finished);
        None once it runs."""
        if self._queue is None:
            return None
        position = self._queue.position(self._request)
        return (position, self._queue.wait_estimate(position)) if position else None

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
    after ``tokens`` generated tokens; ``done``: a request finished (``prompt`` and
    ``tokens`` counts, ``seconds``, ``finish`` reason)."""

    kind: Literal["admitted", "cancelled", "done"]
    facts: dict[str, Any] = field(default_factory=dict)


_EVENT_LOG = {
    "admitted": (logging.DEBUG, "request admitted: {running} running, {waiting} waiting"),
    "cancelled": (logging.INFO, "request cancelled after {tokens} tokens"),
    "done": (
        logging.INFO,
        "request done: {prompt} prompt + {tokens} new tokens in {seconds:.2f} s ({finish})",
    ),
}


class RequestQueue:
    """The one admission path of a local engine: requests submitted from any thread wait
    here for the engine's worker, at most ``max_queue`` in flight (running + waiting); past
    it ``submit`` raises ``OverloadedError`` (HTTP 429). Every request is counted in at
    ``submit`` and out exactly once, by ``end``, whoever ends it.

    An engine owns one (``engine.queue``) and runs its worker loop through ``start``: if
    the loop itself dies (any exception that escapes it), ``failure`` is set, every request
    in flight ends with it and every later ``submit`` raises it — an ``UnavailableError``
    (HTTP 503) naming the reason — instead of waiting forever on a worker that is gone.

    Args:
        max_queue: requests in flight past which ``submit`` refuses.
        serving: the requests the worker has taken and not ended (ended on worker death).
    """

    def __init__(self, max_queue: int, *, serving: Callable[[], list[Request]] = list) -> None:
        self.max_queue = max_queue
        self.failure: BackendError | None = None  # set once when the worker has died
        # Called (on the worker thread) with every EngineEvent; keep it quick.
        self.on_event: Callable[[EngineEvent], None] | None = None
        self._serving = serving
        self._cond = threading.Condition()  # guards _pending, _in_flight, _stopping
        self._pending: deque[Request] = deque()
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Cumulative counts since start, kept from the events (``metrics()``).
        self._totals = {
            "admitted": 0,
            "cancelled": 0,
            "cancelled_tokens": 0,
            "tokens": 0,
            "errors": 0,
        }
        self._finished: dict[str, int] = {}  # finish reason → requests done
        self._recent_seconds: float | None = None  # moving average of a request's duration

    # -- counts --------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet ended (running ones included)."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests not yet taken by the worker."""
        return len(self._pending)

    @property
    def running(self) -> int:
        """Requests taken by the worker and not ended."""
        return max(0, self._in_flight - len(self._pending))

    def metrics(self) -> dict[str, Any]:
        """A snapshot for monitoring (``/api/metrics``): counts since start — ``admitted``
        (batch admissions), ``cancelled`` requests and the ``cancelled_tokens`` they had
        generated, generated ``tokens``, ``errors`` (requests ended with an error: out of
        memory, a failed step, shutdown), ``finished`` (finish reason → requests) — and now:
        ``running``, ``waiting``, ``max_queue``, ``failed`` (0/1)."""
        with self._cond:
            return {
                **self._totals,
                "finished": dict(self._finished),
                "running": self.running,
                "waiting": self.waiting,
                "max_queue": self.max_queue,
                "failed": int(self.failure is not None),
            }

    def position(self, request: Request) -> int:
        """``request``'s place among the waiting requests still wanted (1 = next); 0 when
        it is not waiting (running or ended)."""
        with self._cond:
            place = 0
            for waiting in self._pending:
                if waiting.cancelled.is_set():
                    continue
                place += 1
                if waiting is request:
                    return place
            return 0

    def wait_estimate(self, position: int) -> float | None:
        """Seconds until the request at ``position`` starts, roughly: one running request
        ends every (average duration ÷ requests running) seconds. None before any finished."""
        with self._cond:
            if self._recent_seconds is None:
                return None
            return position * self._recent_seconds / max(1, self.running)

    def counts(self) -> tuple[int, int]:
        """``(running, waiting)``, read together."""
        with self._cond:
            return self.running, self.waiting

    # -- submitting side -----------------------------------------------------------------

    def submit(self, request: Request) -> TokenStream:
        """Queue ``request`` for the worker; raises ``OverloadedError`` past ``max_queue``
        in flight, ``UnavailableError`` after shutdown or the worker's death."""
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
        return TokenStream(request, self)

    # -- worker side ---------------------------------------------------------------------

    def start(self, run: Callable[[], None], name: str) -> None:
        """Run the engine's worker loop ``run`` on a daemon thread, guarded (see above)."""

        def work() -> None:
            try:
                run()
            except BaseException as exc:  # the loop itself broke: nothing will serve requests
                self.die(exc)

        self._thread = threading.Thread(target=work, name=name, daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait(self, busy: Callable[[], bool] = lambda: False) -> bool:
        """Block until a request waits, ``busy()`` (the worker has work of its own) or a
        stop; False once stopping."""
        with self._cond:
            while not (self._pending or busy() or self._stopping):
                self._cond.wait()
            return not self._stopping

    def next(self) -> Request | None:
        """The oldest waiting request (blocking until there is one), None once stopping."""
        with self._cond:
            while not (self._pending or self._stopping):
                self._cond.wait()
            return None if self._stopping else self._pending.popleft()

    def take(self, count: Callable[[list[Request]], int]) -> list[Request]:
        """End the waiting requests their consumers gave up on, then take the first
        ``count(waiting)`` of the rest (oldest first) for the worker."""
        with self._cond:
            for request in [r for r in self._pending if r.cancelled.is_set()]:
                self._pending.remove(request)  # gave up while waiting: nothing to cancel
                self.end(request)
            return [self._pending.popleft() for _ in range(count(list(self._pending)))]

    def admit(
        self,
        running: list[int],
        reserve: Callable[[Request], int],
        *,
        max_batch_size: int,
        max_batch_tokens: int,
    ) -> list[Request]:
        """Take the waiting requests that join a batch whose members reserve ``running``
        tokens (``scheduler.admit_count``, in arrival order; ``reserve`` is read lazily:
        most steps admit none) and report each as ``admitted``."""

        def count(waiting: list[Request]) -> int:
            return admit_count(
                (reserve(r) for r in waiting),
                running,
                max_batch_size=max_batch_size,
                max_batch_tokens=max_batch_tokens,
            )

        admitted = self.take(count)
        waiting = self.waiting
        for i in range(len(admitted)):
            self.emit("admitted", running=len(running) + i + 1, waiting=waiting)
        return admitted

    def end(self, request: Request, error: BaseException | None = None) -> None:
        """End ``request``'s stream, once only (a failure of a whole batch can reach a
        request that had just ended); it is counted out before its stream ends, so a
        consumer that has seen its end never finds it still counted."""
        if request.ended:
            return
        request.ended = True
        with self._cond:
            self._in_flight -= 1
            if error is not None:
                self._totals["errors"] += 1
        end_request(request, error)

    def drain(self, error: BaseException, serving: list[Request] = ()) -> None:
        """End ``serving`` and every waiting request with ``error`` (shutdown)."""
        with self._cond:
            requests = [*serving, *self._pending]
            self._pending.clear()
        for request in requests:
            self.end(request, error)

    def deliver(self, sequence: Sequence, event: TokenEvent | None) -> None:
        """Stream ``event`` (``Sequence.step``'s) to its consumer; a last one is ``done``."""
        if event is None:
            return
        sequence.request.events.put(event)
        if event.finish_reason:
            self.emit(
                "done",
                prompt=sequence.input_length,
                tokens=event.index,
                seconds=time.perf_counter() - sequence.started,
                finish=event.finish_reason,
            )

    def emit(self, kind: str, **facts: Any) -> None:
        """Log the fact and hand it to the observer."""
        level, message = _EVENT_LOG[kind]
        log.log(level, message.format(**facts))
        with self._cond:
            if kind == "admitted":
                self._totals["admitted"] += 1
            elif kind == "cancelled":
                self._totals["cancelled"] += 1
                self._totals["cancelled_tokens"] += facts["tokens"]
                self._totals["tokens"] += facts["tokens"]
            else:  # done
                self._finished[facts["finish"]] = self._finished.get(facts["finish"], 0) + 1
                self._totals["tokens"] += facts["tokens"]
                seconds, recent = facts["seconds"], self._recent_seconds
                self._recent_seconds = seconds if recent is None else 0.7 * recent + 0.3 * seconds
        if self.on_event is not None:
            self.on_event(EngineEvent(kind, facts))

    def die(self, exc: BaseException) -> None:
        """The worker is gone: fail everything in flight and every later ``submit``."""
        log.critical("the local engine's worker died; requests now fail", exc_info=exc)
        failure = UnavailableError(
            f"The local engine stopped: {type(exc).__name__}: {exc}",
            hint="Restart the app; the server log has the stack trace.",
        )
        with self._cond:
            self.failure = failure
            self._stopping = True
        self.drain(failure, self._serving())

    def stop(self, timeout: float = 10.0) -> bool:
        """Tell the worker to stop (it ends what is in flight with ``UnavailableError``)
        and wait for it; True when it has stopped."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is None:
            return True
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()
