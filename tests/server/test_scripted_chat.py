"""The chat's images and thinking over real HTTP: ``RemoteBackend`` (InferenceClient)
against the scripted loopback endpoint (``fake_endpoint``: ``vision``, ``reasoning``,
``think``), which records what it received."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from huggingface_hub import constants
from PIL import Image

from backends import vision
from backends.errors import InputValidationError
from backends.remote import RemoteBackend
from components import chat
from components.forms import ChatForm
from tests.server import fake_endpoint
from tests.server.fake_endpoint import FakeEndpoint

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def server() -> FakeEndpoint:
    endpoint = fake_endpoint.start()
    try:
        yield endpoint
    finally:
        fake_endpoint.stop(endpoint)


@pytest.fixture
def endpoint(server: FakeEndpoint, monkeypatch) -> FakeEndpoint:
    server.reset()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return server


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "square.png"
    Image.new("RGB", (8, 6), (0, 90, 200)).save(path)
    return path


def remote(endpoint: FakeEndpoint, path: str) -> RemoteBackend:
    return RemoteBackend(base_url=endpoint.url(path), model="fake-vlm", timeout=TIMEOUT_S)


@pytest.mark.parametrize("route", ["vision/v1", "vision"], ids=["openai", "tgi"])
def test_an_image_reaches_the_endpoint_as_an_image_url_part(endpoint, png, route):
    """OpenAI-compatible ``/v1`` base URLs and TGI URLs (its Messages API) get the same
    content parts."""
    history = [{"role": "user", "content": [{"path": str(png)}, "What is this?"]}]
    messages = chat.to_messages(history, "Be brief.")
    *_, last = chat.run_turn(remote(endpoint, route), messages, ChatForm(max_tokens=20))
    assert last.answer == "I see 1 image: image/png 8x6."
    (post,) = endpoint.posts()
    assert post.path == f"/{route.removesuffix('/v1')}/v1/chat/completions"
    user = post.body["messages"][-1]
    assert user["role"] == "user"
    assert user["content"][0] == {"type": "text", "text": "What is this?"}
    part = user["content"][1]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"] == vision.data_url(png)


def test_a_non_image_data_url_is_refused_before_any_request(endpoint):
    bad = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]
    backend = remote(endpoint, "vision/v1")
    with pytest.raises(InputValidationError, match="not an image Pillow can read"):
        list(backend.chat_completion([{"role": "user", "content": bad}], stream=True))
    assert endpoint.posts() == []


@pytest.mark.parametrize("path", ["reasoning/v1", "think/v1"])
def test_reasoning_streams_apart_from_the_answer(endpoint, path):
    backend = remote(endpoint, path)
    turns = list(chat.run_turn(backend, [{"role": "user", "content": "Colour?"}], ChatForm()))
    last = turns[-1]
    assert last.thinking == "The user asks for a colour."
    assert last.answer == "Blue is calm."
    assert last.thinking_tokens >= 4 and last.done
    assert last.shown()[0]["metadata"]["title"] == f"Thinking · {last.thinking_tokens} tokens"
    # The next turn sends the answer back, never the thinking.
    history = [
        {"role": "user", "content": "Colour?"},
        *last.shown(),
        {"role": "user", "content": "Why?"},
    ]
    list(chat.run_turn(backend, chat.to_messages(history), ChatForm()))
    sent = endpoint.posts()[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": "Blue is calm."}
    assert all("asks for" not in str(m["content"]) for m in sent)


def test_the_vision_echo_describes_every_image(endpoint, png, tmp_path):
    jpeg = tmp_path / "b.jpg"
    out = io.BytesIO()
    Image.new("RGB", (3, 4)).save(out, format="JPEG")
    jpeg.write_bytes(out.getvalue())
    history = [{"role": "user", "content": [{"path": str(png)}, {"path": str(jpeg)}, "Both?"]}]
    *_, last = chat.run_turn(remote(endpoint, "vision/v1"), chat.to_messages(history), ChatForm())
    assert last.answer == "I see 2 images: image/png 8x6, image/jpeg 3x4."
