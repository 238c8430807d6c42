"""The Gradio UI: one module per tab; ``build_ui`` assembles them around a backend."""

from __future__ import annotations

import gradio as gr

from backends import Backend
from backends.tasks import GROUPS
from components import chat, compare, compare_api, sweep, tasks, text_generation
from components.common import render_status
from components.connection import DefaultEndpoint, configure_default
from components.visitors import Visitors

TITLE = "Inference Playground"
# The task tabs, after Chat and Text generation (one per group of backends.tasks).
TASK_TABS = {"image": "image-tab", "audio": "audio-tab", "tables": "tables-tab", "text": "text-tab"}
CSS = """
#backend-status p { margin: 0; }
#backend-status.status-failed { border-left: 4px solid #dc2626; padding-left: 0.6em;
  background: rgba(220, 38, 38, 0.08); color: #b91c1c; }
#chat-stats, #tg-stats { color: var(--body-text-color-subdued); font-size: 0.9em; }
.task-description p { margin: 0.25em 0 0; font-size: 1.05em; }
#conversation-list { max-height: 420px; overflow-y: auto; }
#conversation-list label { width: 100%; }
#conversation-list label span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#reply-versions { align-items: center; justify-content: center; gap: 0.5em; }
#reply-versions > * { flex: 0 0 auto !important; min-width: 0 !important; width: auto; }
#reply-versions button { min-width: 2.5em !important; }
#version-label p { margin: 0; font-variant-numeric: tabular-nums; }
@media (max-width: 640px) {
  #workspace-sidebar { order: 2; }
  #chat-layout > div:last-child { order: 3; }
}
#workspace-note p { margin: 0; font-size: 0.9em; }
"""
# Esc stops a streaming reply (clicks the chat's Stop button).
HEAD = """<script>
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  const stop = document.querySelector("#chat-stop");
  if (stop && stop.offsetParent !== null) stop.click();
});
</script>"""


def mode_line(public: bool, visitors: Visitors | None = None) -> str:
    """The line under the title that says which mode runs (and the per-visitor bounds)."""
    if public:
        line = (
            "🔒 **Public mode** — endpoint URLs that resolve to loopback, private or "
            "link-local addresses are refused."
        )
    else:
        line = "🏠 **Local mode** — endpoint URLs may point at this machine and its network."
    bounds = visitors.fairness.describe() if visitors is not None else ""
    return f"{line} Limits: {bounds}." if bounds else line


def build_ui(
    backend: Backend,
    *,
    providers: list[str] | None = None,
    api_key_required: bool = False,
    public: bool = False,
    default_endpoint: DefaultEndpoint | None = None,
    visitors: Visitors | None = None,
    storage_secret: str | None = None,
) -> gr.Blocks:
    """The whole app around the local ``backend``; each tab can switch to a remote endpoint
    (``providers``: the choices for Hub model ids). Generation jobs are not limited in
    Gradio (``GENERATION_CONCURRENCY``): the local engine admits and queues its own.
    ``public``: public mode (a line under the title says which mode runs).
    ``default_endpoint``: the operator's endpoint, where Chat and Text generation start
    (``backend`` is then that endpoint's backend when no local model is loaded).
    ``visitors``: per-visitor bounds, and Sign in with Hugging Face when ``visitors.oauth``
    (a signed-in visitor's token is used for their Hugging Face requests).
    ``storage_secret``: encrypts the conversations each browser keeps (``app.py`` passes
    ``PLAYGROUND_STORAGE_SECRET`` or one kept in the cache directory)."""
    configure_default(default_endpoint)
    visitors = visitors or Visitors()
    options = dict(
        providers=providers or ["auto"], api_key_required=api_key_required, visitors=visitors
    )
    with gr.Blocks(title=TITLE) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(f"## 🧪 {TITLE}")
            if visitors.oauth:
                gr.LoginButton("Sign in with Hugging Face", size="sm", scale=0, min_width=240)
        gr.Markdown(mode_line(public, visitors), elem_id="mode-line")
        render_status(backend)
        with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
            chat.render(backend, storage_secret=storage_secret, **options)
        with gr.Tab("Text generation", id="text-generation", elem_id="text-generation-tab"):
            text_generation.render(backend, storage_secret=storage_secret, **options)
        with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
            compare.render(
                backend,
                providers=options["providers"],
                visitors=visitors,
                storage_secret=storage_secret,
            )
            compare_api.register(backend, visitors=visitors)
        with gr.Tab("Sweep", id="sweep", elem_id="sweep-tab"):
            sweep.render(backend, **options)
        task_options = dict(providers=options["providers"])
        for group, elem_id in TASK_TABS.items():
            with gr.Tab(GROUPS[group], id=group, elem_id=elem_id):
                tasks.render_group(group, backend, **task_options)
    return demo
