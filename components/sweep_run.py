"""Running a sweep's cells (plain Python, no gradio): a bounded thread pool, each cell
streamed through its target's backend and measured (tokens, time to first token, tok/s,
finish reason), checked, and the whole grid's state yielded as it changes.

Stop (an event set, or closing ``run_sweep``) cancels the cells not started and closes
every open stream (the local engine frees their slots, remote HTTP streams are closed); a
target that fails
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
from components.sweep_grid import Cell
from components.sweep_results import CellResult, Checks, CompiledChecks, error_text

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
    stopped: bool = False  # Stop ended the sweep (this is its last progress)

    @property
    def total(self) -> int:
        return len(self.records)

    def line(self, *, finished: bool = False) -> str:
        """E.g. "12/36 cells · 4 running · 1 failed · 3.2 s"."""
        if self.stopped:
            return f"⏹ Stopped: {self.done}/{self.total} cells finished · {self.elapsed_s:.1f} s"
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
    ticker, interrupted = None, False
    try:
        stream = backend.chat_completion(cell.messages, **cell.keywords, stream=True)
        ticker = with_ticks(stream, interval=TICK_S)
        for chunk in ticker:
            if stop.is_set():
                interrupted = True
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
        error = ""
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
        result.state = "stopped" if interrupted else ("failed" if error else "done")


def run_sweep(
    cells: Sequence[Cell],
    backends: Sequence[Backend | Exception],
    *,
    checks: CompiledChecks | None = None,
    concurrency: int = 4,
    refresh_s: float = REFRESH_S,
    stop: threading.Event | None = None,
    cell_runner=run_cell,
) -> Iterator[Progress]:
    """Run ``cells`` (``backends[cell.target]``; an exception there is that target's
    failure, set on its cells without running them), ``concurrency`` at a time. Yields the
    progress every ``refresh_s`` while cells run, and once more at the end.

    Setting ``stop`` (Stop) closes every open stream, runs no further cell and ends with
    a last progress (``stopped``) where the unfinished cells are marked stopped. Closing
    this generator stops the sweep the same way, without that last progress."""
    checks = checks or Checks().compiled()
    results = [CellResult(cell) for cell in cells]
    lock = threading.Lock()
    stop = stop or threading.Event()
    started = time.perf_counter()
    running = [0, 0]  # now, most at once

    def work(result: CellResult) -> None:
        with lock:
            if stop.is_set():
                result.state = "stopped"
                return
            result.state = "running"
            running[0] += 1
            running[1] = max(running)
        try:
            cell_runner(backends[result.cell.target], result, checks, stop, lock)
        finally:
            with lock:
                running[0] -= 1

    def snapshot(stopped: bool = False) -> Progress:
        with lock:
            records = [replace(r, checks=dict(r.checks)).record() for r in results]
            done = sum(r.finished for r in results)
            failed = sum(r.state == "failed" for r in results)
            now, most = running
        elapsed = time.perf_counter() - started
        return Progress(records, done, now, failed, most, elapsed, stopped)

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
            if stop.is_set():
                pool.shutdown(wait=True, cancel_futures=True)  # the open streams are closed
                with lock:
                    for result in results:
                        if not result.finished:
                            result.state = "stopped"
                yield snapshot(stopped=True)
                return
            yield snapshot()
            stop.wait(refresh_s)
        yield snapshot()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
