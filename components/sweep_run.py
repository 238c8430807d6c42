"""Running a sweep's cells (plain Python, no gradio): a bounded thread pool, each cell
streamed through its target's backend and measured (tokens, time to first token, tok/s,
finish reason), checked, and the whole grid's state yielded as it changes.

Closing ``run_sweep`` (Stop) cancels the cells not started and closes every open stream
(the local engine frees their slots, remote HTTP streams are closed); a target that fails
fills its own cells' error column while the others go on. Local cells run concurrently on
the local engine, which batches them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from backends import Backend
from components.common import TICK, with_ticks
from components.sweep_grid import Cell, CellResult, Checks, CompiledChecks, error_text

REFRESH_S = 0.25  # how often the grid's state is pushed to the page
TICK_S = 0.2  # how often a cell waiting for a token looks at Stop


@dataclass(frozen=True)
class Progress:
    """The sweep so far: every cell's record (in cell order) and the counts."""

    records: list[dict[str, Any]]
    done: int
    running: int
    failed: int
    max_running: int  # the most cells that ran at once
    elapsed_s: float

    @property
    def total(self) -> int:
        return len(self.records)

    def line(self, *, finished: bool = False) -> str:
        """E.g. "12/36 cells · 4 running · 1 failed · 3.2 s"."""
        parts = [f"{self.done}/{self.total} cells"]
        if self.running:
            parts.append(f"{self.running} running")
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{self.elapsed_s:.1f} s")
        if finished:
            parts.append(f"up to {self.max_running} at once")
        return ("✅ " if finished else "⏳ ") + " · ".join(parts)


def run_cell(
    backend: Backend, result: CellResult, checks: CompiledChecks, stop: threading.Event,
    lock: threading.Lock,
) -> None:  # fmt: skip
    """Stream one cell into ``result`` (under ``lock``); never raises."""
    cell = result.cell
    started = time.perf_counter()
    first = last = None
    deltas, text, finish, usage = 0, "", None, None
    ticker = None
    try:
        stream = backend.chat_completion(cell.messages, **cell.keywords, stream=True)
        ticker = with_ticks(stream, interval=TICK_S)
        for chunk in ticker:
            if stop.is_set():
                break
            if chunk is TICK:
                continue
            if chunk.choices:
                delta = chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
                if delta:
                    last = time.perf_counter()
                    first = first or last
                    deltas += 1
                    text += delta
                    with lock:
                        result.output = text
            usage = chunk.usage or usage
        error = "stopped" if stop.is_set() else ""
    except Exception as exc:  # one cell (one target) never takes the sweep down
        error = error_text(exc)
    finally:
        if ticker is not None:
            ticker.close()  # the stream is closed by its reader: engine slot, HTTP connection
    total_ms = (time.perf_counter() - started) * 1000
    span = (last - first) if first is not None and last is not None else 0
    tokens = usage.completion_tokens if usage is not None else deltas
    with lock:
        result.output = text
        result.tokens = tokens if (text or usage is not None) else None
        result.ttft_ms = (first - started) * 1000 if first is not None else None
        result.total_ms = total_ms if not error else None
        result.tok_s = (deltas - 1) / span if deltas > 1 and span > 0 else None
        result.finish_reason = finish or ""
        result.error = error
        result.checks = checks.evaluate(text, result.total_ms) if not error else {}
        result.state = "failed" if error else "done"


def run_sweep(
    cells: Sequence[Cell],
    backends: Sequence[Backend | Exception],
    *,
    checks: CompiledChecks | None = None,
    concurrency: int = 4,
    refresh_s: float = REFRESH_S,
    cell_runner=run_cell,
) -> Iterator[Progress]:
    """Run ``cells`` (``backends[cell.target]``; an exception there is that target's
    failure, set on its cells without running them), ``concurrency`` at a time. Yields the
    progress every ``refresh_s`` while cells run, and once more at the end. Closing this
    generator stops the sweep."""
    checks = checks or Checks().compiled()
    results = [CellResult(cell) for cell in cells]
    lock = threading.Lock()
    stop = threading.Event()
    started = time.perf_counter()
    running = [0, 0]  # now, most at once

    def work(result: CellResult) -> None:
        with lock:
            if stop.is_set():
                result.state, result.error = "failed", "stopped"
                return
            result.state = "running"
            running[0] += 1
            running[1] = max(running)
        try:
            cell_runner(backends[result.cell.target], result, checks, stop, lock)
        finally:
            with lock:
                running[0] -= 1

    def snapshot() -> Progress:
        with lock:
            records = [replace(r, checks=dict(r.checks)).record() for r in results]
            done = sum(r.finished for r in results)
            failed = sum(r.state == "failed" for r in results)
            now, most = running
        return Progress(records, done, now, failed, most, time.perf_counter() - started)

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="sweep")
    futures = []
    for result in results:
        broken = backends[result.cell.target]
        if isinstance(broken, Exception):
            result.state, result.error = "failed", error_text(broken)
        else:
            futures.append(pool.submit(work, result))
    try:
        while not all(future.done() for future in futures):
            yield snapshot()
            time.sleep(refresh_s)
        yield snapshot()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
