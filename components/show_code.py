"""The "Show code" panel: the tab's current request as Python, curl and JavaScript."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from backends.errors import BackendError
from components.connection import DEFAULT, LOCAL, Connection, default_endpoint
from components.snippets import Target, snippets

# (tab label, gr.Code language, snippets() key)
LANGUAGES = (
    ("Python", "python", "python"),
    ("curl", "shell", "curl"),
    ("JavaScript", "javascript", "javascript"),
)


def target_for(connection: Connection | None, origin: str, *, api_key_required: bool) -> Target:
    """Where the snippet sends the request: this app's local API, a URL or a Hub model.
    The operator's default endpoint is a URL whose token, if any, the snippet reads from
    an environment variable (the operator's token is never shown)."""
    default = default_endpoint()
    if connection is not None and connection.mode == DEFAULT and default is not None:
        return Target(
            "url", model=default.model or None, base_url=default.url, has_token=bool(default.token)
        )
    if connection is None or connection.mode == LOCAL:
        return Target("local", base_url=f"{origin}/api", has_token=api_key_required)
    if connection.is_url:
        return Target(
            "url",
            model=connection.model or None,
            base_url=connection.endpoint.strip(),
            has_token=bool(connection.token),
        )
    return Target("model", model=connection.endpoint.strip(), provider=connection.provider)


def origin_of(request: gr.Request | None) -> str:
    """The address the user reached this app at (the local API lives under it)."""
    headers = request.headers if request is not None else {}
    host = headers.get("x-forwarded-host") or headers.get("host") or "127.0.0.1:7860"
    scheme = headers.get("x-forwarded-proto") or "http"
    return f"{scheme}://{host}"


def render_panel(make: Callable[..., dict[str, str]], inputs: list) -> None:
    """An accordion with one code block per language, filled on demand from
    ``make(request, *values)`` → ``{"python", "curl", "javascript"}``; a ``BackendError``
    or ``ValueError`` from it becomes a warning and leaves the blocks as they were."""
    with gr.Accordion("Show code", open=False):
        button = gr.Button("Show code for the current request", size="sm")
        blocks = []
        with gr.Tabs():
            for label, language, _ in LANGUAGES:
                with gr.Tab(label):
                    blocks.append(gr.Code(language=language, interactive=False, label=label))

    def show(request: gr.Request, *values):
        try:
            code = make(request, *values)
        except (BackendError, ValueError) as exc:
            message = exc.user_message() if isinstance(exc, BackendError) else str(exc)
            gr.Warning(message, title="Cannot show code")
            return [gr.update() for _ in blocks]
        return [code[key] for _, _, key in LANGUAGES]

    button.click(show, inputs, blocks, api_visibility="private", concurrency_limit=None)


def render(
    task: str,
    build: Callable[..., tuple[Connection, object, dict]],
    inputs: list,
    *,
    api_key_required: bool = False,
) -> None:
    """The panel for chat / text generation: ``build(*values)`` → ``(connection, request
    inputs, parameters)``."""

    def make(request: gr.Request, *values) -> dict[str, str]:
        connection, request_inputs, parameters = build(*values)
        target = target_for(connection, origin_of(request), api_key_required=api_key_required)
        return snippets(task, target, inputs=request_inputs, parameters=parameters)

    render_panel(make, inputs)
