"""RemoteBackend against a real HTTP server (tests/server/fake_endpoint.py) that replays the
shapes TGI and OpenAI-compatible servers send: the happy paths, and every failure a user can
meet, each as the right ``BackendError`` with a message that says what to do. Mid-stream
failures must deliver the chunks that arrived before the error."""

from __future__ import annotations

import time

import pytest
from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionStreamOutput,
    TextGenerationOutput,
    TextGenerationStreamOutput,
    constants,
)

from backends.errors import (
    AuthenticationError,
    BackendError,
    GenerationError,
    IncompleteGenerationError,
    InputValidationError,
    ModelNotFoundError,
    OverloadedError,
    UnavailableError,
)
from backends.remote import RemoteBackend
from tests.server import fake_endpoint
from tests.server.fake_endpoint import INFO, REPLY, FakeEndpoint

pytestmark = pytest.mark.server

TIMEOUT_S = 1.0  # the fake's hang/stall lasts fake_endpoint.HANG_S (4 s)
MESSAGES = [{"role": "user", "content": "Say hello"}]
SECRET = "hf_session_SECRET_token_123"
FULL_TEXT = "".join(REPLY)


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
    # HF_HUB_OFFLINE=1 in a developer's shell would block even 127.0.0.1 (it is read at
    # import time); this server is local, so these tests run regardless.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return server


def remote(endpoint: FakeEndpoint, behaviour: str = "ok", **kwargs) -> RemoteBackend:
    kwargs.setdefault("timeout", TIMEOUT_S)
    return RemoteBackend(base_url=endpoint.url(behaviour), **kwargs)


def chat_text(chunks: list[ChatCompletionStreamOutput]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def drain(stream, received: list) -> None:
    for item in stream:
        received.append(item)


# -- happy paths ---------------------------------------------------------------------------


def test_text_generation(endpoint):
    backend = remote(endpoint)
    assert backend.text_generation("Hi", max_new_tokens=6, seed=1) == FULL_TEXT
    (post,) = endpoint.posts()
    assert post.path == "/ok"  # TGI's compat route is the URL itself
    assert post.body["inputs"] == "Hi"
    assert post.body["parameters"]["max_new_tokens"] == 6
    assert post.body["parameters"]["seed"] == 1


def test_text_generation_details(endpoint):
    output = remote(endpoint).text_generation("Hi", details=True)
    assert isinstance(output, TextGenerationOutput)
    assert output.generated_text == FULL_TEXT
    assert [t.text for t in output.details.tokens] == REPLY


def test_text_generation_stream(endpoint):
    chunks = list(remote(endpoint).text_generation("Hi", stream=True))
    assert chunks == REPLY


def test_text_generation_stream_details(endpoint):
    chunks = list(remote(endpoint).text_generation("Hi", stream=True, details=True))
    assert all(isinstance(c, TextGenerationStreamOutput) for c in chunks)
    assert chunks[-1].generated_text == FULL_TEXT
    assert chunks[-1].details.finish_reason == "eos_token"


def test_chat_completion(endpoint):
    output = remote(endpoint).chat_completion(MESSAGES, max_tokens=8, temperature=0.5)
    assert isinstance(output, ChatCompletionOutput)
    assert output.choices[0].message.content == FULL_TEXT
    (post,) = endpoint.posts()
    assert post.path == "/ok/v1/chat/completions"
    assert post.body["messages"] == MESSAGES
    assert (post.body["max_tokens"], post.body["temperature"]) == (8, 0.5)


def test_chat_completion_stream(endpoint):
    chunks = list(remote(endpoint).chat_completion(MESSAGES, stream=True))
    assert all(isinstance(c, ChatCompletionStreamOutput) for c in chunks)
    assert chat_text(chunks) == FULL_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_compatible_base_url_passes_the_model_through(endpoint):
    backend = RemoteBackend("my-served-model", base_url=f"{endpoint.url()}/v1", timeout=TIMEOUT_S)
    assert chat_text(list(backend.chat_completion(MESSAGES, stream=True))) == FULL_TEXT
    (post,) = endpoint.posts()
    assert post.path == "/ok/v1/chat/completions"
    assert post.body["model"] == "my-served-model"
    assert post.body["stream"] is True


def test_health_and_info(endpoint):
    backend = remote(endpoint)
    assert backend.health_check() is True
    assert backend.get_endpoint_info() == INFO
    assert [r.path for r in endpoint.requests] == ["/ok/health", "/ok/info"]


def test_info_from_a_server_without_it(endpoint):
    with pytest.raises(UnavailableError, match="does not serve /info") as info:
        RemoteBackend(base_url=f"{endpoint.url('openai')}/v1").get_endpoint_info()
    assert "TGI" in info.value.hint


# -- secrets on the wire -------------------------------------------------------------------


def test_no_token_is_sent_to_a_typed_url(endpoint, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_server_SAVED_token")
    backend = remote(endpoint)
    backend.text_generation("Hi")
    list(backend.chat_completion(MESSAGES, stream=True))
    backend.health_check()
    backend.get_endpoint_info()
    assert len(endpoint.requests) == 4
    assert all("authorization" not in r.headers for r in endpoint.requests)


def test_the_session_token_is_sent(endpoint, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_server_SAVED_token")
    backend = remote(endpoint, token=SECRET)
    backend.chat_completion(MESSAGES)
    backend.health_check()
    assert [r.headers["authorization"] for r in endpoint.requests] == [f"Bearer {SECRET}"] * 2


# -- failures before the first chunk -------------------------------------------------------


def both_calls(backend: RemoteBackend, stream: bool):
    """Text generation then chat, each drained when streamed; returns their errors."""
    errors = []
    for call in (
        lambda: backend.text_generation("Hi", stream=stream),
        lambda: backend.chat_completion(MESSAGES, stream=stream),
    ):
        with pytest.raises(BackendError) as info:
            result = call()
            if stream:
                list(result)
        errors.append(info.value)
    return errors


@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
@pytest.mark.parametrize(
    ("behaviour", "expected", "reason", "advice"),
    [
        ("401", AuthenticationError, "Invalid credentials", "token"),
        ("403", AuthenticationError, "sufficient permissions", "token"),
        ("404", ModelNotFoundError, "does not exist", "model id"),
        ("429", OverloadedError, "overloaded", "retry"),
        ("ratelimit", OverloadedError, "rate limit", "retry"),
        ("422", InputValidationError, "`max_new_tokens` must be <= 4096", "parameters"),
    ],
)
def test_http_errors(endpoint, stream, behaviour, expected, reason, advice):
    for error in both_calls(remote(endpoint, behaviour), stream):
        assert type(error) is expected
        assert reason in error.message  # the server's own words
        assert advice in error.user_message().lower()


@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
def test_model_loading_is_retried_until_ready(endpoint, stream):
    notes = []
    backend = remote(endpoint, "loading-2", on_progress=notes.append)
    result = backend.text_generation("Hi", stream=stream)
    assert (list(result) if stream else result) == (REPLY if stream else FULL_TEXT)
    assert len(endpoint.posts()) == 3
    assert len(notes) == 2 and all("loading" in n for n in notes)
    assert backend.status().state == "ready"


def test_model_still_loading_after_load_wait(endpoint):
    backend = remote(endpoint, "loading-forever", load_wait=0.3)
    with pytest.raises(UnavailableError) as info:
        backend.chat_completion(MESSAGES)
    assert "loading" in info.value.message and "Retry" in info.value.hint
    assert len(endpoint.posts()) >= 2  # it did retry


@pytest.mark.parametrize("stream", [False, True], ids=["once", "stream"])
def test_hang_times_out_with_the_timeout_named(endpoint, stream):
    started = time.monotonic()
    with pytest.raises(UnavailableError) as info:
        result = remote(endpoint, "hang").chat_completion(MESSAGES, stream=stream)
        list(result) if stream else None
    assert time.monotonic() - started < fake_endpoint.HANG_S - 1
    assert "did not answer within 1 s" in info.value.message
    assert "timeout" in info.value.hint


def test_health_check_of_a_hanging_server_is_false_after_the_timeout(endpoint):
    started = time.monotonic()
    assert remote(endpoint, "hang").health_check() is False
    assert time.monotonic() - started < fake_endpoint.HANG_S - 1


def test_connection_refused_names_the_url(endpoint):
    backend = RemoteBackend(base_url="http://127.0.0.1:9", timeout=TIMEOUT_S)
    for error in both_calls(backend, stream=True):
        assert type(error) is UnavailableError
        assert "http://127.0.0.1:9" in error.message and "running" in error.hint
    assert backend.health_check() is False


# -- failures mid-stream: the chunks before the error are kept -----------------------------


@pytest.mark.parametrize("task", ["text", "chat"])
@pytest.mark.parametrize(
    ("behaviour", "expected", "words", "chunks"),
    [
        ("drop-2", IncompleteGenerationError, "broke off after 2 chunks", 2),
        ("stall-3", IncompleteGenerationError, "no data for 1 s", 3),
        ("truncated-4", IncompleteGenerationError, "ended before the generation finished", 4),
        ("error-2", GenerationError, "CUDA out of memory", 2),
        ("malformed", GenerationError, "malformed reply: '{not", 1),
    ],
)
def test_mid_stream_failures_keep_the_partial_chunks(
    endpoint, task, behaviour, expected, words, chunks
):
    backend = remote(endpoint, behaviour)
    if task == "text":
        stream = backend.text_generation("Hi", stream=True)
    else:
        stream = backend.chat_completion(MESSAGES, stream=True)
    received = []
    with pytest.raises(BackendError) as info:
        drain(stream, received)
    assert type(info.value) is expected
    assert words in info.value.message
    assert info.value.hint
    text = "".join(received) if task == "text" else chat_text(received)
    assert text == "".join(REPLY[:chunks])


def test_closing_the_stream_closes_the_http_connection(endpoint):
    stream = remote(endpoint, "endless").chat_completion(MESSAGES, stream=True)
    assert chat_text([next(stream), next(stream)]) == "tick tick "
    assert not endpoint.disconnected.is_set()
    stream.close()
    # The server notices on its next write (every 20 ms).
    assert endpoint.disconnected.wait(timeout=3), "the HTTP stream stayed open after close()"


def test_an_unread_stream_opens_no_connection(endpoint):
    stream = remote(endpoint).text_generation("Hi", stream=True)
    del stream
    assert endpoint.posts() == []


def test_the_tabs_say_the_model_is_loading_while_the_backend_retries(endpoint):
    # ~1.5 s of "model is loading" answers (estimated_time 0.1 s each): the chat tab's
    # stats line says so while it waits, then the reply arrives in full.
    from components import chat
    from components.forms import ChatForm

    updates = list(chat.run(remote(endpoint, "loading-15"), MESSAGES, ChatForm(max_tokens=8)))
    waiting = [line for _, line in updates if line.startswith("⏳")]
    assert waiting and "loading" in waiting[0]
    assert updates[-1][0] == FULL_TEXT and "finish:" in updates[-1][1]
