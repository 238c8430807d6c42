"""The connection panel: each tab picks the local model or a remote endpoint.

The choice lives in a per-session ``gr.State`` (server side, never sent back to the
browser), so a user's token stays in their session: it is not logged, not shown to others,
and only sent to the endpoint that user typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from backends import Backend, create_backend
from backends.errors import BackendError, InputValidationError

LOCAL = "Local model"
REMOTE = "Remote endpoint"


@dataclass(frozen=True)
class Connection:
    """Where a tab's requests go. ``endpoint`` is a Hub model id or a URL."""

    mode: str = LOCAL
    endpoint: str = ""
    provider: str = "auto"
    model: str = ""  # model name sent to an OpenAI-compatible URL (`…/v1`)
    token: str = field(default="", repr=False)  # never printed, even in a debug log

    @property
    def is_url(self) -> bool:
        return self.endpoint.startswith(("http://", "https://"))

    def describe(self) -> str:
        if self.mode == LOCAL:
            return "the local model"
        if self.is_url:
            return self.endpoint + (f" (model {self.model})" if self.model else "")
        return f"{self.endpoint} via {self.provider}"


def backend_for(connection: Connection | None, local: Backend) -> Backend:
    """The backend a request should use. Raises ``BackendError`` for an incomplete remote
    target, with what to fill in."""
    if connection is None or connection.mode == LOCAL:
        return local
    endpoint = connection.endpoint.strip()
    if not endpoint:
        raise InputValidationError(
            "No remote endpoint set.",
            hint="Enter a Hub model id (e.g. HuggingFaceTB/SmolLM2-1.7B-Instruct) or an "
            "endpoint URL in the Connection panel, or switch back to the local model.",
        )
    token = connection.token.strip() or None
    if connection.is_url:
        return create_backend(
            "remote", model=connection.model.strip() or None, base_url=endpoint, token=token
        )
    return create_backend("remote", model=endpoint, provider=connection.provider, token=token)


def backend_for_task(
    connection: Connection | None, local: Backend, *, default_model: str | None
) -> Backend:
    """Like ``backend_for``, for a task tab: in Remote mode with no endpoint typed, requests
    go to ``default_model`` (the task's recommended Hub model) via the chosen provider —
    one panel serves many tasks, and each task needs its own model."""
    if (
        connection is not None
        and connection.mode == REMOTE
        and not connection.endpoint.strip()
        and default_model
    ):
        return create_backend(
            "remote",
            model=default_model,
            provider=connection.provider,
            token=connection.token.strip() or None,
        )
    return backend_for(connection, local)


def api_connection(endpoint: str, provider: str, model: str, token: str) -> Connection:
    """The Gradio API endpoints' remote arguments as a ``Connection`` (empty = local)."""
    mode = REMOTE if endpoint and endpoint.strip() else LOCAL
    return Connection(mode, endpoint or "", provider or "auto", model or "", token or "")


def check(connection: Connection, local: Backend) -> str:
    """Markdown: the endpoint's health and ``/info`` (model, dtype, limits, version), or
    the reason the check failed."""
    try:
        backend = backend_for(connection, local)
        if connection.mode == REMOTE and not connection.is_url:
            # Providers publish no /health or /info: say where requests go and what is needed.
            token = "with your token" if connection.token else "— needs a token (hf_…)"
            return (
                f"🟢 **{connection.describe()}** — requests go through the Hugging Face "
                f"router {token}. Model details are only available for endpoint URLs."
            )
        healthy = backend.health_check()
        info = backend.get_endpoint_info()
    except BackendError as exc:
        return f"🔴 **{connection.describe()}** — {exc.user_message()}"
    rows = [
        ("model", info.get("model_id")),
        ("dtype", info.get("model_dtype")),
        ("device", info.get("model_device_type")),
        ("max input tokens", info.get("max_input_tokens")),
        ("max total tokens", info.get("max_total_tokens")),
        ("max concurrent requests", info.get("max_concurrent_requests")),
        ("version", info.get("version")),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows if v is not None)
    icon = "🟢" if healthy else "🟠"
    state = "healthy" if healthy else "answered /info but not /health"
    return f"{icon} **{connection.describe()}** — {state}\n\n| endpoint | |\n|---|---|\n{table}"


def render(local: Backend, providers: list[str]) -> gr.State:
    """The panel's widgets; returns the session ``gr.State`` holding the ``Connection``."""
    return render_panel(local, providers).state


@dataclass(frozen=True)
class Panel:
    """A rendered connection panel: its ``state`` and its ``fields``, whose values, in
    order, are ``Connection(*values)``. (A ``gr.State`` set by an unqueued event fires no
    ``change``: a tab that reacts to the choice listens to the fields.)"""

    state: gr.State
    fields: list[gr.components.Component]


def render_panel(local: Backend, providers: list[str]) -> Panel:
    """Like ``render``, also returning the fields (see ``Panel``)."""
    state = gr.State(Connection())
    with gr.Accordion("Connection", open=False):
        mode = gr.Radio([LOCAL, REMOTE], value=LOCAL, show_label=False)
        with gr.Group(visible=False) as remote_box:
            endpoint = gr.Textbox(
                label="Hub model id or endpoint URL",
                placeholder="HuggingFaceTB/SmolLM2-1.7B-Instruct · http://host:8080 · "
                "https://api.example.com/v1",
            )
            provider = gr.Dropdown(
                providers, value="auto", label="Provider (Hub model ids)", allow_custom_value=True
            )
            model = gr.Textbox(
                label="Model name (OpenAI-compatible URLs ending in /v1)", placeholder="optional"
            )
            token = gr.Textbox(
                label="Token",
                type="password",
                placeholder="hf_… or the endpoint's API key — kept in this browser session only",
            )
        check_btn = gr.Button("Check connection", size="sm")
        result = gr.Markdown()

    fields = [mode, endpoint, provider, model, token]
    gr.on(
        [f.change for f in fields],
        lambda *values: Connection(*values),
        inputs=fields,
        outputs=state,
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )
    mode.change(
        lambda m: gr.Group(visible=m == REMOTE),
        mode,
        remote_box,
        api_visibility="private",
        queue=False,
    )
    check_btn.click(
        lambda connection: check(connection, local),
        state,
        result,
        api_visibility="private",
        concurrency_limit=None,
    )
    return Panel(state, fields)
