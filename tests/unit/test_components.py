"""The tabs' pure functions: history handling, stats, and each tab's ``run`` over a fake
``Backend`` (what the tab sends and shows); one tool call on the real bundled model.
The widget values → parameters mapping itself is test_forms.py's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from huggingface_hub import (
    ChatCompletionStreamOutput,
    ChatCompletionStreamOutputChoice,
    ChatCompletionStreamOutputDelta,
    ChatCompletionStreamOutputDeltaToolCall,
    ChatCompletionStreamOutputFunction,
    ChatCompletionStreamOutputUsage,
    TextGenerationOutput,
    TextGenerationOutputBestOfSequence,
    TextGenerationOutputDetails,
    TextGenerationOutputPrefillToken,
    TextGenerationOutputToken,
    TextGenerationStreamOutput,
    TextGenerationStreamOutputStreamDetails,
    TextGenerationStreamOutputToken,
)

from backends import Backend, BackendStatus
from backends.errors import InputValidationError, OverloadedError
from components import chat, text_generation
from components.common import StreamStats, to_gradio_error
from components.forms import ChatForm, FormErrors, TextGenerationForm

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


# -- run, over a fake backend -------------------------------------------------------------

TOKENS = ["The", " sky", " is", " blue"]
MESSAGES = [{"role": "user", "content": "Say hi"}]


def _token(i: int, text: str, cls=TextGenerationOutputToken):
    return cls(id=i, logprob=-0.25 * (i + 1), special=False, text=text)


class FakeBackend:
    """A ``Backend`` (the protocol in backends/__init__.py) with no model: it records each
    call's keyword arguments and answers ``TOKENS`` with huggingface_hub's output types,
    as TGI does (the seed it was given, alternatives when ``top_n_tokens`` asks, best_of
    sequences and the prompt's tokens in one piece). ``tool_call``: the chat answers with
    that ``(name, arguments)`` call instead."""

    name = "fake"

    def __init__(self, tool_call: tuple[str, str] | None = None) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self.tool_call = tool_call

    def status(self) -> BackendStatus:
        return BackendStatus("ready", "fake/model is ready")

    def health_check(self) -> bool:
        return True

    def get_endpoint_info(self) -> dict[str, Any]:
        return {"model_id": "fake/model"}

    def run_task(self, name, inputs, parameters=None, *, model=None):
        raise NotImplementedError

    def chat_completion(self, messages, *, stream: bool = False, **params: Any):
        self.calls.append(("chat_completion", messages, {**params, "stream": stream}))
        assert stream, "the chat tab streams"
        return self._chat_chunks()

    def _chat_chunks(self):
        def chunk(choices, usage=None):
            return ChatCompletionStreamOutput(
                choices=choices,
                created=0,
                id="1",
                model="fake",
                system_fingerprint="",
                usage=usage,
            )

        if self.tool_call is not None:
            name, arguments = self.tool_call
            call = ChatCompletionStreamOutputDeltaToolCall(
                function=ChatCompletionStreamOutputFunction(arguments=arguments, name=name),
                id="0",
                index=0,
                type="function",
            )
            pieces = [ChatCompletionStreamOutputDelta(role="assistant", tool_calls=[call])]
            finish = "tool_calls"
        else:
            pieces = [ChatCompletionStreamOutputDelta(role="assistant", content=t) for t in TOKENS]
            finish = "length"
        for n, delta in enumerate(pieces):
            last = n == len(pieces) - 1
            reason = finish if last else None
            yield chunk(
                [ChatCompletionStreamOutputChoice(delta=delta, index=0, finish_reason=reason)]
            )
        usage = ChatCompletionStreamOutputUsage(
            completion_tokens=len(pieces), prompt_tokens=3, total_tokens=3 + len(pieces)
        )
        yield chunk([], usage)  # as TGI: usage comes last, in a chunk of its own

    def text_generation(self, prompt: str, *, stream: bool = False, **params: Any):
        self.calls.append(("text_generation", prompt, {**params, "stream": stream}))
        full = (prompt if params.get("return_full_text") else "") + "".join(TOKENS)
        n_top = params.get("top_n_tokens") or 0
        top = [[_token(9, "alt")] * n_top for _ in TOKENS] if n_top else None
        if stream:
            return self._text_events(full, top, params.get("seed"))
        tokens = [_token(i, t) for i, t in enumerate(TOKENS)]
        best_of = params.get("best_of") or 1
        prefill = [TextGenerationOutputPrefillToken(id=0, logprob=None, text=prompt)]
        others = [
            TextGenerationOutputBestOfSequence(
                finish_reason="length",
                generated_text=full,
                generated_tokens=len(TOKENS),
                prefill=[],
                tokens=tokens,
            )
            for _ in range(best_of - 1)
        ]
        details = TextGenerationOutputDetails(
            finish_reason="length",
            generated_tokens=len(TOKENS),
            prefill=prefill if params.get("decoder_input_details") else [],
            tokens=tokens,
            best_of_sequences=others or None,
            seed=params.get("seed"),
            top_tokens=top,
        )
        return TextGenerationOutput(generated_text=full, details=details)

    def _text_events(self, full: str, top, seed):
        for i, text in enumerate(TOKENS):
            last = i == len(TOKENS) - 1
            details = TextGenerationStreamOutputStreamDetails(
                finish_reason="length", generated_tokens=len(TOKENS), input_length=3, seed=seed
            )
            yield TextGenerationStreamOutput(
                index=i + 1,
                token=_token(i, text, TextGenerationStreamOutputToken),
                details=details if last else None,
                generated_text=full if last else None,
                top_tokens=top[i] if top else None,
            )


@pytest.fixture
def fake() -> FakeBackend:
    backend = FakeBackend()
    assert isinstance(backend, Backend)
    return backend


def test_chat_run_streams_growing_reply_and_final_usage(fake):
    updates = list(chat.run(fake, MESSAGES, ChatForm(max_tokens=12, temperature=0)))
    replies = [reply for reply, _ in updates]
    assert replies[: len(TOKENS)] == ["The", "The sky", "The sky is", "The sky is blue"]
    assert replies[-1] == "The sky is blue"
    final_line = updates[-1][1]
    assert (
        final_line.startswith("3 prompt + 4 completion tokens") and "finish: length" in final_line
    )
    # What the tab sends: the form's keywords (unset ones left out), streamed.
    assert fake.calls == [
        ("chat_completion", MESSAGES, {"max_tokens": 12, "temperature": 0.0, "stream": True})
    ]


def test_chat_run_shows_a_tool_call_and_sends_the_tools():
    backend = FakeBackend(tool_call=("get_weather", '{"city": "Oslo"}'))
    form = ChatForm(max_tokens=60, tools_text=chat.EXAMPLE_TOOLS, tool_choice="required")
    *_, (reply, line) = chat.run(backend, MESSAGES, form)
    assert reply == '🔧 Tool call: `get_weather({"city": "Oslo"})`'
    assert "finish: tool_calls" in line
    sent = backend.calls[0][2]
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_chat_run_refuses_a_bad_form_before_calling_the_backend(fake):
    with pytest.raises(FormErrors, match="not valid JSON") as info:
        list(chat.run(fake, MESSAGES, ChatForm(format_kind="json_schema", format_value="{")))
    assert info.value.errors.keys() == {"format_value"}
    with pytest.raises(InputValidationError, match=r"`stop` accepts at most 4 items \(got 5\)"):
        list(chat.run(fake, MESSAGES, ChatForm(stop=list("abcde"))))
    assert fake.calls == []


def test_text_generation_run_sends_the_forms_keywords(fake):
    # do_sample off: temperature/top_k/top_p are not sent (greedy); top_p=1 and
    # repetition_penalty=1 mean "off".
    form = TextGenerationForm(
        max_new_tokens=8, do_sample=False, temperature=1.7, top_k=5, top_p=1.0,
        repetition_penalty=1.0,
    )  # fmt: skip
    *_, (text, finish, line, html) = text_generation.run(fake, "The sky is", form)
    assert fake.calls == [
        (
            "text_generation",
            "The sky is",
            {
                "max_new_tokens": 8,
                "do_sample": False,
                "return_full_text": False,
                "watermark": False,
                "decoder_input_details": False,
                "details": True,
                "stream": True,
            },
        )
    ]
    assert text == "The sky is blue" and finish.startswith("length")
    assert line.startswith("3 prompt + 4 completion tokens")


def test_text_generation_run_with_full_text_and_seed(fake):
    form = TextGenerationForm(
        max_new_tokens=5, do_sample=True, temperature=0.9, seed=7, return_full_text=True
    )
    updates = list(text_generation.run(fake, "Once", form))
    assert updates[0][0] == "Once"  # the prompt shows before the first token
    assert updates[1][0] == "OnceThe"
    text, _, line, _ = updates[-1]
    assert text == "OnceThe sky is blue" and line.endswith("seed 7")
    assert fake.calls[0][2]["seed"] == 7 and fake.calls[0][2]["temperature"] == 0.9


def test_text_generation_run_refuses_a_bad_form_before_calling_the_backend(fake):
    with pytest.raises(InputValidationError, match="max_new_tokens"):
        list(text_generation.run(fake, "x", TextGenerationForm(max_new_tokens=0)))
    # do_sample off drops temperature before the backend sees it; the bound still holds.
    with pytest.raises(InputValidationError, match="temperature"):
        list(text_generation.run(fake, "x", TextGenerationForm(temperature=1e9)))
    with pytest.raises(InputValidationError, match="top_p"):
        list(text_generation.run(fake, "x", TextGenerationForm(top_p=1.5)))
    assert fake.calls == []


def test_text_generation_run_renders_the_inspector_with_alternatives(fake):
    form = TextGenerationForm(max_new_tokens=5, top_n_tokens=2)
    updates = list(text_generation.run(fake, "The sky is", form))
    *_, (text, finish, line, html) = updates
    assert fake.calls[0][2]["top_n_tokens"] == 2
    assert html.count("data-step=") >= len(TOKENS)  # one chip per generated token
    assert html.count(">alt<") >= 2 * len(TOKENS)  # its two alternatives each
    assert f"Finish: <b>{finish}</b>" in html  # the finish reason the tab shows
    assert all(update[3] is None for update in updates[1:-1])  # drawn once, at the end


def test_text_generation_best_of_and_prefill_answer_in_one_piece(fake):
    form = TextGenerationForm(
        max_new_tokens=4, do_sample=True, best_of=2, decoder_input_details=True, temperature=1
    )
    updates = list(text_generation.run(fake, "The sky is", form))
    assert len(updates) == 2  # a "generating" notice, then the whole answer
    assert updates[0][2].startswith("⏳ generating")
    text, finish, line, html = updates[-1]
    assert text == "The sky is blue" and finish.startswith("length")
    assert "best_of: 2 sequences" in html
    sent = fake.calls[0][2]
    assert sent["stream"] is False and sent["details"] is True and sent["best_of"] == 2


@pytest.mark.model
def test_chat_run_shows_a_tool_call_of_the_real_model(local_backend):
    # The tools JSON of the tab's example reaches the local model's tool-call grammar.
    form = ChatForm.from_widgets(
        max_tokens=60, temperature=0, top_p=1.0, seed=-1, stop="", format_kind="text",
        format_value="", tools_text=chat.EXAMPLE_TOOLS, tool_choice="required",
    )  # fmt: skip
    messages = [{"role": "user", "content": "Weather in Oslo, in celsius?"}]
    *_, (reply, line) = chat.run(local_backend, messages, form)
    assert reply.startswith("🔧 Tool call: `get_weather(") and "finish: tool_calls" in line


# -- the tabs' handlers, in the built UI over a fake backend ------------------------------

TG_PANEL = dict(
    max_new_tokens=8.0, do_sample=False, temperature=1e9, top_k=0.0, top_p=1.0, typical_p=1.0,
    seed=-1, repetition_penalty=1.0, frequency_penalty=0.0, stop="", return_full_text=False,
    truncate=0, best_of=2.0, watermark=False, top_n_tokens=3.0, decoder_input_details=False,
    grammar_type="regex", grammar_value="([",
)  # fmt: skip
CHAT_WIDGETS = dict(
    max_tokens=64.0, temperature=0.7, top_p=1.0, seed=-1, stop="", format_kind="text",
    format_value=chat.EXAMPLE_SCHEMA, tools_text=chat.EXAMPLE_TOOLS, tool_choice="none",
)  # fmt: skip


@pytest.fixture(scope="module")
def tabs():
    """The built UI's handlers by ``api_name`` (``show``: the chat tab's Show code), over
    one fake backend."""
    from components import build_ui

    backend = FakeBackend()
    handlers = {fn.api_name: fn for fn in build_ui(backend).fns.values() if fn.api_name}
    return SimpleNamespace(backend=backend, **handlers)


def test_the_text_generation_tab_shows_each_refused_value_next_to_its_widget(tabs):
    from components.connection import Connection
    from components.generation_params import NAMES

    checks = tabs.generate.validator("Hi", Connection(), *[TG_PANEL[n] for n in NAMES])
    assert len(checks) == 2 + len(NAMES)  # the prompt, the connection, then each widget
    shown = {n: c["message"] for n, c in zip(NAMES, checks[2:], strict=True) if not c["is_valid"]}
    assert shown == {
        "temperature": "Input should be less than or equal to 100",
        "best_of": "you must use sampling when `best_of` is > 1",
        "grammar_value": "invalid regex: unterminated character set at position 1",
    }
    assert checks[0]["is_valid"] and checks[1]["is_valid"]


def test_the_chat_tab_toasts_a_refused_form_and_keeps_the_chat(tabs):
    from components.connection import Connection

    history = [{"role": "user", "content": "Hi"}]
    values = {**CHAT_WIDGETS, "stop": "\n".join("abcde")}
    # ``{}``: the browser's open conversation (components.workspace), empty here.
    replies = tabs.respond.fn(None, None, history, {}, Connection(), "", *values.values())
    with pytest.warns(UserWarning, match=r"`stop` accepts at most 4 items \(got 5\)"):
        updates = list(replies)
    assert updates[0] == (history, "", gr.update())
    assert updates[-1] == (gr.update(), gr.update(), gr.update())  # the chat stays as it was
    assert tabs.backend.calls == []


def test_show_code_sends_the_forms_keywords(tabs):
    from components.connection import Connection

    chat_code, *_ = tabs.show.fn(None, Connection(), [], "Hi", "", *CHAT_WIDGETS.values())
    assert "max_tokens=64" in chat_code and "temperature=0.7" in chat_code
    assert "top_p" not in chat_code and "seed" not in chat_code  # off / random: unset


def test_a_replys_stats_line_says_who_answered_and_is_saved_with_it(tabs):
    from components.chat import answered_by
    from components.connection import REMOTE, Connection

    history = [{"role": "user", "content": "Hi"}]
    updates = list(
        tabs.respond.fn(None, None, history, {}, Connection(), "", *CHAT_WIDGETS.values())
    )
    _, line, saved = updates[-1]
    assert line.endswith("· local model")  # the fake has no engine: "local model"
    assert saved["messages"][-1]["stats"] == line  # kept with the message
    engine = SimpleNamespace(engine_description="llama.cpp engine (Q4_1, 2 threads)")
    assert answered_by(None, engine) == "local llama.cpp engine"
    remote = Connection(REMOTE, "http://127.0.0.1:9/v1", model="m", token="sk-SECRET")
    assert answered_by(remote, engine) == "http://127.0.0.1:9/v1 (model m)"
