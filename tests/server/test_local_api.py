"""The local HTTP API (``/api``: TGI + OpenAI compatible) driven by real clients.

``InferenceClient``, ``text_generation.Client``/``AsyncClient``, the ``openai`` SDK and
raw SSE over httpx (what ``curl -N`` shows) against the real app; the reference documents'
own examples with only the URL changed; TGI's error JSON; backpressure and the API key on
a second app (``guarded_app``: one request at a time, behind a key); cancellation when
the client goes away.

Greedy outputs are compared across clients and between stream and non-stream: the engine
is deterministic for greedy decoding, so any difference is a bug in a route or an encoder.
Token budgets stay small (2-20 tokens): the model runs on CPU at ~15 tokens/s here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from gradio_client import Client as GradioClient
from gradio_client.exceptions import AppError
from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionStreamOutput,
    InferenceClient,
    TextGenerationOutput,
    TextGenerationStreamOutput,
)
from huggingface_hub.errors import OverloadedError as HfOverloadedError
from huggingface_hub.errors import ValidationError as HfValidationError
from text_generation import AsyncClient, Client
from text_generation.errors import ValidationError as TgValidationError
from text_generation.types import FinishReason

from tests.conftest import GUARDED_API_KEY

pytestmark = [
    pytest.mark.server,
    # text-generation 0.7.0 calls pydantic's deprecated .dict() on every request.
    pytest.mark.filterwarnings("ignore:The `dict` method is deprecated:DeprecationWarning"),
]

HTTP_TIMEOUT_S = 60.0  # per request; the longest here is 20 tokens (~1-2 s on this CPU)
PROMPT = "The capital of France is"
N = 8  # greedy continuation of PROMPT: " Paris.\n\nThe answer is:", no end-of-text within it
MESSAGES = [{"role": "user", "content": "Say hi"}]
# A prompt greedy decoding keeps continuing (counting), so a long budget really runs long.
COUNTING = "1, 2, 3, 4, 5,"
AUTH = {"Authorization": f"Bearer {GUARDED_API_KEY}"}
CANCELLED = "playground_requests_cancelled_total"  # GET /api/metrics
CANCELLED_TOKENS = "playground_cancelled_tokens_total"


def api_base(url: str) -> str:
    return url.rstrip("/") + "/api"


@pytest.fixture(scope="module")
def api(app_url: str) -> str:
    """``http://127.0.0.1:PORT/api``: the base URL every client is given."""
    return api_base(app_url)


@pytest.fixture(scope="module")
def http(api: str):
    with httpx.Client(base_url=api, timeout=HTTP_TIMEOUT_S) as client:
        yield client


@pytest.fixture(scope="module")
def hf(api: str) -> InferenceClient:
    return InferenceClient(base_url=api, timeout=HTTP_TIMEOUT_S)


@pytest.fixture(scope="module")
def greedy_text(hf: InferenceClient) -> str:
    """The reference: InferenceClient's plain greedy ``text_generation`` of PROMPT."""
    return hf.text_generation(PROMPT, max_new_tokens=N)


@pytest.fixture(scope="module")
def greedy_chat(hf: InferenceClient) -> ChatCompletionOutput:
    """The reference chat answer: InferenceClient, non-stream, temperature 0."""
    return hf.chat_completion(MESSAGES, max_tokens=N, temperature=0)


@pytest.fixture(scope="module")
def model_id(http: httpx.Client) -> str:
    response = http.get("/info")
    assert response.status_code == 200, response.text
    return response.json()["model_id"]


def sse_payloads(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE body, as ``curl -N`` shows them. Every non-empty
    line must be a data line; SSE comments (``: ping``, which clients skip) are allowed."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    payloads = []
    for line in response.iter_lines():
        if not line or line.startswith(":"):
            continue
        assert line.startswith("data:"), f"not an SSE data line: {line!r}"
        payloads.append(line.removeprefix("data:").strip())
    return payloads


def read_events(lines: Iterator[str], count: int) -> list[dict]:
    """The next ``count`` data events from ``lines`` (a stream's ``iter_lines()``), leaving
    the rest unread. Keep ``lines`` referenced while the stream should stay open: a line
    iterator that is dropped closes the connection (httpcore closes on GeneratorExit)."""
    events = []
    for line in lines:
        if line.startswith("data:"):
            events.append(json.loads(line.removeprefix("data:")))
            if len(events) == count:
                return events
    pytest.fail(f"the stream ended after {len(events)} events: {events!r}")


def wait_for_cancel(server, before: dict[str, float], api_key: str | None = None) -> float:
    """Wait until the app's engine counts one more cancelled request than ``before`` (its
    ``metrics()``); the tokens that request had generated."""
    start = before.get(CANCELLED, 0.0)
    after = server.wait_for_metric(CANCELLED, start, api_key=api_key)
    assert after[CANCELLED] == start + 1
    return after[CANCELLED_TOKENS] - before.get(CANCELLED_TOKENS, 0.0)


def assert_tgi_error(response: httpx.Response, status: int, error_type: str) -> str:
    """TGI's error shape: the status code and ``{"error": str, "error_type": str}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}, body
    assert body["error_type"] == error_type, body
    assert isinstance(body["error"], str) and body["error"], body
    return body["error"]


# -- InferenceClient ---------------------------------------------------------------------


def test_inference_client_text_generation_returns_the_generated_text(
    http: httpx.Client, greedy_text: str
) -> None:
    assert isinstance(greedy_text, str) and greedy_text.strip()
    assert not greedy_text.startswith(PROMPT)  # return_full_text defaults to False
    # The same request on TGI's own route; no details unless asked for, as in TGI.
    raw = http.post("/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": N}})
    assert raw.status_code == 200, raw.text
    assert raw.json() == {"generated_text": greedy_text}


def test_inference_client_stream_concatenates_to_the_greedy_text(
    hf: InferenceClient, greedy_text: str
) -> None:
    tokens = list(hf.text_generation(PROMPT, max_new_tokens=N, stream=True))

    assert all(isinstance(token, str) for token in tokens), tokens
    assert len(tokens) == N, tokens  # one item per token, and the budget was spent
    assert "".join(tokens) == greedy_text


def test_inference_client_details_list_every_generated_token(
    hf: InferenceClient, greedy_text: str
) -> None:
    output = hf.text_generation(PROMPT, max_new_tokens=N, details=True)

    assert isinstance(output, TextGenerationOutput)
    assert output.generated_text == greedy_text
    details = output.details
    assert details.finish_reason == "length"
    assert details.generated_tokens == len(details.tokens) == N
    assert "".join(token.text for token in details.tokens) == greedy_text
    assert all(isinstance(token.id, int) and token.logprob <= 0 for token in details.tokens)
    assert not any(token.special for token in details.tokens)


def test_inference_client_details_stream_ends_with_text_and_details(
    hf: InferenceClient, greedy_text: str
) -> None:
    chunks = list(hf.text_generation(PROMPT, max_new_tokens=N, details=True, stream=True))

    assert all(isinstance(chunk, TextGenerationStreamOutput) for chunk in chunks)
    assert [chunk.index for chunk in chunks] == list(range(1, N + 1))
    *running, last = chunks
    assert all(c.generated_text is None and c.details is None for c in running), running
    assert last.generated_text == greedy_text
    assert last.details.finish_reason == "length"
    assert last.details.generated_tokens == N
    assert "".join(chunk.token.text for chunk in chunks) == greedy_text


def test_inference_client_chat_completion_reports_consistent_usage(
    greedy_chat: ChatCompletionOutput,
) -> None:
    assert isinstance(greedy_chat, ChatCompletionOutput)
    (choice,) = greedy_chat.choices
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason == "length"  # N tokens without the end of the turn
    usage = greedy_chat.usage
    assert usage.completion_tokens == N
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_inference_client_chat_stream_concatenates_to_the_greedy_reply(
    hf: InferenceClient, greedy_chat: ChatCompletionOutput
) -> None:
    chunks = list(hf.chat_completion(MESSAGES, max_tokens=N, temperature=0, stream=True))

    assert len(chunks) > 1 and all(isinstance(c, ChatCompletionStreamOutput) for c in chunks)
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert content == greedy_chat.choices[0].message.content
    *running, last = chunks
    assert all(chunk.choices[0].finish_reason is None for chunk in running)
    assert last.choices[0].finish_reason == greedy_chat.choices[0].finish_reason
    assert last.usage.total_tokens == greedy_chat.usage.total_tokens
    assert last.usage.completion_tokens == greedy_chat.usage.completion_tokens
    assert len({chunk.id for chunk in chunks}) == 1  # one completion, one id


def test_inference_client_endpoint_info_is_the_info_route(api: str, http: httpx.Client) -> None:
    # With a URL, InferenceClient only offers get_endpoint_info/health_check for
    # provider="hf-inference" (it raises ValueError for the default provider).
    info = InferenceClient(base_url=api, provider="hf-inference").get_endpoint_info()
    raw = http.get("/info")

    assert raw.status_code == 200, raw.text
    assert info == raw.json()
    assert info["model_id"]
    assert info["max_total_tokens"] == 8192  # the bundled model's context
    assert info["max_input_tokens"] < info["max_total_tokens"]


def test_health_is_200_when_the_model_is_loaded(api: str, http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200
    assert InferenceClient(base_url=api, provider="hf-inference").health_check() is True


# -- text_generation.Client / AsyncClient ------------------------------------------------


def test_text_generation_client_generate_gives_the_greedy_text(api: str, greedy_text: str) -> None:
    response = Client(api, timeout=HTTP_TIMEOUT_S).generate(PROMPT, max_new_tokens=N)

    assert response.generated_text == greedy_text
    assert response.details.finish_reason == FinishReason.Length
    assert response.details.generated_tokens == len(response.details.tokens) == N


def test_text_generation_client_stream_concatenates_to_the_greedy_text(
    api: str, greedy_text: str
) -> None:
    responses = list(Client(api, timeout=HTTP_TIMEOUT_S).generate_stream(PROMPT, max_new_tokens=N))

    assert "".join(response.token.text for response in responses) == greedy_text
    *running, last = responses
    assert all(r.details is None and r.generated_text is None for r in running)
    assert last.details.finish_reason == FinishReason.Length
    assert last.details.generated_tokens == N
    assert last.generated_text == greedy_text


def test_text_generation_async_client_generates_and_streams_the_greedy_text(
    api: str, greedy_text: str
) -> None:
    async def both():
        client = AsyncClient(api, timeout=int(HTTP_TIMEOUT_S))
        response = await client.generate(PROMPT, max_new_tokens=N)
        stream = [r async for r in client.generate_stream(PROMPT, max_new_tokens=N)]
        return response, stream

    # In its own thread: the browser tier's Playwright keeps an event loop running in the
    # main thread for the whole session, and asyncio.run refuses to nest in it.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        response, stream = pool.submit(asyncio.run, both()).result()

    assert response.generated_text == greedy_text
    assert "".join(r.token.text for r in stream) == greedy_text
    assert stream[-1].details.finish_reason == FinishReason.Length
    assert stream[-1].generated_text == greedy_text


# -- openai ------------------------------------------------------------------------------


def test_openai_models_list_serves_the_info_model_id(api: str, model_id: str) -> None:
    client = openai.OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)

    assert [model.id for model in client.models.list()] == [model_id]


def test_openai_chat_completion_stream_and_non_stream_give_the_greedy_reply(
    api: str, model_id: str, greedy_chat: ChatCompletionOutput
) -> None:
    client = openai.OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    params = dict(model=model_id, messages=MESSAGES, max_tokens=N, temperature=0)

    completion = client.chat.completions.create(**params)
    chunks = list(client.chat.completions.create(**params, stream=True))

    expected = greedy_chat.choices[0].message.content
    assert completion.object == "chat.completion"
    assert completion.model == model_id
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.total_tokens == greedy_chat.usage.total_tokens
    assert len(chunks) > 1
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "length"


# -- raw HTTP: SSE as curl -N sees it, and TGI's POST / ----------------------------------


def test_generate_stream_is_sse_one_event_per_token(http: httpx.Client) -> None:
    # TGI's streaming doc (003): curl -N .../generate_stream with exactly this body.
    body = {"inputs": "What is Deep Learning?", "parameters": {"max_new_tokens": 20}}
    with http.stream("POST", "/generate_stream", json=body) as response:
        assert response.status_code == 200
        events = [json.loads(payload) for payload in sse_payloads(response)]

    assert events, "no events"
    assert [event["index"] for event in events] == list(range(1, len(events) + 1))
    assert all(set(event["token"]) >= {"id", "text", "logprob", "special"} for event in events)
    *running, last = events
    # TGI sends both keys on every event, null until the last one.
    assert all(e["generated_text"] is None and e["details"] is None for e in running), running
    text = "".join(event["token"]["text"] for event in events if not event["token"]["special"])
    assert last["generated_text"] == text
    assert last["details"]["generated_tokens"] == len(events) <= 20
    expected_reason = "length" if len(events) == 20 else "eos_token"
    assert last["details"]["finish_reason"] == expected_reason


def test_chat_completions_stream_ends_with_done(
    http: httpx.Client, greedy_chat: ChatCompletionOutput
) -> None:
    body = {"messages": MESSAGES, "max_tokens": N, "temperature": 0, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        payloads = sse_payloads(response)

    *chunks, done = payloads
    assert done == "[DONE]"
    assert "[DONE]" not in chunks
    parsed = [json.loads(chunk) for chunk in chunks]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in parsed)
    content = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in parsed)
    assert content == greedy_chat.choices[0].message.content


def test_compat_route_answers_a_list_without_stream(api: str, greedy_text: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": N}}
    response = httpx.post(api, json=body, timeout=HTTP_TIMEOUT_S)  # POST /api, no slash

    assert response.status_code == 200, response.text
    assert response.json() == [{"generated_text": greedy_text}]


def test_compat_route_streams_sse_with_stream_true(api: str, greedy_text: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": N}, "stream": True}
    with httpx.stream("POST", api, json=body, timeout=HTTP_TIMEOUT_S) as response:
        assert response.status_code == 200
        events = [json.loads(payload) for payload in sse_payloads(response)]

    assert [event["index"] for event in events] == list(range(1, N + 1))
    assert events[-1]["generated_text"] == greedy_text


# -- the reference documents' examples, with only the URL changed ------------------------


def test_streaming_doc_examples_work_against_the_local_url(api: str) -> None:
    # 003: client = InferenceClient("http://127.0.0.1:8080"), then the two loops.
    client = InferenceClient(api)
    tokens = list(client.text_generation("How do you make cheese?", max_new_tokens=12, stream=True))
    details = list(
        client.text_generation(
            "How do you make cheese?", max_new_tokens=12, details=True, stream=True
        )
    )

    # This instruct model may well end its turn at once: the contract still holds.
    assert 1 <= len(tokens) <= 12 and all(isinstance(token, str) for token in tokens)
    assert [chunk.token.text for chunk in details] == tokens  # greedy: the same tokens
    *running, last = details
    assert all(chunk.generated_text is None for chunk in running)
    assert last.details.generated_tokens == len(details)
    assert last.details.finish_reason in {"length", "eos_token"}
    assert last.generated_text == "".join(c.token.text for c in details if not c.token.special)


def test_text_generation_readme_examples_work_against_the_local_url(api: str) -> None:
    # 000: Client(endpoint_url), generate() then the generate_stream() loop, verbatim.
    client = Client(api)
    text = client.generate("Why is the sky blue?").generated_text

    stream_text = ""
    for response in client.generate_stream("Why is the sky blue?"):
        if not response.token.special:
            stream_text += response.token.text

    assert isinstance(text, str)
    assert stream_text == text
    assert 1 <= response.details.generated_tokens <= 20  # the client's default budget
    assert response.details.finish_reason in {
        FinishReason.Length,
        FinishReason.EndOfSequenceToken,
    }


# -- errors as TGI sends them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "mentioned"),
    [
        ("/generate", {"inputs": "Hi", "parameters": {"top_p": 2}}, "top_p"),
        ("/generate_stream", {"inputs": "Hi", "parameters": {"top_p": 2}}, "top_p"),
        ("/generate", {"inputs": "a " * 100_000, "parameters": {"max_new_tokens": 4}}, "8192"),
        ("/generate", {"inputs": "Hi", "parameters": {"adapter_id": "lora-1"}}, "adapter_id"),
        ("/generate", {"inputs": "Hi", "parameters": {"best_of": 2}}, "sampling"),
        (
            "/generate_stream",
            {"inputs": "Hi", "parameters": {"best_of": 2, "do_sample": True}},
            "streaming",
        ),
        ("/generate", {"inputs": "Hi", "parameters": {"top_n_tokens": 9}}, "top_n_tokens"),
        ("/generate", {"parameters": {"max_new_tokens": 4}}, "inputs"),
        ("/generate", b"this is not JSON", "JSON"),
        ("/v1/chat/completions", {"messages": MESSAGES, "n": 2}, "`n`"),
        ("/v1/chat/completions", {"messages": MESSAGES, "top_k": 5}, "top_k"),
    ],
    ids=[
        "top_p",
        "stream-top_p",
        "prompt-over-context",
        "unsupported-adapter_id",
        "best_of-needs-sampling",
        "best_of-no-stream",
        "top_n_tokens-bound",
        "no-inputs",
        "not-json",
        "chat-n",
        "chat-unknown",
    ],
)
def test_refused_request_is_422_validation_naming_the_problem(
    http: httpx.Client, route: str, body, mentioned: str
) -> None:
    if isinstance(body, bytes):
        response = http.post(route, content=body, headers={"Content-Type": "application/json"})
    else:
        response = http.post(route, json=body)

    message = assert_tgi_error(response, 422, "validation")
    assert mentioned in message


def test_inference_client_raises_validation_error(hf: InferenceClient) -> None:
    with pytest.raises(HfValidationError, match="top_p"):
        hf.text_generation("Hi", max_new_tokens=2, top_p=2)


@pytest.mark.parametrize(
    ("prompt", "params", "mentioned"),
    [
        ("Hi", {"top_n_tokens": 9}, "top_n_tokens"),
        ("a " * 100_000, {"max_new_tokens": 4}, "8192"),
    ],
    ids=["top_n_tokens-bound", "prompt-over-context"],
)
def test_text_generation_client_raises_validation_error(
    api: str, prompt: str, params: dict, mentioned: str
) -> None:
    # Both pass the client's own checks (it refuses top_p=2 before sending anything), so
    # the error is the server's 422 mapped by the client.
    with pytest.raises(TgValidationError, match=mentioned):
        Client(api, timeout=HTTP_TIMEOUT_S).generate(prompt, **params)


def test_tokenize_gives_tokens_with_character_offsets(http: httpx.Client) -> None:
    text = "Hello world, how are you?"
    response = http.post("/tokenize", json={"inputs": text})

    assert response.status_code == 200, response.text
    tokens = response.json()
    assert len(tokens) > 1
    assert all(set(token) == {"id", "text", "start", "stop"} for token in tokens), tokens
    assert "".join(token["text"] for token in tokens) == text
    assert all(text[t["start"] : t["stop"]] == t["text"] for t in tokens), tokens
    assert tokens[0]["start"] == 0 and tokens[-1]["stop"] == len(text)


# -- cancellation ------------------------------------------------------------------------


def test_closing_a_stream_cancels_its_generation(app_server, http: httpx.Client) -> None:
    """The client reads two events and hangs up; the engine must stop that request.

    The engine counts a request as cancelled only when its consumer left (one that runs out
    its budget or ends its text is counted as finished), so one more cancelled request,
    with fewer tokens than the budget, proves the disconnect reached the engine."""
    before = app_server.metrics()
    body = {"inputs": COUNTING, "parameters": {"max_new_tokens": 500}}
    with http.stream("POST", "/generate_stream", json=body) as response:
        assert response.status_code == 200
        events = read_events(response.iter_lines(), 2)
    assert [event["index"] for event in events] == [1, 2]
    assert events[-1]["details"] is None  # still running when the client left

    assert wait_for_cancel(app_server, before) < 500


# -- the guarded app: one request at a time, behind an API key ---------------------------


@pytest.fixture(scope="module")
def guarded_api(guarded_app) -> str:
    return api_base(guarded_app.url)


def test_busy_server_answers_429_overloaded_until_the_stream_is_closed(
    guarded_app, guarded_api: str
) -> None:
    before = guarded_app.metrics(GUARDED_API_KEY)
    short = {"inputs": "Hi", "parameters": {"max_new_tokens": 1}}
    long = {"inputs": COUNTING, "parameters": {"max_new_tokens": 300}}
    hf = InferenceClient(base_url=guarded_api, api_key=GUARDED_API_KEY, timeout=HTTP_TIMEOUT_S)
    with httpx.Client(base_url=guarded_api, headers=AUTH, timeout=HTTP_TIMEOUT_S) as http:
        with http.stream("POST", "/generate_stream", json=long) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # referenced until the block ends: the stream stays open
            assert read_events(lines, 1)[0]["details"] is None  # the one slot is taken

            assert_tgi_error(http.post("/generate", json=short), 429, "overloaded")
            assert_tgi_error(http.post("/generate_stream", json=short), 429, "overloaded")
            chat = {"messages": MESSAGES, "max_tokens": 1, "stream": True}
            assert_tgi_error(http.post("/v1/chat/completions", json=chat), 429, "overloaded")
            with pytest.raises(HfOverloadedError):
                hf.text_generation("Hi", max_new_tokens=1)
            # The UI shares the engine's bound: its Gradio API says "busy, retry".
            ui = GradioClient(guarded_app.url, verbose=False)
            with pytest.raises(AppError, match="busy"):
                ui.predict("Hi", max_tokens=1, api_name="/chat")

        # Closing the stream cancels its generation, which frees the slot within a token.
        deadline = time.monotonic() + 30
        while (after := http.post("/generate", json=short)).status_code != 200:
            assert_tgi_error(after, 429, "overloaded")
            assert time.monotonic() < deadline, "the slot stayed taken after the stream closed"
            time.sleep(0.05)

    # Freed by the cancellation, not by the long stream running out its budget.
    assert wait_for_cancel(guarded_app, before, GUARDED_API_KEY) < 300


@pytest.mark.parametrize(
    ("method", "route", "authorization"),
    [
        ("POST", "/generate", None),
        ("POST", "/generate", "Bearer wrong-key"),
        ("POST", "/generate", f"Basic {GUARDED_API_KEY}"),
        ("POST", "/v1/chat/completions", None),
        ("GET", "/v1/models", None),
        ("GET", "/info", None),
    ],
    ids=["no-header", "wrong-key", "wrong-scheme", "chat", "models", "info"],
)
def test_request_without_the_right_key_is_401(
    guarded_api: str, method: str, route: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 1}, "messages": MESSAGES}
    response = httpx.request(
        method,
        guarded_api + route,
        headers=headers,
        json=body if method == "POST" else None,
        timeout=HTTP_TIMEOUT_S,
    )

    assert_tgi_error(response, 401, "authentication")


@pytest.mark.parametrize("keyword", ["api_key", "token"])
def test_inference_client_with_the_key_generates(guarded_api: str, keyword: str) -> None:
    client = InferenceClient(
        base_url=guarded_api, timeout=HTTP_TIMEOUT_S, **{keyword: GUARDED_API_KEY}
    )

    assert isinstance(client.text_generation("Hi", max_new_tokens=2), str)


def test_openai_with_the_key_works_and_with_a_wrong_key_is_refused(guarded_api: str) -> None:
    base_url = f"{guarded_api}/v1"
    client = openai.OpenAI(base_url=base_url, api_key=GUARDED_API_KEY, max_retries=0)

    (model,) = client.models.list()
    completion = client.chat.completions.create(model=model.id, messages=MESSAGES, max_tokens=2)
    assert completion.choices[0].message.content is not None
    assert completion.usage.completion_tokens <= 2

    wrong = openai.OpenAI(base_url=base_url, api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_health_needs_no_key_but_info_does(guarded_api: str) -> None:
    # Load balancers and Spaces probe /health without credentials; it reveals only readiness.
    assert httpx.get(f"{guarded_api}/health", timeout=HTTP_TIMEOUT_S).status_code == 200
    assert httpx.get(f"{guarded_api}/info", timeout=HTTP_TIMEOUT_S).status_code == 401


# -- constrained output through the API --------------------------------------------------


def test_reference_case_5_grammar_example_works_with_only_the_url_changed(api: str) -> None:
    # huggingface_hub's text_generation docs, "Case 5: generate constrained output using
    # grammar", verbatim but for the client's URL (and no model id: the URL is the model).
    client = InferenceClient(base_url=api)
    response = client.text_generation(
        prompt="I saw a puppy a cat and a raccoon during my bike ride in the park",
        max_new_tokens=100,
        repetition_penalty=1.3,
        grammar={
            "type": "json",
            "value": {
                "properties": {
                    "location": {"type": "string"},
                    "activity": {"type": "string"},
                    "animals_seen": {"type": "integer", "minimum": 1, "maximum": 5},
                    "animals": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["location", "activity", "animals_seen", "animals"],
            },
        },
    )
    data = json.loads(response)
    assert set(data) >= {"location", "activity", "animals_seen", "animals"}
    assert 1 <= data["animals_seen"] <= 5


def test_openai_tool_call_through_the_api(api: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 20}},
                "required": ["city"],
            },
        },
    }
    client = openai.OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[tool], tool_choice="required", max_tokens=50,
    )  # fmt: skip
    (call,) = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_invalid_grammar_is_422_validation(http: httpx.Client) -> None:
    body = {"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "(["}}}
    message = assert_tgi_error(http.post("/generate", json=body), 422, "validation")
    assert "grammar" in message.lower()
