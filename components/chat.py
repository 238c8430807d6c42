"""Chat tab: streaming multi-turn chat with system prompt, stop, retry, undo, edit, clear;
images attached to a message (``backends.vision``) and a reasoning model's thinking shown
apart from its answer (``components.thinking``).

``run`` is plain Python (unit-testable); ``render`` lays out widgets and wires events. The
Gradio API endpoint ``/chat`` takes just a message (every other input has a default).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backends import Backend, vision
from backends.errors import BackendError, InputValidationError
from components import connection as connection_panel
from components import conversations, prompt_view, show_code, user_presets, workspace
from components.common import (
    GENERATION_CONCURRENCY,
    GENERATION_CONCURRENCY_ID,
    TICK,
    StreamStats,
    api_messages,
    api_text,
    loading_notice,
    show_error,
    show_problem,
    to_gradio_error,
    waiting_line,
    with_ticks,
)
from components.connection import LOCAL, Connection, api_connection, backend_for, signed_in
from components.forms import ChatForm
from components.thinking import ThinkSplitter, is_thinking, reasoning_delta, thinking_title
from components.visitors import Visitors
from presets import DEFAULT_PRESET, examples, presets

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
EXAMPLE_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": 200},
            "confidence": {"enum": ["low", "medium", "high"]},
        },
        "required": ["answer", "confidence"],
    },
    indent=2,
)
EXAMPLE_TOOLS = json.dumps(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "maxLength": 40},
                        "unit": {"enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["city", "unit"],
                },
            },
        }
    ],
    indent=2,
)


def message_text(content: Any) -> str:
    """Gradio 6 hands message content over as a list of parts: keep the text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return "".join(message_text(part) for part in content)
    return "" if content is None else str(content)


def message_files(content: Any) -> list[str]:
    """The file paths in a Chatbot message's content (Gradio's ``{"type": "file", "file":
    {"path"}}`` parts, or ``{"path"}`` dicts as a handler writes them)."""
    parts = content if isinstance(content, (list, tuple)) else [content]
    paths = []
    for part in parts:
        if isinstance(part, dict):
            file = part.get("file") if part.get("type") == "file" else part
            path = file.get("path") if isinstance(file, dict) else None
            if isinstance(path, str) and path:
                paths.append(path)
    return paths


def to_messages(history: list[dict], system_prompt: str = "") -> list[dict[str, Any]]:
    """Chatbot history → messages for the backend, system prompt first: ``{role, content:
    str}``, or for a user message with images OpenAI content parts (text, then one
    ``image_url`` data URL per image). Thinking blocks are never sent back to the model.
    Raises ``InputValidationError`` for an image past the limits or not an image."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for message in history:
        if message.get("role") not in ("user", "assistant") or is_thinking(message):
            continue
        text = message_text(message.get("content"))
        files = message_files(message.get("content")) if message["role"] == "user" else []
        if files:
            vision.check_count(len(files))
            images = [vision.data_url(path) for path in files]
            messages.append({"role": "user", "content": vision.content_parts(text, images)})
        elif text:
            messages.append({"role": message["role"], "content": text})
    return messages


@dataclass
class Turn:
    """One moment of a streaming reply: the thinking so far, the answer so far, the stats
    line, the thinking's own token count, and whether the stream ended."""

    thinking: str
    answer: str
    line: str
    thinking_tokens: int = 0
    done: bool = False  # the stream ended

    def shown(self) -> list[dict[str, Any]]:
        """The Chatbot messages for it: a collapsible "Thinking · N tokens" block (when the
        model thought), then the answer."""
        out: list[dict[str, Any]] = []
        if self.thinking:
            # Open while the model thinks; collapsed once the answer starts.
            status = "pending" if not (self.answer or self.done) else "done"
            out.append(
                {
                    "role": "assistant",
                    "content": self.thinking,
                    "metadata": {"title": thinking_title(self.thinking_tokens), "status": status},
                }
            )
        if self.answer or not self.thinking:
            out.append({"role": "assistant", "content": self.answer})
        return out

    @property
    def title(self) -> str:
        return thinking_title(self.thinking_tokens) if self.thinking else ""


def _tool_call_text(call) -> str:
    return f"🔧 Tool call: `{call.function.name}({call.function.arguments})`"


def run(
    backend: Backend, messages: list[dict[str, Any]], form: ChatForm
) -> Iterator[tuple[str, str]]:
    """Stream a reply: yields ``(answer so far, stats line)`` (a reasoning model's thinking
    left out: ``run_turn`` has it). Raises ``BackendError`` (``forms.FormErrors`` for
    values the form refuses, before the backend is called)."""
    for turn in run_turn(backend, messages, form):
        yield turn.answer, turn.line


def run_turn(backend: Backend, messages: list[dict[str, Any]], form: ChatForm) -> Iterator[Turn]:
    """Stream a reply as ``Turn``s: ``<think>…</think>`` in the text and reasoning deltas
    go to the thinking (with its own token count), the rest to the answer."""
    stats = StreamStats()
    chunks = backend.chat_completion(messages, **form.keywords(), stream=True)
    split, usage, finish, thought = ThinkSplitter(), None, None, 0

    def turn(line: str, done: bool = False) -> Turn:
        return Turn(split.thinking, split.answer, line, thought, done)

    for chunk in with_ticks(chunks):
        if chunk is TICK:
            # Once tokens flow, a slow one keeps the stats (not "waiting for the first").
            started = split.answer or split.thinking
            yield turn(stats.line() if started else waiting_line(backend, stats.started, chunks))
            continue
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning = reasoning_delta(delta)
            text = delta.content or ""
            text += "\n".join(_tool_call_text(call) for call in delta.tool_calls or [])
            finish = chunk.choices[0].finish_reason or finish
            if reasoning or text:
                stats.token()
            split.add_reasoning(reasoning)
            thinking_added, _ = split.feed(text)
            if reasoning or thinking_added:
                thought += 1
        usage = chunk.usage or usage
        yield turn(stats.line())
    split.finish()
    extra = f"finish: {finish}" if finish else ""
    if usage is not None:
        line = stats.line(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            extra=extra,
        )
    else:
        line = stats.line(extra=extra)
    yield turn(line, done=True)


def _last_user_index(history: list[dict]) -> int | None:
    for i in range(len(history) - 1, -1, -1):
        if history[i].get("role") == "user":
            return i
    return None


def _box(value: Any) -> tuple[str, list[str]]:
    """The message box's value (a string, or the MultimodalTextbox's ``{"text", "files"}``)
    → (text, file paths)."""
    if isinstance(value, dict):
        files = [
            f if isinstance(f, str) else (f or {}).get("path") for f in value.get("files") or []
        ]
        return str(value.get("text") or ""), [f for f in files if f]
    return value or "", []


def answered_by(connection: Connection | None, backend: Backend) -> str:
    """Who answered, for the reply's stats line (kept with the message): the local
    engine, or the remote target (never its token)."""
    if connection is None or connection.mode == LOCAL:
        engine = getattr(backend, "engine_description", "") or ""
        return f"local {engine.split(' (')[0]}".strip() if engine else "local model"
    return connection.describe()


def add_user(value: Any, history: list[dict]) -> tuple[Any, list[dict]]:
    """Send: append the typed message (and its images, checked: ``backends.vision``) to the
    chat and empty the box. A refused message stays in the box, with a toast saying why."""
    text, files = _box(value)
    if not text.strip() and not files:
        show_problem("Type a message first.", title="Empty message")
        return value or "", list(history or [])
    try:
        vision.check_count(len(files))
        for path in files:
            vision.data_url(path)
    except InputValidationError as exc:
        show_problem(exc.user_message(), title="Image refused")
        return gr.update(), list(history or [])
    if not files:
        return "", list(history or []) + [{"role": "user", "content": text}]
    content: list[Any] = [{"path": path} for path in files] + ([text] if text else [])
    return "", list(history or []) + [{"role": "user", "content": content}]


def drop_reply(history: list[dict]) -> list[dict]:
    """Retry: keep the chat up to and including the last user message."""
    history = list(history or [])
    index = _last_user_index(history)
    if index is None:
        show_problem("Nothing to retry yet.", title="Empty chat")
        return history
    return history[: index + 1]


def undo_turn(history: list[dict]) -> tuple[list[dict], Any]:
    """Undo: remove the last user message (and its reply); put its text (and images) back
    in the box to edit."""
    history = list(history or [])
    index = _last_user_index(history)
    if index is None:
        return history, ""
    content = history[index]["content"]
    files = message_files(content)
    text = message_text(content)
    return history[:index], {"text": text, "files": files} if files else text


def edit_turn(history: list[dict], edit: gr.EditData) -> list[dict]:
    """Edit: replace a user message's text (its images stay) and drop everything after it
    (then regenerate)."""
    index = edit.index[0] if isinstance(edit.index, (list, tuple)) else edit.index
    history = list(history or [])
    files = message_files(history[index]["content"]) if index < len(history) else []
    text = message_text(edit.value)
    content: Any = [{"path": path} for path in files] + [text] if files else text
    return history[:index] + [{"role": "user", "content": content}]


def render(
    local: Backend,
    *,
    providers: list[str],
    api_key_required: bool = False,
    visitors: Visitors | None = None,
    storage_secret: str | None = None,
) -> None:
    """The chat tab's widgets and events (call inside a ``gr.Tab``). ``local`` answers
    unless the tab's connection panel points at a remote endpoint; ``visitors``: the
    per-visitor bounds and sign-in; ``storage_secret``: encrypts the conversations saved
    in the browser (``components.workspace``)."""
    visitors = visitors or Visitors()
    preset_table = presets()
    default = preset_table[DEFAULT_PRESET]
    with gr.Row(elem_id="chat-layout"):
        with gr.Column(scale=1, min_width=220, elem_id="workspace-sidebar"):
            sidebar = workspace.render_sidebar(storage_secret)
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Chat",
                height=480,
                editable="user",
                buttons=["copy", "copy_all"],
                placeholder="Ask anything — the reply streams in token by token.",
                elem_id="chatbot",
            )
            with gr.Row(elem_id="reply-versions", visible=False) as versions_row:
                prev_version = gr.Button(
                    "‹", size="sm", min_width=40, scale=0, elem_id="prev-version"
                )
                version_label = gr.Markdown("", elem_id="version-label")
                next_version = gr.Button(
                    "›", size="sm", min_width=40, scale=0, elem_id="next-version"
                )
            with gr.Row():
                # Images come by the upload button, paste or drag and drop.
                message = gr.MultimodalTextbox(
                    label="Message",
                    show_label=False,
                    placeholder="Type a message and press Enter",
                    scale=6,
                    lines=1,
                    max_lines=8,  # Enter sends, Shift+Enter adds a line
                    autofocus=True,
                    file_types=["image"],
                    file_count="multiple",
                    sources=["upload"],
                    submit_btn=False,  # the Send button beside it
                    elem_id="chat-input",
                )
                send = gr.Button("Send", variant="primary", scale=1, min_width=80)
                stop = gr.Button(
                    "Stop", variant="stop", scale=1, min_width=80, elem_id="chat-stop"
                )  # Esc clicks it (components.HEAD)
            with gr.Row():
                retry = gr.Button("↻ Retry", size="sm")
                undo = gr.Button("↶ Undo", size="sm")
                clear = gr.Button("🗑 Clear", size="sm")
                more = gr.Button("⏩ Continue", size="sm", elem_id="chat-continue")
            stats = gr.Markdown("", elem_id="chat-stats")
            gr.Examples(
                [[{"text": text, "files": []}] for text in examples().chat],
                inputs=message,
                label="Examples",
            )
            code_slot = gr.Column()
        with gr.Column(scale=2):
            panel = connection_panel.render_panel(local, providers)
            connection = panel.state
            system_prompt = gr.Textbox(
                DEFAULT_SYSTEM_PROMPT, label="System prompt", lines=3, max_lines=10
            )
            with gr.Accordion("Parameters", open=True) as parameters_box:
                preset = gr.Dropdown(
                    list(preset_table), value=DEFAULT_PRESET, label="Preset", interactive=True
                )
                max_tokens = gr.Slider(
                    1, 4096, value=default.max_new_tokens, step=1, label="max_tokens"
                )
                temperature = gr.Slider(
                    0,
                    2,
                    value=default.temperature,
                    step=0.05,
                    label="temperature",
                    info="0 = greedy (always the most likely token)",
                )
                top_p = gr.Slider(0.05, 1, value=default.top_p, step=0.01, label="top_p")
                seed = gr.Number(-1, label="seed", precision=0, minimum=-1, info="-1 = random")
                stop_text = gr.Textbox(
                    "",
                    label="Stop sequences",
                    lines=2,
                    info="One per line (up to 4); \\n = newline",
                )
            with gr.Accordion("Structured output & tools", open=False):
                format_kind = gr.Radio(
                    ["text", "json_schema", "regex"], value="text", label="response_format"
                )
                format_value = gr.Code(
                    EXAMPLE_SCHEMA, language="json", label="JSON schema (or regex)", lines=6
                )
                tool_choice = gr.Dropdown(
                    ["none", "auto", "required"], value="none", label="tool_choice",
                    info="auto: the model may answer or call a tool; required: it must call one",
                )  # fmt: skip
                tools_text = gr.Code(EXAMPLE_TOOLS, language="json", label="tools", lines=8)
    # The form's widgets, by ``ChatForm`` field name.
    form_widgets = dict(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
        stop=stop_text, format_kind=format_kind, format_value=format_value,
        tools_text=tools_text, tool_choice=tool_choice,
    )  # fmt: skip

    def read_form(*values) -> ChatForm:
        return ChatForm.from_widgets(**dict(zip(form_widgets, values, strict=True)))

    params = [connection, system_prompt, *form_widgets.values()]
    with parameters_box:  # "My presets", under the preset dropdown; applies both kinds
        user_presets.render(
            preset, {"system_prompt": system_prompt, **form_widgets}, storage_secret
        )

    def text_messages(history, box, system) -> list[dict]:
        """The chat and the message being typed, as text messages (Show code and Show
        prompt show the text: images would fill them with base64)."""
        text, _ = _box(box)
        pending = [{"role": "user", "content": text}] if text and text.strip() else []
        return to_messages(
            [
                {**m, "content": message_text(m.get("content"))}
                for m in [*(history or []), *pending]
            ],
            system or "",
        )

    def code_request(conn, history, box, system, *values):
        return conn, text_messages(history, box, system), read_form(*values).keywords()

    with code_slot:
        show_code.render(
            "chat-completion",
            code_request,
            [connection, chatbot, message, *params[1:]],
            api_key_required=api_key_required,
        )
        prompt_view.render(
            local,
            [connection, chatbot, message, system_prompt, tools_text, tool_choice],
            text_messages,
        )

    def respond(
        request: gr.Request, oauth: gr.OAuthToken | None, history, current, conn, system, *values
    ):
        """Stream the assistant's answer to the last user message into the chat (and save
        it in the browser as it streams: ``current``)."""
        history = list(history or [])
        if not history or history[-1].get("role") != "user":
            # Nothing to answer (e.g. an empty message was refused). A generator that ends
            # without yielding would clear its outputs, so say "no change" explicitly.
            yield gr.update(), gr.update(), gr.update()
            return
        form = dict(zip(form_widgets, values, strict=True))
        save = conversations.saving_stream(
            current, history, conversations.settings_of(system, form, conn)
        )
        try:
            backend = backend_for(signed_in(conn, oauth), local)
            with visitors.hold(request):
                notice = loading_notice(backend)
                yield (
                    (history + [{"role": "assistant", "content": notice}] if notice else history),
                    "",
                    gr.update(),
                )
                messages = to_messages(history, system or "")
                turn = Turn("", "", "")
                for turn in run_turn(backend, messages, read_form(*values)):
                    record = save(turn.answer, turn.line, thinking=turn.thinking, title=turn.title)
                    yield (
                        history + turn.shown(),
                        turn.line,
                        gr.update() if record is None else record,
                    )
                line = f"{turn.line} · {answered_by(conn, backend)}" if turn.line else ""
                final = save(
                    turn.answer, line, final=True, thinking=turn.thinking, title=turn.title
                )
                yield gr.update(), line or gr.update(), final
        except BackendError as exc:
            show_error(exc)
            yield gr.update(), gr.update(), gr.update()  # the chat (and partial reply) stays

    def continue_reply(
        request: gr.Request,
        oauth: gr.OAuthToken | None,
        history,
        current,
        line,
        conn,
        system,
        *values,
    ):
        """Continue: a reply cut at its length limit (finish: length) goes on from where
        it stopped (the local model's chat template leaves the reply open)."""
        history = list(history or [])
        if (
            not history
            or history[-1].get("role") != "assistant"
            or "finish: length" not in (line or "")
        ):
            show_problem(
                "Continue goes on with a reply that stopped at its length limit (finish: length).",
                title="Nothing to continue",
            )
            yield gr.update(), gr.update(), gr.update()
            return
        partial = message_text(history[-1]["content"])
        earlier = history[:-1]
        form = dict(zip(form_widgets, values, strict=True))
        save = conversations.saving_stream(
            current, earlier, conversations.settings_of(system, form, conn), keep=False
        )
        try:
            backend = backend_for(signed_in(conn, oauth), local)
            with visitors.hold(request):
                messages = to_messages(history, system or "")
                text, stats_line = partial, line
                for more_text, stats_line in run(backend, messages, read_form(*values)):
                    text = partial + more_text
                    record = save(text, stats_line)
                    yield (
                        earlier + [{"role": "assistant", "content": text}],
                        stats_line,
                        gr.update() if record is None else record,
                    )
                yield gr.update(), gr.update(), save(text, stats_line, final=True)
        except BackendError as exc:
            show_error(exc)
            yield gr.update(), gr.update(), gr.update()

    # "undocumented", not "private": Gradio 6.31 cannot cancel a private event (Stop would
    # blank the chat with an error instead of keeping the partial reply).
    hidden = dict(api_visibility="undocumented")
    quick = dict(concurrency_limit=None, show_progress="hidden", **hidden)
    generate = dict(
        fn=respond,
        inputs=[chatbot, sidebar.current, *params],
        outputs=[chatbot, stats, sidebar.current],
        concurrency_limit=GENERATION_CONCURRENCY,
        concurrency_id=GENERATION_CONCURRENCY_ID,
        show_progress="hidden",
        **hidden,
    )
    events = []
    for trigger in (message.submit, send.click):
        # Queued (no limit): only queued events can show the "Type a message first." toast.
        added = trigger(add_user, [message, chatbot], [message, chatbot], **quick)
        events.append(added.success(**generate))
    events.append(retry.click(drop_reply, chatbot, chatbot, **quick).success(**generate))
    events.append(chatbot.retry(drop_reply, chatbot, chatbot, **quick).success(**generate))
    events.append(
        chatbot.edit(edit_turn, chatbot, chatbot, queue=False, **hidden).success(**generate)
    )
    events.append(
        more.click(
            continue_reply,
            [chatbot, sidebar.current, stats, *params],
            [chatbot, stats, sidebar.current],
            concurrency_limit=GENERATION_CONCURRENCY,
            concurrency_id=GENERATION_CONCURRENCY_ID,
            show_progress="hidden",
            **hidden,
        )
    )
    changed = [
        undo.click(undo_turn, chatbot, [chatbot, message], cancels=events, queue=False, **hidden),
        chatbot.undo(undo_turn, chatbot, [chatbot, message], cancels=events, queue=False, **hidden),
        stop.click(None, cancels=events, **hidden),
        clear.click(
            lambda: ([], ""), outputs=[chatbot, stats], cancels=events, queue=False, **hidden
        ),
        chatbot.clear(lambda: "", outputs=stats, cancels=events, queue=False, **hidden),
    ]
    # Every change of the chat is saved in the browser when it ends (workspace.wire).
    workspace.wire(
        sidebar,
        chatbot=chatbot,
        stats=stats,
        system_prompt=system_prompt,
        form_widgets=form_widgets,
        connection=connection,
        connection_fields=panel.fields,
        versions=(prev_version, version_label, next_version, versions_row),
        after=[*events, *changed],
        cancels=events,
    )

    def chat(
        request: gr.Request,
        oauth: gr.OAuthToken | None,
        message: str,
        history: list[dict] | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_tokens: int = default.max_new_tokens,
        temperature: float = default.temperature,
        top_p: float = default.top_p,
        seed: int | None = None,
        stop: list[str] | None = None,
        endpoint: str = "",
        provider: str = "auto",
        model: str = "",
        token: str = "",
    ) -> Iterator[str]:
        """Chat with the model: streams the reply so far. `history` is a list of
        {"role", "content"} messages before this one. `endpoint` (a Hub model id or a URL;
        empty = the local model), `provider`, `model` (for OpenAI-compatible URLs) and
        `token` pick a remote endpoint."""
        message = api_text(message, "message")
        if not message.strip():
            raise gr.Error("`message` cannot be empty.", print_exception=False)
        messages = to_messages(
            [*api_messages(history, "history"), {"role": "user", "content": message}],
            api_text(system_prompt, "system_prompt"),
        )
        try:
            connection = api_connection(endpoint, provider, model, token, oauth)
            backend = backend_for(connection, local)
            form = ChatForm(
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                stop=stop or None,
            )
            with visitors.hold(request):
                for reply, _ in run(backend, messages, form):
                    yield reply
        except BackendError as exc:
            raise to_gradio_error(exc) from None

    gr.api(
        chat,
        api_name="chat",
        concurrency_limit=GENERATION_CONCURRENCY,
        concurrency_id=GENERATION_CONCURRENCY_ID,
    )
