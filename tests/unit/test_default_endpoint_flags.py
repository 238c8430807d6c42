"""The operator's default endpoint (app.py --default-endpoint, components.connection)."""

from __future__ import annotations

import json

import gradio as gr
import pytest

import app
from backends import netguard
from components import build_ui
from components import connection as conn
from components.show_code import target_for
from tests.unit.test_components import FakeBackend as UIBackend

URL = "http://10.0.0.5:8080"
TOKEN = "operator-secret-token"
_ENV = (
    "PLAYGROUND_DEFAULT_ENDPOINT",
    "PLAYGROUND_DEFAULT_MODEL",
    "PLAYGROUND_DEFAULT_TOKEN",
    "PLAYGROUND_NO_LOCAL_MODEL",
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(autouse=True)
def no_default_after():
    yield
    conn.configure_default(None)


def test_no_default_endpoint_unless_asked(clean_env):
    args = app.parse_args([])
    assert args.local_model is True
    assert app.default_endpoint(args) is None


def test_flags_give_the_default_endpoint(clean_env):
    args = app.parse_args(["--default-endpoint", f"{URL}/v1", "--default-model", "llama"])
    default = app.default_endpoint(args, {"PLAYGROUND_DEFAULT_TOKEN": TOKEN})
    assert (default.url, default.model, default.token) == (f"{URL}/v1", "llama", TOKEN)
    assert default.local_model is True
    assert TOKEN not in repr(default)


def test_variables_give_the_default_endpoint(clean_env):
    clean_env.setenv("PLAYGROUND_DEFAULT_ENDPOINT", URL)
    clean_env.setenv("PLAYGROUND_DEFAULT_MODEL", "m")
    clean_env.setenv("PLAYGROUND_DEFAULT_TOKEN", TOKEN)
    clean_env.setenv("PLAYGROUND_NO_LOCAL_MODEL", "1")
    default = app.default_endpoint(app.parse_args([]))
    assert (default.url, default.model, default.token, default.local_model) == (
        URL,
        "m",
        TOKEN,
        False,
    )


def test_the_token_has_no_flag(clean_env, capsys):
    with pytest.raises(SystemExit):
        app.parse_args(["--default-token", TOKEN])
    assert "PLAYGROUND_DEFAULT_TOKEN" in app.ENVIRONMENT


@pytest.mark.parametrize("argv", [["--no-local-model"], ["--default-endpoint", "10.0.0.5:8080"]])
def test_bad_combinations_are_refused(clean_env, argv, capsys):
    with pytest.raises(SystemExit):
        app.parse_args(argv)


def test_no_local_model_flag(clean_env):
    args = app.parse_args(["--default-endpoint", URL, "--no-local-model"])
    assert args.local_model is False


def test_tabs_start_on_the_default_endpoint_and_the_api_uses_it():
    default = conn.DefaultEndpoint(URL, token=TOKEN)
    conn.configure_default(default)
    assert conn.initial_mode() == conn.DEFAULT
    assert conn.mode_choices()[0] == (f"Default endpoint: {URL}", conn.DEFAULT)
    assert (conn.LOCAL, conn.LOCAL) in conn.mode_choices()
    assert conn.api_connection("", "auto", "", "").mode == conn.DEFAULT
    assert conn.api_connection("local", "auto", "", "").mode == conn.LOCAL
    backend = conn.backend_for(conn.Connection(conn.DEFAULT), UIBackend())
    assert backend.base_url == URL and backend._token.get_secret_value() == TOKEN
    assert "the operator's token" in backend.status().message
    # Task tabs keep the local model (TGI/vLLM serve text generation only).
    assert conn.initial_mode(offer_default=False) == conn.LOCAL


def test_without_a_default_nothing_changes():
    conn.configure_default(None)
    assert conn.initial_mode() == conn.LOCAL
    assert conn.mode_choices() == [(conn.LOCAL, conn.LOCAL), (conn.REMOTE, conn.REMOTE)]
    assert conn.api_connection("", "auto", "", "").mode == conn.LOCAL


def test_without_a_local_model_the_choice_is_absent_and_said():
    conn.configure_default(conn.DefaultEndpoint(URL, local_model=False))
    modes = [mode for _, mode in conn.mode_choices()]
    assert modes == [conn.DEFAULT, conn.REMOTE]
    assert "not loaded" in conn.panel_note()
    assert conn.initial_mode(offer_default=False) == conn.REMOTE


def test_snippets_read_the_token_from_the_environment():
    conn.configure_default(conn.DefaultEndpoint(f"{URL}/v1", model="m", token=TOKEN))
    target = target_for(conn.Connection(conn.DEFAULT), "http://x", api_key_required=False)
    assert (target.kind, target.base_url, target.model, target.has_token) == (
        "url",
        f"{URL}/v1",
        "m",
        True,
    )
    assert TOKEN not in repr(target)


def test_public_mode_lets_the_operator_url_through_only(monkeypatch):
    monkeypatch.setattr(netguard, "_PUBLIC", netguard.Guard())
    guard = conn.DefaultEndpoint(f"{URL}/v1").guard()
    assert guard.is_allowed(f"{URL}/v1/chat/completions")
    assert guard.is_allowed(f"{URL}/health")
    assert not netguard.public_guard().is_allowed(f"{URL}/v1/chat/completions")
    assert not guard.is_allowed("http://10.0.0.6:8080/v1")


def test_the_page_shows_the_default_and_never_the_token():
    default = conn.DefaultEndpoint(URL, token=TOKEN)
    demo = build_ui(UIBackend(), default_endpoint=default)
    config = json.dumps(demo.get_config_file(), default=str)
    assert TOKEN not in config
    radios = [b for b in demo.blocks.values() if isinstance(b, gr.Radio)]
    starts = [r.value for r in radios if "connection-mode" in (r.elem_classes or [])]
    # Chat, Text generation, Compare's four panes and Sweep's four targets on the default
    # endpoint, the task tabs on the local model.
    assert starts[:10] == [conn.DEFAULT] * 10
    assert set(starts[10:]) == {conn.LOCAL}
