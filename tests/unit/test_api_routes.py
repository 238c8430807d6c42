"""The local API's routes (``api/``) in-process, over a fake ``Backend``.

No model and no server: ``TestClient`` drives the FastAPI app as app.py builds it, and
``FakeBackend`` answers with huggingface_hub's output types, or raises the
``BackendError`` a test sets. The real app and real clients are tests/server's.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionOutputComplete,
    ChatCompletionOutputMessage,
    ChatCompletionOutputUsage,
    ChatCompletionStreamOutput,
    ChatCompletionStreamOutputChoice,
    ChatCompletionStreamOutputDelta,
    TextGenerationOutput,
    TextGenerationOutputDetails,
    TextGenerationOutputToken,
    TextGenerationStreamOutput,
    TextGenerationStreamOutputStreamDetails,
    TextGenerationStreamOutputToken,
)

from api import mount_api
from api.errors import UNEXPECTED
from backends import Backend, BackendStatus
from backends.errors import (
    BackendError,
    GenerationError,
    OverloadedError,
    UnavailableError,
)

TOKENS = ["Hello", " world"]
TEXT = "".join(TOKENS)
MODEL_ID = "fake/model"
KEY = "sesame-0123"
MESSAGES = [{"role": "user", "content": "Hi"}]


class FakeBackend:
    """A ``Backend`` that answers TOKENS. ``error`` is raised where the engine raises
    before generating (on the call, or on a stream's first ``next()``); ``fail_after_one``
    after a stream's first item, as a failure mid-generation."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self.error: BackendError | Exception | None = None
        self.fail_after_one: BackendError | None = None
        self.ready = True

    def status(self) -> BackendStatus:
        if self.ready:
            return BackendStatus("ready", f"{MODEL_ID} is ready")
        return BackendStatus("loading", "Loading fake/model: 40%")

    def health_check(self) -> bool:
        return self.ready

    def get_endpoint_info(self) -> dict[str, Any]:
        return {"model_id": MODEL_ID, "max_total_tokens": 64}

    def tokenize(self, text: str) -> list[dict[str, Any]]:
        return [{"id": 1, "text": text, "start": 0, "stop": len(text)}]

    def _stream(self, items: list[Any]):
        if self.error is not None:
            raise self.error
        for n, item in enumerate(items):
            if n == 1 and self.fail_after_one is not None:
                raise self.fail_after_one
            yield item

    def text_generation(self, prompt: str, *, stream: bool = False, **params: Any):
        self.calls.append(("text_generation", prompt, {**params, "stream": stream}))
        if stream:
            return self._stream(
                [
                    TextGenerationStreamOutput(
                        index=i + 1,
                        token=TextGenerationStreamOutputToken(
                            id=i, logprob=-0.5, special=False, text=t
                        ),
                        generated_text=TEXT if i == len(TOKENS) - 1 else None,
                        details=TextGenerationStreamOutputStreamDetails(
                            finish_reason="length", generated_tokens=2, input_length=1
                        )
                        if i == len(TOKENS) - 1
                        else None,
                    )
                    for i, t in enumerate(TOKENS)
                ]
            )
        if self.error is not None:
            raise self.error
        tokens = [
            TextGenerationOutputToken(id=i, logprob=-0.5, special=False, text=t)
            for i, t in enumerate(TOKENS)
        ]
        details = TextGenerationOutputDetails(
            finish_reason="length", generated_tokens=2, prefill=[], tokens=tokens
        )
        return TextGenerationOutput(generated_text=TEXT, details=details)

    def chat_completion(self, messages: list[dict[str, str]], *, stream=False, **params: Any):
        self.calls.append(("chat_completion", messages, {**params, "stream": stream}))
        if stream:
            return self._stream(
                [
                    ChatCompletionStreamOutput(
                        choices=[
                            ChatCompletionStreamOutputChoice(
                                delta=ChatCompletionStreamOutputDelta(role="assistant", content=t),
                                index=0,
                                finish_reason="length" if i == len(TOKENS) - 1 else None,
                            )
                        ],
                        created=0,
                        id="chatcmpl-1",
                        model=MODEL_ID,
                        system_fingerprint="fake",
                    )
                    for i, t in enumerate(TOKENS)
                ]
            )
        if self.error is not None:
            raise self.error
        message = ChatCompletionOutputMessage(role="assistant", content=TEXT)
        return ChatCompletionOutput(
            choices=[
                ChatCompletionOutputComplete(finish_reason="length", index=0, message=message)
            ],
            created=0,
            id="chatcmpl-1",
            model=MODEL_ID,
            system_fingerprint="fake",
            usage=ChatCompletionOutputUsage(completion_tokens=2, prompt_tokens=3, total_tokens=5),
        )

    def run_task(self, name, inputs, parameters=None, *, model=None):
        raise NotImplementedError


def make_client(
    backend: FakeBackend, api_key: str | None = None, metrics=None, **kwargs
) -> TestClient:
    """The app as app.py builds it (docs under /api), with only the API mounted."""
    app = FastAPI(docs_url="/api/docs", openapi_url="/api/openapi.json")
    mount_api(app, backend, api_key=api_key, metrics=metrics)
    return TestClient(app, base_url="http://127.0.0.1", **kwargs)


@pytest.fixture
def backend() -> FakeBackend:
    fake = FakeBackend()
    assert isinstance(fake, Backend)
    return fake


@pytest.fixture
def client(backend: FakeBackend):
    with make_client(backend) as client:
        yield client


def sse(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE response (every other non-empty line a comment)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.splitlines() if line and not line.startswith(":")]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line.removeprefix("data: ") for line in lines]


def tgi_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type, body
    return body["error"]


# -- happy paths -------------------------------------------------------------------------


def test_generate_answers_the_text_and_passes_only_the_given_parameters(client, backend):
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 2, "stop": None, "seed": 7}}
    response = client.post("/api/generate", json=body)

    assert response.status_code == 200, response.text
    assert response.json() == {"generated_text": TEXT}  # no details unless asked for
    assert backend.calls == [
        (
            "text_generation",
            "Hi",
            {"max_new_tokens": 2, "seed": 7, "details": True, "stream": False},
        )
    ]


def test_generate_with_details_lists_the_tokens(client):
    body = {"inputs": "Hi", "parameters": {"details": True}}
    details = client.post("/api/generate", json=body).json()["details"]

    assert details["finish_reason"] == "length"
    assert [token["text"] for token in details["tokens"]] == TOKENS
    assert "seed" not in details  # None fields are left out, as TGI does


@pytest.mark.parametrize("path", ["/api", "/api/"])
def test_compat_route_answers_a_list_or_streams(client, path):
    body = {"inputs": "Hi"}
    assert client.post(path, json=body).json() == [{"generated_text": TEXT}]

    events = [json.loads(p) for p in sse(client.post(path, json={**body, "stream": True}))]
    assert [event["token"]["text"] for event in events] == TOKENS


def test_generate_stream_sends_one_event_per_token_with_null_text_until_the_last(client):
    events = [
        json.loads(p) for p in sse(client.post("/api/generate_stream", json={"inputs": "Hi"}))
    ]

    assert [event["index"] for event in events] == [1, 2]
    first, last = events
    assert first["generated_text"] is None and first["details"] is None
    assert last["generated_text"] == TEXT
    assert last["details"] == {"finish_reason": "length", "generated_tokens": 2, "input_length": 1}


@pytest.mark.parametrize("path", ["/api/v1/chat/completions", "/api/chat/completions"])
def test_chat_completion_answers_json(client, backend, path):
    body = {"messages": MESSAGES, "max_tokens": 4, "stop": "\n", "model": "anything", "n": 1}
    response = client.post(path, json=body)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": TEXT}
    assert answer["usage"]["total_tokens"] == 5
    # One string `stop` becomes a list; the off-values (`model`, `n`) are not passed on.
    assert backend.calls == [
        ("chat_completion", MESSAGES, {"max_tokens": 4, "stop": ["\n"], "stream": False})
    ]


def test_chat_completion_text_parts_are_joined(client, backend):
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]
    body = {"messages": [{"role": "user", "content": parts, "name": "ann"}]}

    assert client.post("/api/v1/chat/completions", json=body).status_code == 200
    assert backend.calls[0][1] == [{"role": "user", "content": "Hello there"}]


def test_chat_completion_stream_sends_chunks_then_done(client):
    body = {"messages": MESSAGES, "stream": True}
    *chunks, done = sse(client.post("/api/v1/chat/completions", json=body))

    assert done == "[DONE]"
    parsed = [json.loads(chunk) for chunk in chunks]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in parsed)
    assert [chunk["choices"][0]["delta"]["content"] for chunk in parsed] == TOKENS


def test_models_info_and_tokenize(client):
    models = client.get("/api/v1/models").json()
    assert models["object"] == "list"
    (model,) = models["data"]
    assert model["id"] == MODEL_ID and model["object"] == "model" and model["owned_by"] == "local"
    assert isinstance(model["created"], int)

    assert client.get("/api/info").json() == {
        "model_id": MODEL_ID,
        "max_total_tokens": 64,
        "public": False,
    }
    tokens = client.post("/api/tokenize", json={"inputs": "Hey", "parameters": {"top_p": 2}})
    assert tokens.json() == [{"id": 1, "text": "Hey", "start": 0, "stop": 3}]  # params unused


def test_health_is_200_when_ready_and_the_docs_are_served(client):
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/docs").status_code == 200
    paths = set(client.get("/api/openapi.json").json()["paths"])
    assert paths == {
        "/api",
        "/api/generate",
        "/api/generate_stream",
        "/api/v1/chat/completions",
        "/api/chat/completions",
        "/api/v1/models",
        "/api/info",
        "/api/health",
        "/api/tokenize",
    }


def test_openapi_documents_each_body_and_tgi_error_responses(client):
    # Routes read their bodies themselves (parse_body, for TGI's error shape): without
    # openapi_extra the schema showed no body at all, and clients/fuzzers sent none.
    paths = client.get("/api/openapi.json").json()["paths"]
    bodies = {
        path: operation["requestBody"]["content"]["application/json"]["schema"]
        for path, operations in paths.items()
        for operation in operations.values()
        if "requestBody" in operation
    }
    assert set(bodies) == {
        "/api",
        "/api/generate",
        "/api/generate_stream",
        "/api/tokenize",
        "/api/v1/chat/completions",
        "/api/chat/completions",
    }
    assert bodies["/api/generate"]["required"] == ["inputs"]
    parameters = bodies["/api/generate"]["properties"]["parameters"]["anyOf"][0]
    assert parameters["properties"]["top_n_tokens"]["anyOf"][0]["maximum"] == 5
    assert "$ref" not in json.dumps(bodies)  # inlined: no "#/$defs/…" pointing nowhere
    assert bodies["/api/generate"]["properties"]["inputs"] == {
        "minLength": 1,
        "title": "Inputs",
        "type": "string",
    }
    messages = bodies["/api/v1/chat/completions"]["properties"]["messages"]
    assert bodies["/api/v1/chat/completions"]["required"] == ["messages"]
    assert messages["minItems"] == 1 and messages["items"]["required"] == ["role", "content"]
    assert messages["items"]["properties"]["content"]["anyOf"][0] == {"type": "string"}
    generate = paths["/api/generate"]["post"]["responses"]
    error = generate["422"]["content"]["application/json"]["schema"]
    assert error["required"] == ["error", "error_type"]
    assert set(generate) >= {"200", "401", "422", "424", "429", "503"}
    stream = paths["/api/generate_stream"]["post"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]


# -- refused requests: 422 validation, before the backend is called ----------------------


GENERATE, CHAT = "/api/generate", "/api/v1/chat/completions"
IMAGE = [{"role": "user", "content": [{"type": "image_url"}]}]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (GENERATE, {"inputs": "Hi", "parameters": {"top_p": 2}}, "`top_p` must be < 1.0 (got 2)"),
        (GENERATE, {"parameters": {"top_p": 2}}, "`inputs` must be a string"),
        (GENERATE, {"inputs": "Hi", "parameters": 3}, "`parameters` must be an object"),
        (GENERATE, ["Hi"], "The request body must be a JSON object."),
        (GENERATE, {"inputs": "Hi", "parameters": {"topp": 1}}, "`topp` is not a known parameter"),
        (
            GENERATE,
            {"inputs": "Hi", "parameters": {"best_of": 2}},
            "you must use sampling when `best_of` is > 1",
        ),
        (
            "/api/generate_stream",
            {"inputs": "Hi", "parameters": {"max_new_tokens": 0}},
            "`max_new_tokens` must be >= 1 (got 0)",
        ),
        (CHAT, {"messages": "Hi"}, "`messages` must be a list"),
        (CHAT, {"messages": MESSAGES, "top_k": 5, "best": 1}, "Unknown parameter(s): best, top_k"),
        (CHAT, {"messages": MESSAGES, "temperature": 3}, "`temperature` must be <= 2.0 (got 3)"),
        (CHAT, {"messages": ["Hi"]}, "each message must be an object"),
        (
            CHAT,
            {"messages": [{"role": "user"}]},
            "message `content` must be a string or a list of parts",
        ),
        (
            CHAT,
            {"messages": IMAGE},
            "Only text message parts are supported by this model (got 'image_url')",
        ),
    ],
)
def test_invalid_request_is_422_naming_the_problem(client, backend, path, body, message):
    response = client.post(path, json=body)

    assert tgi_error(response, 422, "validation") == message
    assert backend.calls == []


def test_a_body_that_is_not_json_is_422(client, backend):
    response = client.post("/api/generate", content=b"inputs=Hi")

    assert tgi_error(response, 422, "validation") == "The request body must be JSON."
    assert backend.calls == []


@pytest.mark.parametrize("opener", [b"[", b'{"a":'], ids=["arrays", "objects"])
def test_json_nested_too_deeply_is_422_not_a_recursion_error(client, backend, opener):
    # json's decoder recurses once per level: 100 000 levels exceed Python's stack limit.
    closer = b"]" if opener == b"[" else b"}"
    body = b'{"inputs": "Hi", "parameters": ' + opener * 100_000 + b"1" + closer * 100_000 + b"}"
    response = client.post("/api/generate", content=body)

    message = tgi_error(response, 422, "validation")
    assert message == "The request body's JSON is nested too deeply."
    assert backend.calls == []


def _unserved(key: str, got: str) -> str:
    return f"`{key}` is not supported by this server yet (got {got})"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            GENERATE,
            {"inputs": "Hi", "parameters": {"adapter_id": "lora-1"}},
            _unserved("adapter_id", "'lora-1'"),
        ),
        (
            "/api/tokenize",
            {"inputs": "Hi", "parameters": {"adapter_id": "lora-1"}},
            _unserved("adapter_id", "'lora-1'"),
        ),
        (CHAT, {"messages": MESSAGES, "n": 2}, _unserved("n", "2")),
        (CHAT, {"messages": MESSAGES, "logit_bias": {"1": 5}}, _unserved("logit_bias", "{'1': 5}")),
        (CHAT, {"messages": MESSAGES, "tool_prompt": "Use"}, _unserved("tool_prompt", "'Use'")),
    ],
)
def test_unsupported_parameter_is_refused_unless_off(client, backend, path, body, message):
    assert tgi_error(client.post(path, json=body), 422, "validation") == message
    assert backend.calls == []

    off = {"adapter_id": None, "n": 1, "logit_bias": None, "tool_prompt": None}
    if "parameters" in body:
        body = {"inputs": "Hi", "parameters": {"adapter_id": off["adapter_id"]}}
    else:
        body = {**body, **{k: v for k, v in off.items() if k in body}}
    assert client.post(path, json=body).status_code == 200


def test_the_first_problem_is_named_when_there_are_several(client):
    # The body's shape first, then what is not served, then the bounds.
    shape = {"messages": "Hi", "n": 2, "temperature": 3}
    assert tgi_error(client.post("/api/v1/chat/completions", json=shape), 422, "validation") == (
        "`messages` must be a list"
    )
    unserved = {"messages": [{"role": "user", "content": 5}], "n": 2, "temperature": 3}
    assert "`n`" in tgi_error(
        client.post("/api/v1/chat/completions", json=unserved), 422, "validation"
    )
    bounds = {"inputs": "Hi", "parameters": {"top_p": 2, "top_k": 0}}
    assert tgi_error(client.post("/api/generate", json=bounds), 422, "validation") == (
        "`top_k` must be > 0 (got 0); `top_p` must be < 1.0 (got 2)"
    )


# -- errors from the backend -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"inputs": "Hi"}),
        ("/api/generate_stream", {"inputs": "Hi"}),
        ("/api", {"inputs": "Hi", "stream": True}),
        ("/api/v1/chat/completions", {"messages": MESSAGES}),
        ("/api/v1/chat/completions", {"messages": MESSAGES, "stream": True}),
    ],
)
def test_an_overloaded_backend_is_429_even_for_a_stream(client, backend, path, body):
    backend.error = OverloadedError("The local model is busy (1 requests queued).", hint="Retry.")

    error = tgi_error(client.post(path, json=body), 429, "overloaded")
    assert error == "The local model is busy (1 requests queued). Retry."


def test_an_unavailable_model_is_503_and_health_says_why(client, backend):
    backend.ready = False
    backend.error = UnavailableError("The model is still loading: 40%")

    assert "still loading" in tgi_error(
        client.post("/api/generate", json={"inputs": "Hi"}), 503, "unavailable"
    )
    health = client.get("/api/health")
    assert tgi_error(health, 503, "unavailable") == "Loading fake/model: 40%"


@pytest.mark.parametrize("stream", [False, True])
def test_an_error_after_the_stream_started_is_its_last_event(client, backend, stream):
    backend.fail_after_one = GenerationError("CUDA out of memory")
    failed = {"error": "CUDA out of memory", "error_type": "generation"}

    events = sse(client.post("/api/generate_stream", json={"inputs": "Hi"}))
    assert [json.loads(e) for e in events][1:] == [failed]
    assert json.loads(events[0])["token"]["text"] == TOKENS[0]

    chat = sse(client.post("/api/v1/chat/completions", json={"messages": MESSAGES, "stream": True}))
    assert len(chat) == 2 and json.loads(chat[-1]) == failed  # and no [DONE]


def test_an_unexpected_exception_is_500_unknown_without_its_text(backend):
    backend.error = RuntimeError("the fake broke at /srv/secret.py")
    with make_client(backend, raise_server_exceptions=False) as client:
        response = client.post("/api/generate", json={"inputs": "Hi"})

    assert tgi_error(response, 500, "unknown") == UNEXPECTED
    assert "fake broke" not in response.text and "Traceback" not in response.text


# -- the API key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {KEY}", f"Bearer {KEY}x", "Bearer clé".encode()],
    ids=["none", "wrong", "wrong-scheme", "longer", "non-ascii"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/generate"), ("POST", "/api/v1/chat/completions"), ("GET", "/api/info")],
)
def test_without_the_right_key_every_route_is_401(backend, authorization, method, path):
    headers = {"Authorization": authorization} if authorization else {}
    body = {"inputs": "Hi", "messages": MESSAGES} if method == "POST" else None
    with make_client(backend, api_key=KEY) as client:
        response = client.request(method, path, headers=headers, json=body)

    assert tgi_error(response, 401, "authentication") == (
        "Missing or wrong API key. Send `Authorization: Bearer <api key>`."
    )
    assert backend.calls == []


def test_with_the_key_routes_answer_and_health_needs_none(backend):
    with make_client(backend, api_key=KEY) as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/info").status_code == 401
        for authorization in (f"Bearer {KEY}", f"bearer  {KEY} "):
            response = client.post(
                "/api/generate", json={"inputs": "Hi"}, headers={"Authorization": authorization}
            )
            assert response.json() == {"generated_text": TEXT}


def test_the_key_is_checked_before_the_body(backend):
    with make_client(backend, api_key=KEY) as client:
        response = client.post("/api/generate", content=b"not JSON")

    tgi_error(response, 401, "authentication")


# -- /metrics ----------------------------------------------------------------------------


def test_metrics_are_the_engine_counts_in_prometheus_text_behind_the_key(backend):
    from prometheus_client.parser import text_string_to_metric_families

    counts = {
        "admitted": 5,
        "cancelled": 1,
        "cancelled_tokens": 7,
        "tokens": 40,
        "errors": 2,
        "finished": {"length": 3, "eos_token": 1},
        "running": 2,
        "waiting": 1,
        "max_queue": 64,
        "failed": 0,
    }
    with make_client(backend, KEY, metrics=lambda: counts) as client:
        assert client.get("/api/metrics").status_code == 401
        response = client.get("/api/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    threads = {k[1]: v for k, v in samples.items() if k[0] == "playground_threads"}
    assert threads[(("kind", "MainThread"),)] == 1  # and the others, by kind
    assert all(count >= 1 for count in threads.values())
    assert (("kind", "asyncio-portal"),) in threads  # the test client's, address dropped
    samples = {k: v for k, v in samples.items() if k[0] != "playground_threads"}
    assert samples == {
        ("playground_requests_finished_total", (("finish", "eos_token"),)): 1,
        ("playground_requests_finished_total", (("finish", "length"),)): 3,
        ("playground_requests_cancelled_total", ()): 1,
        ("playground_cancelled_tokens_total", ()): 7,
        ("playground_generated_tokens_total", ()): 40,
        ("playground_batch_admissions_total", ()): 5,
        ("playground_requests_failed_total", ()): 2,
        ("playground_running", ()): 2,
        ("playground_waiting", ()): 1,
        ("playground_max_queue", ()): 64,
        ("playground_failed", ()): 0,
    }


def test_metrics_while_loading_are_empty_and_absent_without_a_reader(backend):
    with make_client(backend, metrics=dict) as client:
        text = client.get("/api/metrics").text
        assert [line for line in text.splitlines() if "playground_threads" not in line] == []
    with make_client(backend) as client:
        assert client.get("/api/metrics").status_code == 404
