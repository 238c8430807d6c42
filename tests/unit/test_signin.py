"""Sign in with Hugging Face: which token a request carries (typed, else the visitor's
OAuth token for Hugging Face targets only), and that a public server never lends its own
token for a Hub model id."""

from __future__ import annotations

import pytest
from gradio import OAuthToken

from backends import netguard
from backends.errors import AuthenticationError
from backends.remote import RemoteBackend
from components import connection as connection_module
from components.connection import REMOTE, Connection, backend_for, hf_target, signed_in

OAUTH = OAuthToken(token="hf_oauth_visitor", scope="openid profile inference-api", expires_at=0)
LOCAL_SENTINEL = object()


def _token(connection: Connection) -> str | None:
    backend = backend_for(connection, LOCAL_SENTINEL)
    assert isinstance(backend, RemoteBackend)
    return backend._client_kwargs()["token"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://xyz.us-east-1.aws.endpoints.huggingface.cloud", True),
        ("https://router.huggingface.co/v1", True),
        ("https://huggingface.co", True),
        ("http://router.huggingface.co/v1", False),  # not over plain http
        ("https://huggingface.co.evil.example", False),
        ("https://evilhuggingface.co", False),
        ("http://127.0.0.1:8080", False),
        ("https://api.openai.com/v1", False),
    ],
)
def test_hugging_face_targets(url: str, expected: bool) -> None:
    assert hf_target(url) is expected


def test_the_configured_hub_origin_counts_as_hugging_face(monkeypatch) -> None:
    monkeypatch.setattr(connection_module.hub_constants, "ENDPOINT", "http://127.0.0.1:4321")
    assert hf_target("http://127.0.0.1:4321/v1")
    assert not hf_target("http://127.0.0.1:4322/v1")  # same host, another origin


def test_a_signed_in_visitor_s_token_goes_to_hub_ids_and_hf_hosts_only() -> None:
    hub_id = signed_in(Connection(REMOTE, endpoint="org/model", provider="together"), OAUTH)
    assert _token(hub_id) == "hf_oauth_visitor"
    endpoint = signed_in(
        Connection(REMOTE, endpoint="https://abc.endpoints.huggingface.cloud"), OAUTH
    )
    assert _token(endpoint) == "hf_oauth_visitor"
    other = signed_in(Connection(REMOTE, endpoint="https://api.example.com/v1"), OAUTH)
    assert _token(other) is None  # a host the visitor typed, not Hugging Face: nothing


def test_a_typed_token_wins_over_the_sign_in() -> None:
    typed = Connection(REMOTE, endpoint="org/model", token="hf_typed")
    assert _token(signed_in(typed, OAUTH)) == "hf_typed"


def test_signed_out_changes_nothing_and_the_token_never_prints() -> None:
    conn = Connection(REMOTE, endpoint="org/model")
    assert signed_in(conn, None) is conn
    assert "hf_oauth_visitor" not in repr(signed_in(conn, OAUTH))


def test_a_public_server_never_lends_its_own_token_for_a_hub_id(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_server_own_secret")
    monkeypatch.setattr(netguard, "_PUBLIC", netguard.Guard(()))
    backend = RemoteBackend("org/model", provider="together")
    with pytest.raises(AuthenticationError) as refused:
        backend.chat_completion([{"role": "user", "content": "hi"}], max_tokens=2)
    assert "Sign in with Hugging Face" in refused.value.user_message()
    assert "no token (sign in or paste one)" in backend.status().message
    # Signed in: the visitor's token is what InferenceClient gets.
    mine = RemoteBackend("org/model", provider="together", token="hf_oauth_visitor")
    assert mine._client_kwargs()["token"] == "hf_oauth_visitor"


def test_off_a_public_server_a_hub_id_may_use_this_machine_s_login(monkeypatch) -> None:
    monkeypatch.setattr(netguard, "_PUBLIC", None)
    backend = RemoteBackend("org/model", provider="together")
    assert backend._client_kwargs()["token"] is None  # InferenceClient's own default
    assert "saved token" in backend.status().message
