"""The tabs' pure functions: history handling, parameter mapping, stats, and ``run`` on
the real bundled model."""

from types import SimpleNamespace

import gradio as gr
import pytest

from backends.errors import InputValidationError, OverloadedError
from components import chat, text_generation
from components.common import StreamStats, to_gradio_error
from components.forms import ChatForm, TextGenerationForm

HISTORY = [
    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    {"role": "user", "content": "Tell me a joke"},
    {"role": "assistant", "content": "Why did the chicken…"},
]


def test_to_messages_reduces_gradio_parts_to_strings_and_puts_system_first():
    messages = chat.to_messages(HISTORY, "Be brief.")
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1:] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
        {"role": "assistant", "content": "Why did the chicken…"},
    ]
    assert chat.to_messages(HISTORY, "  ")[0]["role"] == "user"


def test_add_user_appends_and_clears_and_refuses_empty():
    text, history = chat.add_user("Next", HISTORY)
    assert text == "" and history[-1] == {"role": "user", "content": "Next"}
    assert len(HISTORY) == 4  # the input list is not mutated
    # An empty message is refused with a toast (a warning outside a Gradio request) and
    # leaves the chat as it was.
    with pytest.warns(UserWarning, match="Type a message"):
        assert chat.add_user("   ", HISTORY) == ("   ", HISTORY)


def test_retry_keeps_up_to_the_last_user_message():
    assert chat.drop_reply(HISTORY) == HISTORY[:3]
    with pytest.warns(UserWarning, match="Nothing to retry"):
        assert chat.drop_reply([]) == []


def test_undo_removes_the_last_turn_and_returns_its_text():
    history, text = chat.undo_turn(HISTORY)
    assert history == HISTORY[:2] and text == "Tell me a joke"
    assert chat.undo_turn([]) == ([], "")


def test_edit_replaces_the_message_and_drops_what_followed():
    edit = SimpleNamespace(index=0, value="Hey there")
    assert chat.edit_turn(HISTORY, edit) == [{"role": "user", "content": "Hey there"}]
    edit = SimpleNamespace(index=(2, 0), value=[{"type": "text", "text": "Another joke"}])
    assert chat.edit_turn(HISTORY, edit) == [
        *HISTORY[:2],
        {"role": "user", "content": "Another joke"},
    ]


def test_stats_line_reports_counts_ttft_and_rate():
    stats = StreamStats(started=10.0)
    stats.first_token_at, stats.last_token_at, stats.tokens = 10.5, 12.5, 21
    line = stats.line(prompt_tokens=7, completion_tokens=21, extra="finish: stop")
    assert (
        line
        == "7 prompt + 21 completion tokens · first token 0.50 s · 10.0 tokens/s · finish: stop"
    )
    assert StreamStats().line() == "0 completion tokens"


def test_backend_errors_become_titled_gradio_errors():
    error = to_gradio_error(InputValidationError("`top_p` must be < 1.0", hint="Lower it."))
    assert isinstance(error, gr.Error)
    assert error.title == "Invalid input" and "`top_p` must be < 1.0. Lower it." in error.message
    assert "retry" in to_gradio_error(OverloadedError("busy")).title.lower()


def test_chat_run_streams_growing_reply_and_final_usage(local_backend):
    updates = list(
        chat.run(
            local_backend,
            [{"role": "user", "content": "Say hi"}],
            ChatForm(max_tokens=12, temperature=0),
        )
    )
    replies = [reply for reply, _ in updates]
    assert len(replies) > 2
    assert all(b.startswith(a) for a, b in zip(replies, replies[1:], strict=False))
    final_line = updates[-1][1]
    assert (
        "prompt +" in final_line and "completion tokens" in final_line and "finish:" in final_line
    )


def test_text_generation_run_maps_ui_values_to_tgi(local_backend):
    # do_sample off: temperature/top_k/top_p are not sent, so the output is greedy and
    # equals a direct greedy call; top_p=1 and repetition_penalty=1 mean "off".
    *_, (text, finish, line, html) = text_generation.run(
        local_backend,
        "The sky is",
        TextGenerationForm(
            max_new_tokens=8,
            do_sample=False,
            temperature=1.7,
            top_k=5,
            top_p=1.0,
            repetition_penalty=1.0,
        ),
    )
    assert text == local_backend.text_generation("The sky is", max_new_tokens=8)
    assert finish.startswith(("length", "eos_token")) and "completion tokens" in line


def test_text_generation_run_with_full_text_and_seed(local_backend):
    *_, (text, finish, line, html) = text_generation.run(
        local_backend,
        "Once",
        TextGenerationForm(
            max_new_tokens=5, do_sample=True, temperature=0.9, seed=7, return_full_text=True
        ),
    )
    assert text.startswith("Once") and "seed 7" in line


def test_text_generation_run_raises_backend_validation_errors(local_backend):
    with pytest.raises(InputValidationError, match="max_new_tokens"):
        list(text_generation.run(local_backend, "x", TextGenerationForm(max_new_tokens=0)))


def test_text_generation_run_validates_sampling_values_even_when_greedy(local_backend):
    # do_sample off drops temperature before the backend sees it; the bound still holds.
    with pytest.raises(InputValidationError, match="temperature"):
        list(text_generation.run(local_backend, "x", TextGenerationForm(temperature=1e9)))
    with pytest.raises(InputValidationError, match="top_p"):
        list(text_generation.run(local_backend, "x", TextGenerationForm(top_p=1.5)))


def test_with_ticks_passes_items_and_ticks_while_the_next_is_slow():
    import threading

    from components.common import TICK, with_ticks

    release = threading.Event()

    def slow():
        yield "a"
        release.wait(timeout=30)  # held until the consumer has seen a tick
        yield "b"

    seen = []
    for item in with_ticks(slow(), interval=0.05):
        seen.append(item)
        if item is TICK:
            release.set()
    assert seen[0] == "a" and seen[-1] == "b" and TICK in seen


def test_with_ticks_reraises_and_closes_the_source_when_the_consumer_leaves():
    import threading

    from components.common import with_ticks

    def failing():
        yield 1
        raise InputValidationError("bad")

    stream = with_ticks(failing())
    assert next(stream) == 1
    with pytest.raises(InputValidationError, match="bad"):
        next(stream)

    closed = threading.Event()

    def endless():
        try:
            while True:
                yield "x"
        finally:
            closed.set()

    stream = with_ticks(endless())
    assert next(stream) == "x"
    stream.close()  # e.g. Stop in the UI: the worker closes the source after its item
    assert closed.wait(timeout=10)


def test_waiting_line_names_a_loading_model():
    from backends import BackendStatus
    from components.common import waiting_line

    loading = SimpleNamespace(status=lambda: BackendStatus("loading", "Model X is loading"))
    assert waiting_line(loading, started=0.0).startswith("⏳ Model X is loading (waited")
    ready = SimpleNamespace(status=lambda: BackendStatus("ready", "ok"))
    assert "waiting for the first token" in waiting_line(ready, started=0.0)


def test_text_generation_run_renders_the_inspector_with_alternatives(local_backend):
    *_, (text, finish, line, html) = text_generation.run(
        local_backend, "The sky is", TextGenerationForm(max_new_tokens=5, top_n_tokens=2)
    )
    assert html.count("data-step=") >= 5  # one chip per generated token (plus table rows)
    assert f"Finish: <b>{finish}</b>" in html  # the finish reason the tab shows, in the header


def test_text_generation_best_of_and_prefill_answer_in_one_piece(local_backend):
    updates = list(
        text_generation.run(
            local_backend,
            "The sky is",
            TextGenerationForm(
                max_new_tokens=4,
                do_sample=True,
                best_of=2,
                decoder_input_details=True,
                temperature=1.0,
            ),
        )
    )
    assert len(updates) == 2  # a "generating" notice, then the whole answer
    text, finish, line, html = updates[-1]
    assert text and finish and "best" in html.lower()


def test_chat_run_shows_a_tool_call(local_backend):
    form = ChatForm(
        max_tokens=60, temperature=0, tools_text=chat.EXAMPLE_TOOLS, tool_choice="required"
    )
    messages = [{"role": "user", "content": "Weather in Oslo, in celsius?"}]
    *_, (reply, line) = chat.run(local_backend, messages, form)
    assert reply.startswith("🔧 Tool call: `get_weather(") and "finish: tool_calls" in line
