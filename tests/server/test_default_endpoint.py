"""The operator's default endpoint: an app whose tabs start on a second app's local API.

``PLAYGROUND_DEFAULT_ENDPOINT`` points the first app at ``guarded_app`` (TGI/OpenAI
compatible, behind ``GUARDED_API_KEY``, given as ``PLAYGROUND_DEFAULT_TOKEN``). The Gradio
API, called without an endpoint, is answered by the second app: its engine's counter says so.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from gradio_client import Client

from tests.conftest import GUARDED_API_KEY, AppServer, start_app

FINISHED = "playground_requests_finished_total"  # GET /api/metrics


def _env(guarded_app: AppServer) -> dict[str, str]:
    return {
        "PLAYGROUND_DEFAULT_ENDPOINT": f"{guarded_app.url}api",
        "PLAYGROUND_DEFAULT_TOKEN": GUARDED_API_KEY,
    }


@pytest.fixture(scope="module", params=["with-local-model", "no-local-model"])
def fronted(request, guarded_app, artifacts_dir) -> Iterator[AppServer]:
    args = ("--no-local-model",) if request.param == "no-local-model" else ()
    log = artifacts_dir / f"app-server-default-{request.param}.log"
    with start_app(log, args, _env(guarded_app)) as server:
        yield server


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_chat_and_text_generation_go_to_the_default_endpoint(fronted, guarded_app) -> None:
    client = Client(fronted.url, verbose=False)
    try:
        before = guarded_app.metrics(GUARDED_API_KEY).get(FINISHED, 0.0)
        assert client.predict("Name a colour.", max_tokens=6, temperature=0, api_name="/chat")
        after_chat = guarded_app.wait_for_metric(FINISHED, before, api_key=GUARDED_API_KEY)
        text = client.predict(
            "The capital of France is",
            max_new_tokens=4,
            do_sample=False,
            api_name="/text_generation",
        )
        assert text
        guarded_app.wait_for_metric(FINISHED, after_chat[FINISHED], api_key=GUARDED_API_KEY)
    finally:
        client.close()


def test_the_token_is_never_in_the_page(fronted) -> None:
    config = _get(f"{fronted.url}config")
    page = _get(fronted.url)
    assert "Default endpoint" in config  # the choice is there…
    assert GUARDED_API_KEY not in config  # …its token is not
    assert GUARDED_API_KEY not in page


def test_no_local_model_loads_nothing_and_serves_no_local_api(fronted, request) -> None:
    log = fronted.log_text()
    if "--no-local-model" not in fronted.process.args:
        assert "No local model" not in log
        with urllib.request.urlopen(f"{fronted.url}api/metrics", timeout=10) as response:
            assert response.status == 200  # the local API is mounted
        return
    assert "No local model (--no-local-model)" in log
    assert "Local API not mounted" in log
    assert "backends.local" not in log  # the local backend never started loading
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(f"{fronted.url}api/metrics")
    assert refused.value.code == 404
