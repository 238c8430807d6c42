"""The app as a user starts it with the fast CPU engine (``--engine llama.cpp``): the page
says which engine runs, /info names the GGUF's quantization, and real clients stream from
it through the local API and the Gradio API."""

from __future__ import annotations

import pytest

from backends.local.engine.llamacpp import llamacpp_available

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not llamacpp_available(), reason="llama-cpp-python is not installed (make setup-fast)"
    ),
]


@pytest.fixture(scope="module")
def llamacpp_app(artifacts_dir):
    from tests.conftest import start_app

    with start_app(
        artifacts_dir / "app-server-llamacpp.log", env={"PLAYGROUND_ENGINE": "llama.cpp"}
    ) as server:
        yield server


def test_info_and_status_name_the_engine(llamacpp_app) -> None:
    import httpx

    info = httpx.get(f"{llamacpp_app.url}api/info", timeout=10).json()
    assert info["model_dtype"] == "Q4_1"
    assert info["max_batch_size"] == 16  # continuous batching, --max-batch-size's default


def test_local_api_streams_from_llamacpp(llamacpp_app) -> None:
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=f"{llamacpp_app.url}api", headers={"authorization": None})
    events = list(
        client.text_generation(
            "The capital of France is", max_new_tokens=8, stream=True, details=True
        )
    )
    assert len(events) == 8
    assert events[-1].details.finish_reason == "length"
    # Greedy through the API equals greedy through the engine directly (same GGUF).
    whole = client.text_generation("The capital of France is", max_new_tokens=8)
    assert whole == events[-1].generated_text


def test_gradio_chat_streams_from_llamacpp(llamacpp_app) -> None:
    from gradio_client import Client

    client = Client(llamacpp_app.url, verbose=False)
    try:
        updates = list(client.submit("Say hello.", max_tokens=12, api_name="/chat"))
    finally:
        client.close()
    assert len(updates) > 2  # streamed, not one final answer
    assert updates[-1].strip()
