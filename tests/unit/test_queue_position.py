"""Where a request waits in the local engine's queue (``RequestQueue.position`` /
``wait_estimate``, ``TokenStream.waiting``) and the line the tabs show from it."""

from __future__ import annotations

import time

from backends import BackendStatus
from backends.local.engine.queue import RequestQueue
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.sequence import Request
from backends.local.outputs import LocalStream, QueueSpot
from components.common import waiting_line


def _submit(queue: RequestQueue):
    request = Request([1, 2, 3], SamplingParams(max_new_tokens=4))
    return request, queue.submit(request)


def test_positions_count_the_waiting_requests_still_wanted() -> None:
    queue = RequestQueue(max_queue=8)
    (first, s1), (second, s2), (third, s3) = (_submit(queue) for _ in range(3))
    assert [queue.position(r) for r in (first, second, third)] == [1, 2, 3]
    s1.close()  # gave up while waiting: the others move up
    assert s2.waiting()[0] == 1 and s3.waiting()[0] == 2
    taken = queue.take(lambda waiting: 1)  # the worker takes the next one
    assert taken == [second]
    assert s2.waiting() is None  # running: no place in the queue
    assert s3.waiting()[0] == 1


def test_the_estimate_follows_finished_requests_and_the_running_count() -> None:
    queue = RequestQueue(max_queue=8)
    _submit(queue)
    _, stream = _submit(queue)
    queue.take(lambda pending: 1)  # the first runs
    assert stream.waiting() == (1, None)  # nothing finished yet: no guess
    queue.emit("done", prompt=3, tokens=10, seconds=4.0, finish="length")
    position, seconds = stream.waiting()
    assert position == 1 and seconds == 4.0  # one running, 4 s a request
    queue.emit("done", prompt=3, tokens=10, seconds=2.0, finish="length")
    assert stream.waiting()[1] < 4.0  # a moving average, not the first figure forever


class _Engine:
    def __init__(self, queue: RequestQueue) -> None:
        self.queue = queue

    def submit(self, ids, sampling):
        return self.queue.submit(Request(ids, sampling))


class _Ready:
    def status(self) -> BackendStatus:
        return BackendStatus("ready", "ok")


def test_a_local_stream_reports_its_place_and_the_tab_line_says_it() -> None:
    queue = RequestQueue(max_queue=8)
    _submit(queue)  # someone else's request, ahead
    spot = QueueSpot(_Engine(queue))

    def outputs():
        with spot.submit([1], SamplingParams(max_new_tokens=4)) as stream:
            yield from stream

    stream = LocalStream(outputs(), spot)
    assert stream.waiting() is None  # not submitted before the first read
    spot.submit([1], SamplingParams(max_new_tokens=4))
    assert stream.waiting() == (2, None)
    line = waiting_line(_Ready(), time.perf_counter(), stream)
    assert "In the local model's queue: position 2" in line
    queue.emit("done", prompt=1, tokens=5, seconds=3.0, finish="length")
    assert "about 6 s to go" in waiting_line(_Ready(), time.perf_counter(), stream)
    # A remote stream (no ``waiting``) keeps the plain line.
    assert "waiting for the first token" in waiting_line(_Ready(), time.perf_counter(), iter([]))
