"""The Gradio UI: one module per tab; ``build_ui`` assembles them around a backend."""

from __future__ import annotations

import gradio as gr

from backends import Backend
from components import chat, text_generation
from components.common import render_status

TITLE = "Inference Playground"
CSS = """
#backend-status p { margin: 0; }
#chat-stats, #tg-stats { color: var(--body-text-color-subdued); font-size: 0.9em; }
"""


def build_ui(backend: Backend, *, concurrency_limit: int | None = 1) -> gr.Blocks:
    """The whole app. ``concurrency_limit``: generation jobs run at once (the rest queue)."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"## 🧪 {TITLE}")
        render_status(backend)
        with gr.Tab("Chat", id="chat"):
            chat.render(backend, concurrency_limit=concurrency_limit)
        with gr.Tab("Text generation", id="text-generation"):
            text_generation.render(backend, concurrency_limit=concurrency_limit)
    return demo
