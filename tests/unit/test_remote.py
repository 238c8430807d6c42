"""RemoteBackend without a network: client configuration, secrets, validation before any
HTTP call, and the error mapping table (one tiny test per mapping)."""

from __future__ import annotations

import json
import typing

import httpx2
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub import errors as hf
from huggingface_hub.inference._providers import PROVIDER_T, get_provider_helper
from huggingface_hub.utils import hf_raise_for_status

from backends import Backend, create_backend
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
from backends.remote import PROVIDERS, RemoteBackend, providers_for, to_backend_error

SECRET = "hf_session_SECRET_token_123"
SERVER_SECRET = "hf_server_SAVED_token_456"
UNROUTABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there
MESSAGES = [{"role": "user", "content": "Hi"}]


def built_headers(backend: RemoteBackend, task: str = "conversational") -> dict[str, str]:
    """The headers InferenceClient would send, built as it builds them (no network)."""
    client = backend._client()
    helper = get_provider_helper(client.provider, task=task, model=client.model)
    request = helper.prepare_request(
        inputs=MESSAGES if task == "conversational" else "Hi",
        parameters={},
        headers=client.headers,
        model=client.model,
        api_key=client.token,
    )
    return request.headers


# -- configuration -------------------------------------------------------------------------


def test_registered_and_satisfies_the_protocol():
    backend = create_backend("remote", base_url=UNROUTABLE)
    assert isinstance(backend, RemoteBackend)
    assert isinstance(backend, Backend)
    assert backend.name == "remote"


def test_providers_come_from_huggingface_hub():
    assert PROVIDERS[0] == "auto"
    assert set(PROVIDERS[1:]) == set(typing.get_args(PROVIDER_T))
    assert "hf-inference" in providers_for("text-generation")
    assert "groq" in providers_for("conversational")
    assert "groq" not in providers_for("text-generation")


def test_model_id_on_a_provider():
    client = RemoteBackend("org/model", provider="together", token=SECRET, timeout=5)._client()
    assert (client.model, client.provider, client.token, client.timeout) == (
        "org/model",
        "together",
        SECRET,
        5,
    )
    assert client.headers == {}


def test_model_id_defaults_to_auto_routing():
    assert RemoteBackend("org/model")._client().provider == "auto"


def test_endpoint_url():
    backend = RemoteBackend(base_url="https://xyz.endpoints.huggingface.cloud/", provider="groq")
    client = backend._client()
    assert client.model == "https://xyz.endpoints.huggingface.cloud"
    assert client.provider == "hf-inference"  # needed by health_check/get_endpoint_info
    assert not backend.openai_compatible


def test_a_url_given_as_model_is_the_base_url():
    backend = RemoteBackend("http://localhost:8080")
    assert (backend.base_url, backend.model) == ("http://localhost:8080", None)


def test_openai_compatible_base_url_keeps_model_for_the_payload():
    backend = RemoteBackend("my-model", base_url="http://localhost:8000/v1")
    assert backend.openai_compatible
    assert backend._client().model == "http://localhost:8000/v1"
    request = get_provider_helper("hf-inference", "conversational", backend.base_url)
    built = request.prepare_request(
        inputs=MESSAGES,
        parameters={"model": backend.model},
        headers={},
        model=backend.base_url,
        api_key="x",
    )
    assert built.url == "http://localhost:8000/v1/chat/completions"
    assert built.json["model"] == "my-model"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({}, "model"),
        ({"base_url": "localhost:8080"}, "base_url"),
        ({"model": "org/model", "provider": "no-such-provider"}, "provider"),
    ],
)
def test_bad_targets_are_refused(args, field):
    with pytest.raises(InputValidationError) as info:
        RemoteBackend(**args)
    assert info.value.field == field


def test_status_describes_the_target_without_network():
    status = RemoteBackend("m", base_url="http://localhost:8000/v1", token=SECRET).status()
    assert status.state == "ready"
    assert "OpenAI-compatible" in status.message and "http://localhost:8000/v1" in status.message
    assert SECRET not in status.message
    assert "org/model" in RemoteBackend("org/model").status().message


def test_health_check_of_a_provider_target_is_true_without_network():
    assert RemoteBackend("org/model", provider="groq").health_check() is True


def test_endpoint_info_is_refused_for_a_provider_target():
    with pytest.raises(UnavailableError, match="endpoint info"):
        RemoteBackend("org/model", provider="groq").get_endpoint_info()


# -- secrets -------------------------------------------------------------------------------


def test_url_target_without_token_never_sends_the_servers_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SERVER_SECRET)
    backend = RemoteBackend(base_url="http://typed-by-a-user.example")
    assert backend._client_kwargs()["token"] is None  # InferenceClient 2.4 rejects False
    for task in ("conversational", "text-generation"):
        assert "authorization" not in built_headers(backend, task)


def test_url_target_sends_the_session_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SERVER_SECRET)
    backend = RemoteBackend(base_url="http://my-endpoint.example", token=SECRET)
    assert built_headers(backend)["authorization"] == f"Bearer {SECRET}"


def test_inference_client_really_rejects_token_false():
    # Why _client_kwargs uses a header override instead (ARCHITECTURE.md says token=False).
    with pytest.raises(TypeError):
        InferenceClient(base_url=UNROUTABLE, token=False)


def test_token_is_not_in_repr_str_or_attributes():
    backend = RemoteBackend("org/model", provider="groq", token=SECRET)
    assert SECRET not in repr(backend)
    assert SECRET not in str(backend)
    assert "token=<set>" in repr(backend)
    assert all(SECRET not in repr(value) for value in vars(backend).values())
    assert SECRET not in repr(backend._client())


# -- validation before any HTTP call -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"top_p": 1.5},
        {"temperature": 0},
        {"max_new_tokens": 0},
        {"top_k": -1},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"seed": -1},
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_text_generation_validates_before_connecting(kwargs, stream):
    backend = RemoteBackend(base_url=UNROUTABLE, timeout=1)
    with pytest.raises(InputValidationError) as info:
        backend.text_generation("Hi", stream=stream, **kwargs)  # raises at the call
    assert info.value.field == next(iter(kwargs))


@pytest.mark.parametrize(
    "kwargs", [{"temperature": 2.5}, {"top_p": 0}, {"max_tokens": 0}, {"stop": [""]}]
)
@pytest.mark.parametrize("stream", [False, True])
def test_chat_completion_validates_before_connecting(kwargs, stream):
    backend = RemoteBackend(base_url=UNROUTABLE, timeout=1)
    with pytest.raises(InputValidationError) as info:
        backend.chat_completion(MESSAGES, stream=stream, **kwargs)
    assert info.value.field == next(iter(kwargs))


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.text_generation(""), "inputs"),
        (lambda b: b.chat_completion([]), "messages"),
        (lambda b: b.chat_completion([{"role": "wizard", "content": "x"}]), "role"),
    ],
)
def test_empty_or_malformed_inputs_are_refused_before_connecting(call, field):
    with pytest.raises(InputValidationError) as info:
        call(RemoteBackend(base_url=UNROUTABLE, timeout=1))
    assert info.value.field == field


def test_unroutable_url_with_valid_parameters_is_a_connection_error():
    # The counterpart of the tests above: they would fail like this if they connected.
    with pytest.raises(UnavailableError, match="127.0.0.1:9"):
        RemoteBackend(base_url=UNROUTABLE, timeout=1).text_generation("Hi", max_new_tokens=1)


def test_provider_without_the_task_is_refused_before_connecting():
    with pytest.raises(InputValidationError, match="groq") as info:
        RemoteBackend("org/model", provider="groq").text_generation("Hi")
    assert "hf-inference" in info.value.hint


def test_text_generation_on_an_openai_base_url_is_refused():
    with pytest.raises(InputValidationError, match="OpenAI-compatible"):
        RemoteBackend("m", base_url="http://localhost:8000/v1").text_generation("Hi")


# -- 503 "model is loading" retry ----------------------------------------------------------


def http_error(status: int, body: dict | str, headers: dict | None = None) -> hf.HfHubHTTPError:
    """The error huggingface_hub raises for this response (its real classification)."""
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = httpx2.Request("POST", "http://endpoint.example/")
    response = httpx2.Response(status, content=content, headers=headers, request=request)
    try:
        hf_raise_for_status(response)
    except hf.HfHubHTTPError as exc:
        return exc
    raise AssertionError(f"{status} did not raise")


LOADING = {"error": "Model org/model is currently loading", "estimated_time": 20.0}


def test_model_loading_is_retried_with_progress(monkeypatch):
    sleeps, seen = [], []
    monkeypatch.setattr("backends.remote.backend.time.sleep", sleeps.append)
    backend = RemoteBackend(base_url=UNROUTABLE)
    backend.on_progress = lambda message: seen.append((message, backend.status()))
    answers = iter([http_error(503, LOADING), http_error(503, LOADING), "done"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert backend._with_load_retry(call) == "done"
    assert sleeps == [10.0, 10.0]  # estimated_time 20 s, re-polled at least every 10 s
    assert [status.state for _, status in seen] == ["loading", "loading"]
    assert "loading" in seen[0][0] and "retry 1" in seen[0][0]
    assert backend.status().state == "ready"


def test_other_503s_are_not_retried(monkeypatch):
    monkeypatch.setattr("backends.remote.backend.time.sleep", lambda s: pytest.fail("slept"))
    backend = RemoteBackend(base_url=UNROUTABLE)
    error = http_error(503, {"error": "Service Unavailable"})
    with pytest.raises(hf.HfHubHTTPError):
        backend._with_load_retry(lambda: (_ for _ in ()).throw(error))


def test_loading_retry_gives_up_after_load_wait(monkeypatch):
    monkeypatch.setattr("backends.remote.backend.time.sleep", lambda s: None)
    backend = RemoteBackend(base_url=UNROUTABLE, load_wait=0)
    with pytest.raises(hf.HfHubHTTPError):
        backend._with_load_retry(lambda: (_ for _ in ()).throw(http_error(503, LOADING)))


# -- error mapping: one tiny test per mapping ----------------------------------------------

TARGET = "http://endpoint.example"


def mapped(exc: BaseException) -> BackendError:
    return to_backend_error(exc, target=TARGET, timeout=1.5)


@pytest.mark.parametrize(
    ("hf_error", "expected"),
    [
        (hf.ValidationError, InputValidationError),
        (hf.GenerationError, GenerationError),
        (hf.IncompleteGenerationError, IncompleteGenerationError),
        (hf.OverloadedError, OverloadedError),
        (hf.UnknownError, GenerationError),
    ],
)
def test_text_generation_errors_by_type(hf_error, expected):
    error = mapped(hf_error("the server's reason"))
    assert type(error) is expected
    assert "the server's reason" in error.message and error.hint


def test_error_type_in_the_body_wins_over_the_status():
    body = {"error": "Model is overloaded", "error_type": "overloaded"}
    assert type(mapped(http_error(400, body))) is OverloadedError


def test_chat_422_with_tgi_body_is_a_validation_error_with_the_reason():
    body = {
        "error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
        "error_type": "validation",
    }
    error = mapped(http_error(422, body))
    assert type(error) is InputValidationError
    assert "`top_p` must be > 0.0 and < 1.0" in error.message


@pytest.mark.parametrize("status", [401, 403])
def test_auth_statuses(status):
    error = mapped(http_error(status, {"error": "Invalid credentials"}))
    assert type(error) is AuthenticationError
    assert "Invalid credentials" in error.message and "token" in error.hint


def test_404_says_check_the_model_id():
    error = mapped(http_error(404, {"error": "Model org/nope does not exist"}))
    assert type(error) is ModelNotFoundError
    assert "org/nope" in error.message and "model id" in error.hint


def test_429_says_retry():
    error = mapped(http_error(429, {"error": "rate limit reached"}))
    assert type(error) is OverloadedError
    assert "rate limit reached" in error.message and "Retry" in error.hint


def test_503_model_loading():
    error = mapped(http_error(503, LOADING))
    assert type(error) is UnavailableError
    assert "loading" in error.message and "minute" in error.hint


def test_503_other():
    error = mapped(http_error(503, "upstream connect error"))
    assert type(error) is UnavailableError
    assert "loading" not in error.message and "upstream connect error" in error.message


def test_400_bad_request():
    error = mapped(http_error(400, {"error": "messages: field required"}))
    assert type(error) is InputValidationError and "field required" in error.message


def test_500_is_unavailable():
    assert type(mapped(http_error(500, "boom"))) is UnavailableError


def test_openai_style_error_body():
    body = {"error": {"message": "The model `x` does not exist", "type": "invalid_request_error"}}
    assert "The model `x` does not exist" in mapped(http_error(404, body)).message


def test_connection_refused_names_the_url():
    error = mapped(httpx2.ConnectError("[Errno 111] Connection refused"))
    assert type(error) is UnavailableError
    assert TARGET in error.message and "Connection refused" in error.message


@pytest.mark.parametrize(
    "exc", [hf.InferenceTimeoutError("timed out"), httpx2.ReadTimeout("timed out")]
)
def test_timeout_names_the_timeout(exc):
    error = mapped(exc)
    assert type(error) is UnavailableError and "1.5 s" in error.message


def test_malformed_event_names_the_payload():
    try:
        json.loads("{not json")
    except json.JSONDecodeError as exc:
        error = mapped(exc)
    assert type(error) is GenerationError and "{not json" in error.message


def test_offline_mode():
    error = mapped(hf.OfflineModeIsEnabled("offline"))
    assert type(error) is UnavailableError and "HF_HUB_OFFLINE" in error.hint


def test_request_building_value_errors():
    unsupported = ValueError("Task 'text-generation' not supported for provider 'groq'.")
    assert type(mapped(unsupported)) is InputValidationError
    no_key = ValueError("You must provide an api_key to work with groq API.")
    assert type(mapped(no_key)) is AuthenticationError


def test_unexpected_errors_stay_backend_errors():
    error = mapped(RuntimeError("weird"))
    assert type(error) is BackendError and "weird" in error.message


def test_backend_errors_pass_through():
    original = OverloadedError("busy")
    assert mapped(original) is original
