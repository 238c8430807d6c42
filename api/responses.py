"""Backend answers as HTTP: huggingface_hub output types as JSON, streams as SSE."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.responses import Response

from backends.errors import BackendError


def plain(value: Any) -> Any:
    """A huggingface_hub output type as JSON-ready data, without ``None`` fields."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


_DONE = object()


class _Bridge:
    """Pulls a blocking backend stream from async code, one item per worker-thread call.

    Cancellation (client gone) lands between items, after which the backend generator is
    closed, so the engine stops within one token.
    """

    def __init__(self, stream: Iterator[Any]) -> None:
        self.stream = stream

    async def next(self) -> Any:
        return await anyio.to_thread.run_sync(next, self.stream, _DONE)

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


async def event_stream(
    stream: Iterator[Any], encode: Callable[[Any], Any], done: str | None
) -> Response:
    """SSE ``data:`` events, one per item of ``stream`` (``encode``d), then ``done``.

    Errors before the first item propagate (the caller's 429/422 keep their status codes,
    see ``api.errors``); a ``BackendError`` after it becomes a last ``data:`` event."""
    bridge = _Bridge(stream)
    closed = False

    def cleanup() -> None:
        # Idempotent: runs when the events end, and again as the response's background
        # task, which also covers a client gone before the first event was sent.
        nonlocal closed
        if not closed:
            closed = True
            bridge.close()

    try:
        first = await bridge.next()
    except BaseException:
        cleanup()
        raise

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            item = first
            while item is not _DONE:
                yield {"data": json.dumps(encode(item), ensure_ascii=False)}
                item = await bridge.next()
            if done is not None:
                yield {"data": done}
        except BackendError as exc:
            yield {"data": json.dumps(exc.to_json())}
        finally:
            cleanup()

    return EventSourceResponse(events(), sep="\n", ping=15, background=BackgroundTask(cleanup))
