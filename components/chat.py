"""Chat tab: streaming multi-turn chat with system prompt, stop, retry, undo, edit, clear.

``run`` is plain Python (unit-testable); ``render`` lays out widgets and wires events. The
Gradio API endpoint ``/chat`` takes just a message (every other input has a default).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import gradio as gr

from backends import Backend
from backends.errors import BackendError
from components import connection as connection_panel
from components import prompt_view, show_code, user_presets, workspace
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
from components.connection import api_connection, backend_for, signed_in
from components.forms import ChatForm
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


def to_messages(history: list[dict], system_prompt: str = "") -> list[dict[str, str]]:
    """Chatbot history → ``[{role, content: str}]`` for the backend, system prompt first."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for message in history:
        text = message_text(message.get("content"))
        if message.get("role") in ("user", "assistant") and text:
            messages.append({"role": message["role"], "content": text})
    return messages


def _tool_call_text(call) -> str:
    return f"🔧 Tool call: `{call.function.name}({call.function.arguments})`"


def run(
    backend: Backend, messages: list[dict[str, str]], form: ChatForm
) -> Iterator[tuple[str, str]]:
    """Stream a reply: yields ``(reply so far, stats line)``. Raises ``BackendError``
    (``forms.FormErrors`` for values the form refuses, before the backend is called)."""
    stats = StreamStats()
    chunks = backend.chat_completion(messages, **form.keywords(), stream=True)
    reply, usage, finish = "", None, None
    for chunk in with_ticks(chunks):
        if chunk is TICK:
            # Once tokens flow, a slow one keeps the stats (not "waiting for the first").
            yield reply, stats.line() if reply else waiting_line(backend, stats.started, chunks)
            continue
        if chunk.choices:
            delta = chunk.choices[0].delta.content or ""
            calls = chunk.choices[0].delta.tool_calls or []
            delta += "\n".join(_tool_call_text(call) for call in calls)
            finish = chunk.choices[0].finish_reason or finish
            if delta:
                stats.token()
                reply += delta
        usage = chunk.usage or usage
        yield reply, stats.line()
    extra = f"finish: {finish}" if finish else ""
    if usage is not None:
        line = stats.line(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            extra=extra,
        )
    else:
        line = stats.line(extra=extra)
    yield reply, line


def _last_user_index(history: list[dict]) -> int | None:
    for i in range(len(history) - 1, -1, -1):
        if history[i].get("role") == "user":
            return i
    return None


def add_user(text: str, history: list[dict]) -> tuple[str, list[dict]]:
    """Send: append the typed message to the chat and empty the textbox."""
    if not text or not text.strip():
        show_problem("Type a message first.", title="Empty message")
        return text or "", list(history or [])
    return "", list(history or []) + [{"role": "user", "content": text}]


def drop_reply(history: list[dict]) -> list[dict]:
    """Retry: keep the chat up to and including the last user message."""
    history = list(history or [])
    index = _last_user_index(history)
    if index is None:
        show_problem("Nothing to retry yet.", title="Empty chat")
        return history
    return history[: index + 1]


def undo_turn(history: list[dict]) -> tuple[list[dict], str]:
    """Undo: remove the last user message (and its reply); put its text back to edit."""
    history = list(history or [])
    index = _last_user_index(history)
    if index is None:
        return history, ""
    return history[:index], message_text(history[index]["content"])


def edit_turn(history: list[dict], edit: gr.EditData) -> list[dict]:
    """Edit: replace a user message and drop everything after it (then regenerate)."""
    index = edit.index[0] if isinstance(edit.index, (list, tuple)) else edit.index
    history = list(history or [])[:index]
    return history + [{"role": "user", "content": message_text(edit.value)}]


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
                message = gr.Textbox(
                    label="Message",
                    show_label=False,
                    placeholder="Type a message and press Enter",
                    scale=6,
                    lines=1,
                    max_lines=8,  # Enter sends, Shift+Enter adds a line
                    autofocus=True,
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
            gr.Examples(examples().chat, inputs=message, label="Examples")
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

    def code_request(conn, history, text, system, *values):
        pending = [{"role": "user", "content": text}] if text and text.strip() else []
        messages = to_messages([*(history or []), *pending], system or "")
        return conn, messages, read_form(*values).keywords()

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
            lambda history, typed, system: to_messages(
                [*(history or []), *([{"role": "user", "content": typed}] if typed else [])],
                system or "",
            ),
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
        save = workspace.saving_stream(current, history, workspace.settings_of(system, form, conn))
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
                reply, line = "", ""
                for reply, line in run(backend, messages, read_form(*values)):
                    record = save(reply, line)
                    yield (
                        history + [{"role": "assistant", "content": reply}],
                        line,
                        gr.update() if record is None else record,
                    )
                yield gr.update(), gr.update(), save(reply, line, final=True)
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
        save = workspace.saving_stream(
            current, earlier, workspace.settings_of(system, form, conn), keep=False
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
