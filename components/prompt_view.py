"""Show prompt: the exact text the local model's chat template makes of the chat (system
prompt, history, the message being typed, tools folded in), and its token count against
the context. A remote endpoint applies its own template, so there it says so instead.

``describe`` is plain Python (unit-tested on the bundled model); ``render`` adds the
accordion under the chat.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gradio as gr

from backends import Backend
from backends.errors import BackendError, InputValidationError
from components.common import show_error
from components.connection import LOCAL

REMOTE_NOTE = (
    "Shown for the local model only: a remote endpoint applies its own chat template to "
    "the messages (see *Show code* for what is sent)."
)


def describe(
    local: Backend,
    connection: Any,
    messages: list[dict[str, str]],
    tools_text: str,
    tool_choice: str,
) -> tuple[str, str | None]:
    """``(summary line, prompt text or None)``. Raises ``BackendError`` (no local model,
    tools that do not parse, a message the model refuses)."""
    if connection is not None and getattr(connection, "mode", LOCAL) != LOCAL:
        return REMOTE_NOTE, None
    view = getattr(local, "chat_prompt", None)
    if view is None:
        return "This backend cannot show its prompt.", None
    if not messages:
        raise InputValidationError("Type a message first: the prompt is built from the chat.")
    tools = None
    if tool_choice and tool_choice != "none":
        try:
            tools = json.loads(tools_text or "[]")
        except json.JSONDecodeError as exc:
            raise InputValidationError(f"The tools are not valid JSON: {exc}") from None
    shown = view(messages, tools=tools, tool_choice=tool_choice if tools else None)
    line = (
        f"**{shown['tokens']:,} tokens** of {shown['max_context']:,} — the exact text the "
        "chat template made (special tokens included); the reply starts right after it."
    )
    return line, shown["prompt"]


def render(
    local: Backend, inputs: list, messages_of: Callable[[list, str, str], list[dict]]
) -> None:
    """The accordion. ``inputs``: connection, chat history, typed message, system prompt,
    tools text, tool choice; ``messages_of(history, typed, system)`` → the messages."""
    with gr.Accordion("Show prompt", open=False, elem_id="show-prompt"):
        button = gr.Button("Show the prompt the local model gets", size="sm")
        line = gr.Markdown("", elem_id="prompt-line")
        text = gr.Code(
            None, language=None, label="Prompt", lines=8, visible=False, elem_id="prompt-text"
        )

    def show(conn, history, typed, system, tools_text, tool_choice):
        try:
            summary, prompt = describe(
                local, conn, messages_of(history, typed, system), tools_text, tool_choice
            )
        except BackendError as exc:
            show_error(exc)
            return gr.skip(), gr.skip()
        return summary, gr.Code(prompt, visible=prompt is not None)

    button.click(show, inputs, [line, text], api_visibility="private", show_progress="minimal")
