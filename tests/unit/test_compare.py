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


class _Chunks:
    """A backend whose chat streams ``pieces`` then a usage chunk, as TGI does."""

    name = "fake"

    def __init__(self, pieces: list[str], finish: str = "length") -> None:
        self.pieces, self.finish = pieces, finish

    def chat_completion(self, messages, *, stream: bool = False, **params):
        from huggingface_hub import (
            ChatCompletionStreamOutput,
            ChatCompletionStreamOutputChoice,
            ChatCompletionStreamOutputDelta,
            ChatCompletionStreamOutputUsage,
        )

        def chunk(choices, usage=None):
            return ChatCompletionStreamOutput(
                choices=choices, created=0, id="1", model="m", system_fingerprint="", usage=usage
            )

        for n, piece in enumerate(self.pieces):
            reason = self.finish if n == len(self.pieces) - 1 else None
            delta = ChatCompletionStreamOutputDelta(role="assistant", content=piece)
            yield chunk(
                [ChatCompletionStreamOutputChoice(delta=delta, index=0, finish_reason=reason)]
            )
        n = len(self.pieces)
        yield chunk([], ChatCompletionStreamOutputUsage(
            completion_tokens=n, prompt_tokens=3, total_tokens=3 + n
        ))  # fmt: skip


def test_measured_run_reports_tokens_time_to_first_token_and_finish() -> None:
    from components.compare_api import measured_run

    *_, (text, _, facts) = measured_run(_Chunks(["Hel", "lo", "!"]), [], ChatForm())
    assert text == "Hello!"
    assert facts.tokens == 3 and facts.finish_reason == "length"
    assert facts.ttft_ms is not None and facts.ttft_ms >= 0


def test_run_targets_gives_one_result_per_target_a_failing_one_alone() -> None:
    from components.compare_api import run_targets

    jobs = [
        PaneJob(_Chunks(["Hi", " there"], finish="stop"), [], ChatForm()),
        PaneJob(None, [], ChatForm(), error="Could not connect to http://127.0.0.1:9"),
    ]
    good, bad = run_targets(jobs, ["local model", "http://127.0.0.1:9"], refresh_s=0.01)
    assert good == {
        "target": "local model", "text": "Hi there", "tokens": 2, "ttft_ms": good["ttft_ms"],
        "tokens_per_s": good["tokens_per_s"], "finish_reason": "stop", "error": None,
    }  # fmt: skip
    assert bad["error"] == "Could not connect to http://127.0.0.1:9"
    assert (bad["text"], bad["tokens"], bad["finish_reason"]) == ("", 0, None)


def test_a_blind_deal_is_a_permutation_that_changes_between_rounds() -> None:
    import random

    from components.compare_blind import deal

    rng = random.Random(7)
    deals = [tuple(deal(4, rng)) for _ in range(30)]
    assert all(sorted(order) == [0, 1, 2, 3] for order in deals)
    assert len(set(deals)) > 5
    assert {tuple(deal(2)) for _ in range(60)} == {(0, 1), (1, 0)}  # the real, unseeded one


def test_a_blind_stats_line_names_nothing_before_the_vote() -> None:
    from components.compare_blind import masked_line

    failed = masked_line("Could not connect to http://10.0.0.7:8080", done=True)
    assert "10.0.0.7" not in failed and "🔴" in failed
    assert masked_line("", done=False) == "… answering"
    assert "done" in masked_line("", done=True)


def test_blind_vote_buttons_for_two_three_and_four_panes() -> None:
    from components.compare_blind import vote_buttons

    def shown(n):
        return [label for label, visible in vote_buttons(n) if visible]

    assert shown(2) == ["A better", "B better", "Tie", "Both bad"]
    assert shown(3) == ["A best", "B best", "C best", "Tie", "All bad"]
    assert shown(4) == ["A best", "B best", "C best", "D best", "Tie", "All bad"]


def test_text_generation_panes_continue_the_prompt_on_the_local_model(local_backend) -> None:
    """Two local panes in text-generation mode, greedy: each continues the raw prompt (no
    chat template) exactly as the text-generation endpoint does, with a finish reason."""
    from components.compare import complete

    prompt = "The capital of France is"
    form = ChatForm(max_tokens=6, temperature=0.0, top_p=1.0)
    jobs = [PaneJob(local_backend, prompt, form), PaneJob(local_backend, prompt, form)]
    *_, last = stream_panes(jobs, run=complete)
    expected = local_backend.text_generation(prompt, max_new_tokens=6, do_sample=False)
    assert [state.text for state in last] == [expected, expected]
    assert all(state.line.endswith("finish: length") and not state.error for state in last)
