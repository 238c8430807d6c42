"""The app in remote mode: its Gradio API pointed at a second app's local API.

The main app (``app_url``) forwards to ``guarded_app`` (one request at a time, behind an
API key) through ``RemoteBackend`` → ``InferenceClient`` → HTTP → the second app's TGI- and
OpenAI-compatible routes. Both directions of the protocol are real, no mock on either side.
"""

from __future__ import annotations

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.conftest import GUARDED_API_KEY

FINISHED = "playground_requests_finished_total"  # GET /api/metrics


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def remote(guarded_app) -> dict[str, str]:
    return {"endpoint": f"{guarded_app.url}api", "token": GUARDED_API_KEY}


def stream(client: Client, *args, **kwargs) -> list[str]:
    job = client.submit(*args, **kwargs)
    updates = [u for u in job if u]
    return [*updates, job.result()] if not updates or updates[-1] != job.result() else updates


def test_chat_streams_through_the_remote_endpoint(client: Client, remote, guarded_app) -> None:
    before = guarded_app.metrics(GUARDED_API_KEY).get(FINISHED, 0.0)
    updates = stream(
        client, "Name a colour.", max_tokens=12, temperature=0, api_name="/chat", **remote
    )
    assert len(set(updates)) > 1, updates
    assert all(b.startswith(a) for a, b in zip(updates, updates[1:], strict=False))
    # The same greedy request on the local model gives the same text: one model, two paths.
    local = client.predict("Name a colour.", max_tokens=12, temperature=0, api_name="/chat")
    assert updates[-1] == local
    # And the second app's engine really served it.
    assert guarded_app.metrics(GUARDED_API_KEY)[FINISHED] > before


def test_text_generation_streams_through_the_remote_endpoint(client: Client, remote) -> None:
    args = dict(max_new_tokens=10, do_sample=False, api_name="/text_generation")
    updates = stream(client, "The capital of France is", **args, **remote)
    assert len(set(updates)) > 1, updates
    assert updates[-1] == client.predict("The capital of France is", **args)


def test_a_wrong_token_is_explained(client: Client, guarded_app) -> None:
    with pytest.raises(AppError, match="token"):
        client.predict(
            "Hi", max_tokens=4, api_name="/chat", endpoint=f"{guarded_app.url}api", token="wrong"
        )


def test_an_unreachable_endpoint_is_explained_and_the_app_keeps_serving(client: Client) -> None:
    with pytest.raises(AppError, match="127.0.0.1:9"):
        client.predict("Hi", max_tokens=4, api_name="/chat", endpoint="http://127.0.0.1:9")
    assert client.predict("Hi", max_tokens=2, temperature=0, api_name="/chat")
