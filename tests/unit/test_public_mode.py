"""Public mode: when it is on (app.py), and where the page and the local API say so."""

from __future__ import annotations

import gradio as gr
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app
from api import mount_api
from components import build_ui, mode_line
from tests.unit.test_api_routes import FakeBackend


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SPACE_ID", "PLAYGROUND_PUBLIC", "PLAYGROUND_HOST", "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("argv", "env", "public"),
    [
        ([], {}, False),
        (["--host", "localhost"], {}, False),
        (["--host", "::1"], {}, False),
        ([], {"SPACE_ID": "user/playground"}, True),
        (["--host", "0.0.0.0"], {}, True),
        (["--host", "192.168.1.20"], {}, True),
        ([], {"GRADIO_SERVER_NAME": "0.0.0.0"}, True),
        (["--public"], {}, True),
        ([], {"PLAYGROUND_PUBLIC": "1"}, True),
        (["--no-public"], {"SPACE_ID": "user/playground"}, False),
        (["--host", "0.0.0.0"], {"PLAYGROUND_PUBLIC": "0"}, False),
    ],
)
def test_public_mode_detection(clean_env, argv, env, public):
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert app.is_public(app.parse_args(argv)) is public


def test_the_help_documents_the_flag_and_variables(capsys):
    with pytest.raises(SystemExit):
        app.parse_args(["--help"])
    text = capsys.readouterr().out
    for word in ("--public", "--no-public", "PLAYGROUND_PUBLIC", "PLAYGROUND_ALLOWED_ENDPOINTS"):
        assert word in text
    assert "SPACE_ID" in app.ENVIRONMENT


@pytest.mark.parametrize("public", [True, False])
def test_api_info_says_which_mode_runs(public):
    server = FastAPI()
    mount_api(server, FakeBackend(), public=public)
    info = TestClient(server, base_url="http://127.0.0.1").get("/api/info").json()
    assert info["public"] is public


@pytest.mark.parametrize(("public", "words"), [(True, "Public mode"), (False, "Local mode")])
def test_the_page_says_which_mode_runs(public, words):
    from tests.unit.test_components import FakeBackend as UIBackend

    demo = build_ui(UIBackend(), public=public)
    [line] = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "mode-line"]
    assert isinstance(line, gr.Markdown)
    assert words in line.value and line.value == mode_line(public)
