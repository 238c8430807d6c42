"""Pieces every tab shares: status banner, stats line, the one adapter from
``BackendError`` to Gradio's error toast, and preset wiring."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import gradio as gr

from backends import Backend
from backends.errors import BackendError, InputValidationError, OverloadedError

GENERATION_CONCURRENCY_ID = "generation"
# Chat and text-generation jobs running at once: no limit in Gradio (None); the local
# engine admits, batches and queues them itself, remote endpoints answer 429 when full.
GENERATION_CONCURRENCY = None


def _title(exc: BackendError) -> str:
    if isinstance(exc, InputValidationError):
        return "Invalid input"
    if isinstance(exc, OverloadedError):
        return "Busy — retry in a moment"
    return "Generation failed"


def to_gradio_error(exc: BackendError) -> gr.Error:
    """For API endpoints: the error a client receives, with the backend's reason."""
    return gr.Error(exc.user_message(), title=_title(exc), print_exception=False)


def api_text(value: object, name: str) -> str:
    """A Gradio API endpoint's text argument (``None`` is empty). A client may send any
    JSON there: anything but a string is refused naming the argument."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise gr.Error(
            f"`{name}` must be a string (got {type(value).__name__}).",
            title="Invalid input",
            print_exception=False,
        )
    return value


def api_messages(value: object, name: str) -> list[dict]:
    """A Gradio API endpoint's list of ``{"role", "content"}`` messages (``None`` is none)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise gr.Error(
            f'`{name}` must be a list of {{"role", "content"}} messages.',
            title="Invalid input",
            print_exception=False,
        )
    return value


def show_error(exc: BackendError) -> None:
    """For UI handlers: a toast with the reason; outputs keep what they show. (Raising
    ``gr.Error`` would cover the chat or the partial output with an error overlay.)"""
    gr.Warning(exc.user_message(), title=_title(exc), duration=15)


def show_problem(message: str, title: str) -> None:
    """A toast for input the UI refuses before calling a backend (e.g. an empty message)."""
    gr.Warning(message, title=title, duration=6)


@dataclass
class StreamStats:
    """Time to first token and decode speed, measured where the user sees the tokens."""

    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    last_token_at: float | None = None
    tokens: int = 0

    def token(self, count: int = 1) -> None:
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.tokens += count

    def line(
        self,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        extra: str = "",
    ) -> str:
        """E.g. "38 prompt + 32 completion tokens · first token 0.21 s · 21.3 tokens/s"."""
        completion = completion_tokens if completion_tokens is not None else self.tokens
        parts = []
        if prompt_tokens is not None:
            parts.append(f"{prompt_tokens} prompt + {completion} completion tokens")
        else:
            parts.append(f"{completion} completion tokens")
        if self.first_token_at is not None:
            parts.append(f"first token {self.first_token_at - self.started:.2f} s")
            span = (self.last_token_at or self.first_token_at) - self.first_token_at
            if completion > 1 and span > 0:
                parts.append(f"{(completion - 1) / span:.1f} tokens/s")
        if extra:
            parts.append(extra)
        return " · ".join(parts)


TICK = object()  # yielded by ``with_ticks`` while the next item is slow to come
_END = object()


def with_ticks(items: Iterable, interval: float = 1.0) -> Iterator:
    """Yield ``items``, and ``TICK`` every ``interval`` seconds while the next one is slow
    to come (a model loading, a remote endpoint retrying), so the UI can say why it waits.

    Items are pulled one at a time in a worker thread; when the consumer goes away the
    worker closes ``items`` after its current item, so a cancelled stream still stops
    within one token.
    """
    iterator = iter(items)
    wanted: queue.SimpleQueue[bool] = queue.SimpleQueue()
    results: queue.SimpleQueue[tuple[object, BaseException | None]] = queue.SimpleQueue()

    def pull() -> None:
        try:
            while wanted.get():
                try:
                    results.put((next(iterator), None))
                except StopIteration:
                    results.put((_END, None))
                    return
                except BaseException as exc:  # re-raised in the consumer
                    results.put((None, exc))
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    threading.Thread(target=pull, name="stream-pull", daemon=True).start()
    try:
        while True:
            wanted.put(True)
            while True:
                try:
                    item, error = results.get(timeout=interval)
                    break
                except queue.Empty:
                    yield TICK
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        wanted.put(False)


def waiting_line(backend: Backend, started: float, stream: object = None) -> str:
    """The stats line while waiting for a token: why, and for how long. A local
    ``stream`` says its place in the engine's queue and a wait estimate."""
    status = backend.status()
    waited = f"{time.perf_counter() - started:.0f} s"
    if status.state == "loading":
        return f"⏳ {status.message} (waited {waited})"
    place = stream.waiting() if callable(getattr(stream, "waiting", None)) else None
    if place is not None:
        position, seconds = place
        # The estimate comes from recent requests' durations: shown once it means something.
        estimate = f", about {seconds:.0f} s to go" if seconds is not None and seconds >= 1 else ""
        return (
            f"⏳ In the local model's queue: position {position}{estimate} "
            f"(waited {waited}; others' requests are running)"
        )
    return f"⏳ waiting for the first token… ({waited})"


STATUS_REFRESH_S = {"loading": 1.0, "ready": 5.0}  # a failed backend is not polled again


def status_markdown(backend: Backend) -> str:
    status = backend.status()
    icon = {"loading": "⏳", "ready": "🟢", "failed": "🔴"}[status.state]
    text = f"{icon} **{backend.name} model** — {status.message}"
    if status.warning:
        text += f"\n\n⚠️ {status.warning}"
    return text


def _banner(backend: Backend) -> dict:
    """The banner's text and colour class (``status-failed`` turns it red)."""
    state = backend.status().state
    return gr.update(value=status_markdown(backend), elem_classes=[f"status-{state}"])


def render_status(backend: Backend) -> gr.Markdown:
    """A banner that shows the backend's state: refreshed every second while loading, then
    every few seconds, so an engine that dies later turns it red without a reload."""
    # A callable value is evaluated on every page load, so a page opened after the model
    # is ready never shows a stale "loading".
    state = backend.status().state
    banner = gr.Markdown(
        lambda: status_markdown(backend), elem_id="backend-status", elem_classes=[f"status-{state}"]
    )
    timer = gr.Timer(1.0, active=True)

    def refresh() -> tuple[dict, gr.Timer]:
        interval = STATUS_REFRESH_S.get(backend.status().state)
        return _banner(backend), gr.Timer(value=interval or 1.0, active=interval is not None)

    timer.tick(refresh, outputs=[banner, timer], api_visibility="private", show_progress="hidden")
    return banner


def loading_notice(backend: Backend) -> str | None:
    """Text to show in place of output while the model is still loading (else ``None``)."""
    status = backend.status()
    return f"⏳ {status.message}" if status.state == "loading" else None


def wire_presets(
    dropdown: gr.Dropdown,
    presets: dict,
    outputs: list[gr.components.Component],
    values: Callable[[object], list],
) -> None:
    """Selecting a preset fills ``outputs`` with ``values(preset)``."""

    def apply(name: str):
        preset = presets.get(name)
        if preset is None:
            return [gr.update() for _ in outputs]
        return values(preset)

    dropdown.change(apply, dropdown, outputs, api_visibility="private", show_progress="hidden")
