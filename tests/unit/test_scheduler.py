"""The admission policy alone: no torch, no model, no threads."""

from __future__ import annotations

import pytest

from backends.local.engine.scheduler import admit_count, reserved_tokens


def admit(waiting, running, size=4, tokens=1000) -> int:
    return admit_count(waiting, running, max_batch_size=size, max_batch_tokens=tokens)


def test_admits_from_the_front_up_to_the_batch_size():
    assert admit([10, 10, 10, 10, 10], [], size=4) == 4
    assert admit([10, 10, 10], [10, 10, 10], size=4) == 1
    assert admit([10], [10, 10, 10, 10], size=4) == 0
    assert admit([], [10], size=4) == 0


def test_the_token_budget_bounds_the_batch():
    assert admit([300, 300, 300], [], tokens=1000) == 3
    assert admit([300, 300, 300, 300], [], tokens=1000) == 3
    assert admit([600], [500], tokens=1000) == 0


def test_arrival_order_no_overtaking():
    # The second request does not fit; the small third one waits behind it.
    assert admit([100, 950, 10], [], tokens=1000) == 1


def test_one_request_alone_always_runs_however_large():
    assert admit([5000, 10], [], tokens=1000) == 1
    assert admit([5000], [10], tokens=1000) == 0


@pytest.mark.parametrize(
    ("prompt", "new", "context", "expected"),
    [(10, 20, 100, 30), (90, 20, 100, 100), (100, 20, 100, 100), (120, 5, 100, 120)],
)
def test_a_request_reserves_what_fits_the_context(prompt, new, context, expected):
    assert reserved_tokens(prompt, new, context) == expected


def test_waiting_requests_are_read_only_up_to_the_first_that_waits():
    # The engine passes a generator (reserving tokens costs per request): a full batch
    # must not walk the whole queue at every step.
    read: list[int] = []

    def reserves():
        for needs in [10, 10, 10, 10]:
            read.append(needs)
            yield needs

    assert admit(reserves(), [10, 10, 10], size=4) == 1
    assert len(read) == 2  # the one admitted, and the first that did not fit
