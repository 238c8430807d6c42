"""The connection panel's logic: which backend a tab's request goes to, what Check shows,
and where Show code points — without a browser."""

from types import SimpleNamespace

import pytest

from backends.errors import InputValidationError
from backends.remote import RemoteBackend
from components.connection import LOCAL, REMOTE, Connection, api_connection, backend_for, check
from components.show_code import origin_of, target_for

LOCAL_SENTINEL = object()


def test_local_mode_and_no_connection_use_the_local_backend():
    assert backend_for(None, LOCAL_SENTINEL) is LOCAL_SENTINEL
    assert (
        backend_for(Connection(LOCAL, endpoint="ignored/model"), LOCAL_SENTINEL) is LOCAL_SENTINEL
    )


def test_remote_without_endpoint_says_what_to_fill_in():
    with pytest.raises(InputValidationError, match="No remote endpoint") as info:
        backend_for(Connection(REMOTE, endpoint="  "), LOCAL_SENTINEL)
    assert "Connection panel" in info.value.user_message()


def test_remote_url_builds_a_remote_backend_for_that_url_with_the_session_token():
    conn = Connection(REMOTE, endpoint="http://127.0.0.1:9/v1", model="my-model", token="tok-1")
    backend = backend_for(conn, LOCAL_SENTINEL)
    assert isinstance(backend, RemoteBackend)
    assert backend.base_url == "http://127.0.0.1:9/v1" and backend.model == "my-model"
    assert backend._client_kwargs()["token"] == "tok-1"


def test_remote_hub_id_uses_model_and_provider():
    conn = Connection(
        REMOTE, endpoint="HuggingFaceTB/SmolLM2-1.7B-Instruct", provider="hf-inference"
    )
    backend = backend_for(conn, LOCAL_SENTINEL)
    assert backend.model == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert backend.provider == "hf-inference" and backend.base_url is None


def test_the_token_never_shows_in_repr():
    conn = Connection(REMOTE, endpoint="http://x", token="hf_secretsecretsecret")
    assert "hf_secret" not in repr(conn) and "hf_secret" not in str(conn)


def test_api_connection_empty_endpoint_means_local():
    assert api_connection("", "auto", "", "").mode == LOCAL
    conn = api_connection("http://h/api", "", "m", "t")
    assert (conn.mode, conn.endpoint, conn.provider, conn.model, conn.token) == (
        REMOTE,
        "http://h/api",
        "auto",
        "m",
        "t",
    )


def test_check_on_the_local_model_shows_its_info(local_backend):
    text = check(Connection(), local_backend)
    assert text.startswith("🟢") and "SmolLM2-135M-Instruct" in text and "8192" in text


def test_check_on_an_unreachable_url_says_why():
    text = check(Connection(REMOTE, endpoint="http://127.0.0.1:9"), LOCAL_SENTINEL)
    assert text.startswith("🔴") and "127.0.0.1:9" in text


def test_show_code_targets():
    local = target_for(Connection(), "http://localhost:7860", api_key_required=True)
    assert (local.kind, local.base_url, local.has_token) == (
        "local",
        "http://localhost:7860/api",
        True,
    )
    url = target_for(
        Connection(REMOTE, endpoint="https://e.example/v1", model="m", token="t"),
        "",
        api_key_required=False,
    )
    assert (url.kind, url.base_url, url.model, url.has_token) == (
        "url",
        "https://e.example/v1",
        "m",
        True,
    )
    hub = target_for(
        Connection(REMOTE, endpoint="org/m", provider="together"), "", api_key_required=False
    )
    assert (hub.kind, hub.model, hub.provider) == ("model", "org/m", "together")


def test_origin_of_honours_proxy_headers():
    plain = SimpleNamespace(headers={"host": "127.0.0.1:7860"})
    assert origin_of(plain) == "http://127.0.0.1:7860"
    proxied = SimpleNamespace(
        headers={
            "host": "internal:7860",
            "x-forwarded-host": "me-app.hf.space",
            "x-forwarded-proto": "https",
        }
    )
    assert origin_of(proxied) == "https://me-app.hf.space"


def test_check_on_a_hub_model_says_where_requests_go_and_that_a_token_is_needed():
    text = check(Connection(REMOTE, endpoint="org/model", provider="together"), LOCAL_SENTINEL)
    assert "org/model via together" in text and "needs a token" in text
