"""The Compare tab's plain-Python parts: panes streaming together, one failing pane not
stopping the others, Stop closing every pane, and the word diff."""

from __future__ import annotations

import threading

from backends.errors import UnavailableError
from components.compare import PaneJob, stream_panes, word_diff
from components.forms import ChatForm


def _job(name: str) -> PaneJob:
    return PaneJob(backend=name, messages=[{"role": "user", "content": "hi"}], form=ChatForm())


def test_panes_grow_together_before_either_finishes() -> None:
    seen_both = threading.Event()

    def run(backend, messages, form):
        yield f"{backend}: one", ""
        # Neither pane finishes until the page has shown both mid-stream.
        assert seen_both.wait(timeout=10)
        yield f"{backend}: one two", "2 tokens"

    partial = None
    for snapshot in stream_panes([_job("a"), _job("b")], refresh_s=0.01, run=run):
        if all(s.text and not s.done for s in snapshot):
            partial = snapshot
            seen_both.set()
        final = snapshot
    assert [s.text for s in partial] == ["a: one", "b: one"]
    assert [s.text for s in final] == ["a: one two", "b: one two"]
    assert all(s.done and not s.error for s in final)


def test_a_failing_pane_keeps_its_partial_text_and_the_other_finishes() -> None:
    def run(backend, messages, form):
        yield f"{backend} starts", ""
        if backend == "bad":
            raise UnavailableError("Could not connect to http://127.0.0.1:9", hint="Is it up?")
        yield f"{backend} starts and ends", "done"

    final = list(stream_panes([_job("bad"), _job("good")], refresh_s=0.01, run=run))[-1]
    assert final[0].text == "bad starts"
    assert "Could not connect" in final[0].error and "Is it up?" in final[0].error
    assert final[1].text == "good starts and ends" and not final[1].error


def test_a_pane_without_a_target_says_why_and_runs_nothing() -> None:
    calls = []

    def run(backend, messages, form):
        calls.append(backend)
        yield "ok", ""

    jobs = [PaneJob(None, [], ChatForm(), error="No remote endpoint set."), _job("good")]
    final = list(stream_panes(jobs, refresh_s=0.01, run=run))[-1]
    assert final[0].error == "No remote endpoint set." and calls == ["good"]


def test_closing_the_compare_stream_closes_every_pane() -> None:
    closed = []

    def run(backend, messages, form):
        try:
            i = 0
            while True:
                i += 1
                yield f"{backend} {i}", ""
        finally:
            closed.append(backend)

    stream = stream_panes([_job("a"), _job("b")], refresh_s=0.01, run=run)
    next(stream)
    next(stream)
    stream.close()  # Stop all
    assert sorted(closed) == ["a", "b"]


def test_word_diff_marks_added_and_removed_words() -> None:
    pairs = word_diff("The sky is blue today.", "The sky is grey today.")
    assert ("blue", "-") in pairs and ("grey", "+") in pairs
    assert "".join(text for text, kind in pairs if kind != "-") == "The sky is grey today."
    assert word_diff("same", "same") == [("same", None)]
