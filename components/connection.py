"""The connection panel: each tab picks the local model or a remote endpoint.

The choice lives in a per-session ``gr.State`` (server side, never sent back to the
browser), so a user's token stays in their session: it is not logged, not shown to others,
and only sent to the endpoint that user typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gradio as gr
from huggingface_hub import constants as hub_constants

from backends import Backend, create_backend, netguard
from backends.errors import BackendError, InputValidationError
from components.common import api_text

LOCAL = "Local model"
REMOTE = "Remote endpoint"
DEFAULT = "Default endpoint"  # the operator's endpoint (``--default-endpoint``)


@dataclass(frozen=True)
class DefaultEndpoint:
    """The operator's endpoint (``--default-endpoint``): where tabs start. ``token`` is the
    operator's (``PLAYGROUND_DEFAULT_TOKEN``): sent to ``url`` only, never shown to visitors
    (it stays on the server: no session state, no page config, no snippet holds it).
    ``local_model``: whether the bundled local model is served beside it."""

    url: str
    model: str = ""
    token: str = field(default="", repr=False)
    local_model: bool = True

    @property
    def label(self) -> str:
        return f"{DEFAULT}: {self.url}" + (f" (model {self.model})" if self.model else "")

    def guard(self) -> netguard.Guard | None:
        """Public mode's guard, with this URL's prefix let through: the operator chose it,
        even on a private network. A visitor's typed URL still meets the plain guard."""
        public = netguard.public_guard()
        if public is None:
            return None
        prefix = self.url.rstrip("/").removesuffix("/v1")  # /health and /info live above /v1
        return netguard.Guard(
            (*public.allowed, prefix), resolver=public.resolver, classifier=public.classifier
        )

    def backend(self) -> Backend:
        return create_backend(
            "remote",
            model=self.model or None,
            base_url=self.url,
            token=self.token or None,
            guard=self.guard(),
            token_owner="the operator's",
            **_REMOTE_OPTIONS,
        )


_DEFAULT: DefaultEndpoint | None = None
# The operator's limits for every remote request (``--remote-timeout``,
# ``--remote-load-wait``): RemoteBackend's keyword arguments; empty = its defaults.
_REMOTE_OPTIONS: dict[str, float] = {}


def configure_remote(*, timeout: float | None = None, load_wait: float | None = None) -> None:
    """Seconds a remote endpoint may stay silent (connect, between streamed bytes) and
    seconds to keep retrying while it says its model is loading; None: RemoteBackend's
    default."""
    _REMOTE_OPTIONS.clear()
    if timeout is not None:
        _REMOTE_OPTIONS["timeout"] = timeout
    if load_wait is not None:
        _REMOTE_OPTIONS["load_wait"] = load_wait


def configure_default(default: DefaultEndpoint | None) -> None:
    """Set (or clear) the operator's default endpoint for this process (``build_ui``)."""
    global _DEFAULT
    _DEFAULT = default


def default_endpoint() -> DefaultEndpoint | None:
    return _DEFAULT


def initial_mode(*, offer_default: bool = True) -> str:
    """The mode a panel starts in: the default endpoint when there is one (and the tab
    offers it), else the local model, else (``--no-local-model``) a remote endpoint."""
    if _DEFAULT is not None and offer_default:
        return DEFAULT
    if _DEFAULT is not None and not _DEFAULT.local_model:
        return REMOTE
    return LOCAL


@dataclass(frozen=True)
class Connection:
    """Where a tab's requests go. ``endpoint`` is a Hub model id or a URL."""

    mode: str = LOCAL
    endpoint: str = ""
    provider: str = "auto"
    model: str = ""  # model name sent to an OpenAI-compatible URL (`…/v1`)
    token: str = field(default="", repr=False)  # never printed, even in a debug log
    # A signed-in visitor's Hugging Face token (``visitors.signed_in``), set per request.
    oauth_token: str = field(default="", repr=False)

    @property
    def is_url(self) -> bool:
        return self.endpoint.startswith(("http://", "https://"))

    def request_token(self) -> str | None:
        """The token this target's requests carry: the typed one, else the visitor's
        Hugging Face sign-in for a Hugging Face target (never for another host), else none."""
        typed = self.token.strip()
        if typed:
            return typed
        if self.oauth_token and (not self.is_url or hf_target(self.endpoint.strip())):
            return self.oauth_token
        return None

    def describe(self) -> str:
        if self.mode == LOCAL:
            return "the local model"
        if self.mode == DEFAULT:
            return _DEFAULT.label if _DEFAULT is not None else "the default endpoint"
        if self.is_url:
            return self.endpoint + (f" (model {self.model})" if self.model else "")
        return f"{self.endpoint} via {self.provider}"


def signed_in(connection: Connection | None, oauth: gr.OAuthToken | None) -> Connection | None:
    """``connection`` carrying the visitor's OAuth token (``gr.OAuthToken``, filled in by
    Gradio from their sign-in) for this request only; used where no token was typed, and
    only for Hugging Face targets (``Connection.request_token``)."""
    if connection is None or oauth is None or not oauth.token:
        return connection
    return dataclasses.replace(connection, oauth_token=oauth.token)


# Hosts of Hugging Face's own inference services (https only): a signed-in visitor's token
# may go there without being typed. Hub ids go to router.huggingface.co.
HF_HOST_SUFFIXES = ("huggingface.co", "huggingface.cloud")


def hf_target(url: str) -> bool:
    """Whether ``url`` is a Hugging Face service: an https URL on a Hugging Face host (an
    Inference Endpoint, the router), or the configured Hub (``HF_ENDPOINT``, same origin)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    hub = urlsplit(hub_constants.ENDPOINT)
    if (parts.scheme, parts.netloc.lower()) == (hub.scheme, hub.netloc.lower()):
        return True
    return parts.scheme == "https" and any(
        host == suffix or host.endswith("." + suffix) for suffix in HF_HOST_SUFFIXES
    )


def backend_for(connection: Connection | None, local: Backend) -> Backend:
    """The backend a request should use. Raises ``BackendError`` for an incomplete remote
    target, with what to fill in."""
    if connection is not None and connection.mode == DEFAULT:
        if _DEFAULT is None:
            raise InputValidationError(
                "No default endpoint is configured.", hint="Pick the local model or a remote."
            )
        return _DEFAULT.backend()
    if connection is None or connection.mode == LOCAL:
        return local
    endpoint = connection.endpoint.strip()
    if not endpoint:
        raise InputValidationError(
            "No remote endpoint set.",
            hint="Enter a Hub model id (e.g. HuggingFaceTB/SmolLM2-1.7B-Instruct) or an "
            "endpoint URL in the Connection panel, or switch back to the local model.",
        )
    token = connection.request_token()
    if connection.is_url:
        return create_backend(
            "remote",
            model=connection.model.strip() or None,
            base_url=endpoint,
            token=token,
            **_REMOTE_OPTIONS,
        )
    return create_backend(
        "remote", model=endpoint, provider=connection.provider, token=token, **_REMOTE_OPTIONS
    )


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
            token=connection.request_token(),
            **_REMOTE_OPTIONS,
        )
    return backend_for(connection, local)


def api_connection(
    endpoint: object,
    provider: object,
    model: object,
    token: object,
    oauth: gr.OAuthToken | None = None,
) -> Connection:
    """The Gradio API endpoints' remote arguments (checked: a client may send any JSON) as
    a ``Connection`` carrying the caller's sign-in (``signed_in``). Empty ``endpoint``: the
    default endpoint when the operator set one, else the local model; ``"local"``: the
    local model."""
    endpoint, provider, model, token = (
        api_text(value, name)
        for value, name in (
            (endpoint, "endpoint"),
            (provider, "provider"),
            (model, "model"),
            (token, "token"),
        )
    )
    endpoint = endpoint.strip()
    if endpoint.lower() == "local":
        connection = Connection(LOCAL)
    elif not endpoint:
        connection = Connection(DEFAULT if _DEFAULT is not None else LOCAL)
    else:
        connection = Connection(REMOTE, endpoint, provider or "auto", model, token)
    return signed_in(connection, oauth)


def check(connection: Connection, local: Backend) -> str:
    """Markdown: the endpoint's health and ``/info`` (model, dtype, limits, version), or
    the reason the check failed."""
    try:
        backend = backend_for(connection, local)
        if connection.mode == REMOTE and not connection.is_url:
            # Providers publish no /health or /info: say where requests go and what is needed.
            if connection.token.strip():
                token = "with your token"
            elif connection.oauth_token:
                token = "with your Hugging Face sign-in"
            else:
                token = "— needs a token (hf_…) or Sign in with Hugging Face"
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


def mode_choices(*, offer_default: bool = True) -> list[tuple[str, str]]:
    """The panel's radio: (label, mode). The local model is absent when not loaded."""
    choices = []
    if _DEFAULT is not None and offer_default:
        choices.append((_DEFAULT.label, DEFAULT))
    if _DEFAULT is None or _DEFAULT.local_model:
        choices.append((LOCAL, LOCAL))
    choices.append((REMOTE, REMOTE))
    return choices


def panel_note(*, offer_default: bool = True) -> str:
    """A line under the radio when the operator changed the choices (else empty)."""
    if _DEFAULT is None:
        return ""
    notes = []
    if offer_default:
        notes.append(
            f"Requests go to the operator's endpoint `{_DEFAULT.url}` unless you pick another."
        )
    if not _DEFAULT.local_model:
        notes.append("The local model is not loaded on this server (`--no-local-model`).")
    return " ".join(notes)


@dataclass(frozen=True)
class Panel:
    """A rendered connection panel: its ``state`` and its ``fields``, whose values, in
    order, are ``Connection(*values)``. (A ``gr.State`` set by an unqueued event fires no
    ``change``: a tab that reacts to the choice listens to the fields.)"""

    state: gr.State
    fields: list[gr.components.Component]


def render_panel(local: Backend, providers: list[str], *, offer_default: bool = True) -> Panel:
    """Like ``render``, also returning the fields (see ``Panel``). ``offer_default``: the
    operator's default endpoint is a choice (and the starting one) in this panel."""
    start = initial_mode(offer_default=offer_default)
    state = gr.State(Connection(start))
    with gr.Accordion("Connection", open=False):
        mode = gr.Radio(
            mode_choices(offer_default=offer_default),
            value=start,
            show_label=False,
            elem_classes=["connection-mode"],
        )
        note = panel_note(offer_default=offer_default)
        if note:
            gr.Markdown(note, elem_classes=["connection-note"])
        with gr.Group(visible=start == REMOTE) as remote_box:
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

    def check_clicked(oauth: gr.OAuthToken | None, connection: Connection) -> str:
        return check(signed_in(connection, oauth), local)

    check_btn.click(
        check_clicked,
        state,
        result,
        api_visibility="private",
        concurrency_limit=None,
    )
    return Panel(state, fields)
