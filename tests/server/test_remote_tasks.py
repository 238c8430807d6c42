"""``RemoteBackend.run_task`` for every task of ``backends.tasks.TASKS`` against a real HTTP
server (tests/server/fake_tasks_endpoint.py) that replays the HF Inference API's payload
shapes: the return value is InferenceClient's type with the payload's values, the request
is InferenceClient's wire format with our parameters under their InferenceClient names,
tokens go only where they should, bad parameters never leave the process, and every HTTP
failure becomes the project's error with the server's reason.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from huggingface_hub import constants
from huggingface_hub.inference._providers import PROVIDERS as HF_PROVIDERS

from backends import create_backend
from backends.errors import (
    AuthenticationError,
    BackendError,
    InputValidationError,
    ModelNotFoundError,
    OverloadedError,
    UnavailableError,
)
from backends.remote import RemoteBackend
from backends.tasks import TASKS
from tests.server.fake_tasks_endpoint import ERRORS, FakeTasksEndpoint, RecordedRequest
from tests.server.task_cases import CASES, Case
from tests.server.task_payloads import PAYLOADS, TABLE

pytestmark = pytest.mark.server

SECRET = "hf_session_SECRET_token_123"
SAVED = "hf_server_SAVED_token_456"  # this machine's token: must never reach a typed URL


@pytest.fixture(scope="module")
def server():
    with FakeTasksEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def endpoint(server: FakeTasksEndpoint, monkeypatch) -> FakeTasksEndpoint:
    server.reset()
    # HF_HUB_OFFLINE=1 in a developer's shell would block even 127.0.0.1; the server is local.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # A saved token InferenceClient would send to any URL if we let it.
    monkeypatch.setenv("HF_TOKEN", SAVED)
    return server


def test_every_task_has_a_payload_and_a_case():
    assert set(PAYLOADS) == set(TASKS), "add the new task's reply to tests/server/task_payloads.py"
    assert set(CASES) == set(TASKS), "add the new task to CASES in tests/server/task_cases.py"


def assert_wire(request: RecordedRequest, name: str, case: Case) -> None:
    """The request is InferenceClient's for this task: the base URL itself, the body."""
    assert request.method == "POST"
    assert request.task == name
    if case.body is None:  # a raw upload: the file's bytes and nothing else
        assert request.json is None
        assert request.raw == case.raw
    else:
        assert request.headers["content-type"] == "application/json"
        assert request.json == case.body


@pytest.mark.parametrize("name", list(TASKS))
def test_run_task_without_a_token(endpoint, name):
    case = CASES[name]
    backend = RemoteBackend(base_url=endpoint.url("ok", name), timeout=10)
    output = backend.run_task(name, case.inputs, case.parameters)
    case.check(output)
    (request,) = endpoint.posts()
    assert request.path == f"/ok/{name}"  # InferenceClient POSTs to the URL as given
    assert_wire(request, name, case)
    assert "authorization" not in request.headers  # not even this machine's HF_TOKEN


@pytest.mark.parametrize("name", list(TASKS))
def test_run_task_through_the_registry_with_the_session_token(endpoint, name):
    case = CASES[name]
    backend = create_backend("remote", base_url=endpoint.url("ok", name), token=SECRET)
    case.check(backend.run_task(name, case.inputs, case.parameters))
    (request,) = endpoint.posts()
    assert_wire(request, name, case)
    assert request.headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("name", ["image_classification", "audio_classification"])
def test_a_media_task_without_parameters_uploads_the_raw_file(endpoint, name):
    media = CASES[name].inputs
    output = RemoteBackend(base_url=endpoint.url("ok", name)).run_task(name, media, {})
    assert output == PAYLOADS[name]
    (request,) = endpoint.posts()
    assert request.json is None
    assert request.raw == next(iter(media.values()))


def test_unset_parameters_are_not_sent(endpoint):
    # None, "" and [] mean "the server's default": the keyword is left out.
    parameters = {"top_k": None, "function_to_apply": ""}
    backend = RemoteBackend(base_url=endpoint.url("ok", "text_classification"))
    backend.run_task("text_classification", {"text": "Fine."}, parameters)
    (request,) = endpoint.posts()
    assert request.json == {"inputs": "Fine.", "parameters": {}}


# -- parameters outside their bounds never leave the process ------------------------------


def _bad_values() -> list[tuple[str, str, Any]]:
    """(task, parameter, a value outside its bounds / choices) for every constrained param."""
    cases = []
    for name, spec in TASKS.items():
        for param in spec.params:
            if param.maximum is not None:
                cases.append((name, param.name, param.maximum + 1))
            if param.minimum is not None:
                cases.append((name, param.name, param.minimum - 1))
            if param.choices:
                cases.append((name, param.name, "no-such-choice"))
    return cases


@pytest.mark.parametrize(("name", "param", "value"), _bad_values())
def test_out_of_bounds_parameters_are_refused_before_any_request(endpoint, name, param, value):
    case = CASES[name]
    backend = RemoteBackend(base_url=endpoint.url("ok", name))
    with pytest.raises(InputValidationError) as info:
        backend.run_task(name, case.inputs, {**case.parameters, param: value})
    assert f"`{param}`" in info.value.message
    assert endpoint.requests == []


@pytest.mark.parametrize("name", ["object_detection", "summarization", "tabular_regression"])
def test_unknown_parameters_are_refused_before_any_request(endpoint, name):
    backend = RemoteBackend(base_url=endpoint.url("ok", name))
    with pytest.raises(InputValidationError, match="`max_length`"):
        backend.run_task(name, CASES[name].inputs, {"max_length": 10})
    assert endpoint.requests == []


# -- HTTP failures → the project's errors, with the server's reason ------------------------

# One of each wire format: a raw upload, a JSON text task, a binary reply, a table.
ERROR_TASKS = ["image_to_text", "text_classification", "text_to_image", "tabular_regression"]


@pytest.mark.parametrize("name", ERROR_TASKS)
@pytest.mark.parametrize(
    ("behaviour", "expected", "advice"),
    [
        ("422", InputValidationError, "change the input"),
        ("401", AuthenticationError, "token"),
        ("403", AuthenticationError, "token"),
        ("404", ModelNotFoundError, "model id"),
        ("429", OverloadedError, "retry"),
        ("500", BackendError, "retry"),
        ("503", UnavailableError, "retry"),
    ],
)
def test_http_errors(endpoint, name, behaviour, expected, advice):
    url = endpoint.url(behaviour, name)
    backend = RemoteBackend(base_url=url, load_wait=5)
    with pytest.raises(expected) as info:
        backend.run_task(name, CASES[name].inputs, CASES[name].parameters)
    error = info.value
    status, body = ERRORS[behaviour]
    assert body["error"] in error.message  # the server's own words
    assert url in error.message and f"HTTP {status}" in error.message
    assert advice in error.user_message().lower()
    assert len(endpoint.posts()) == 1  # only "model is loading" is retried


@pytest.mark.parametrize("name", ERROR_TASKS)
def test_model_loading_is_retried_until_ready(endpoint, name):
    notes: list[str] = []
    backend = RemoteBackend(base_url=endpoint.url("loading-2", name), on_progress=notes.append)
    CASES[name].check(backend.run_task(name, CASES[name].inputs, CASES[name].parameters))
    assert len(endpoint.posts()) == 3
    assert len(notes) == 2 and all("loading" in note for note in notes)
    assert backend.status().state == "ready"


def test_model_still_loading_after_load_wait(endpoint):
    backend = RemoteBackend(
        base_url=endpoint.url("loading-forever", "summarization"), load_wait=0.3
    )
    with pytest.raises(UnavailableError) as info:
        backend.run_task("summarization", CASES["summarization"].inputs)
    assert "loading" in info.value.message and "Retry" in info.value.hint
    assert len(endpoint.posts()) >= 2  # it did retry


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("text_classification", "malformed reply"),
        ("image_to_text", "malformed reply"),
        ("text_to_image", "not an image"),
        ("text_to_speech", "not audio"),
    ],
)
def test_a_reply_of_the_wrong_kind_is_a_backend_error(endpoint, name, says):
    # An HTML page where JSON, an image or audio was expected (a proxy's page, a wrong URL).
    url = endpoint.url("garbage", name)
    with pytest.raises(BackendError) as info:
        RemoteBackend(base_url=url).run_task(name, CASES[name].inputs)
    assert url in info.value.message
    assert says in info.value.message
    assert "Unexpected" not in info.value.message


# -- Hub model ids: the provider must serve the task --------------------------------------


def serving(hub_task: str) -> list[str]:
    return sorted(p for p, tasks in HF_PROVIDERS.items() if hub_task in tasks)


@pytest.mark.parametrize("name", [n for n, s in TASKS.items() if serving(s.hub_task)])
def test_a_provider_that_does_not_serve_the_task_is_refused(name):
    hub_task = TASKS[name].hub_task
    # groq serves chat only; the check runs before InferenceClient is built (no network).
    backend = RemoteBackend("some-org/some-model", provider="groq")
    with pytest.raises(InputValidationError) as info:
        backend.run_task(name, CASES[name].inputs, CASES[name].parameters)
    assert info.value.field == "provider"
    assert f"'groq' does not serve {hub_task}" in info.value.message
    assert info.value.hint == f"Pick one of {['auto', *serving(hub_task)]}."


def test_a_task_no_provider_serves_is_refused_for_a_model_id():
    # huggingface_hub 2.4 routes tabular-regression to no provider at all.
    assert serving("tabular-regression") == []
    for provider in ("auto", "hf-inference"):
        backend = RemoteBackend("scikit-learn/Fish-Weight", provider=provider)
        with pytest.raises(InputValidationError, match="No Inference Provider serves") as info:
            backend.run_task("tabular_regression", {"table": TABLE})
        assert "URL" in info.value.hint


# -- the fake itself: it catches client bugs a UI test could otherwise miss -----------------


@pytest.mark.parametrize(
    "name",
    [
        "question_answering",
        "table_question_answering",
        "sentence_similarity",
        "document_question_answering",
        "visual_question_answering",
        "zero_shot_classification",
        "zero_shot_image_classification",
        "feature_extraction",
    ],
)
def test_the_fake_infers_the_task_when_the_request_says_it(endpoint, name):
    case = CASES[name]
    case.check(
        RemoteBackend(base_url=endpoint.url("ok")).run_task(name, case.inputs, case.parameters)
    )
    assert endpoint.posts()[0].task == name


def test_the_fake_refuses_an_ambiguous_request_without_a_task(endpoint):
    with pytest.raises(InputValidationError, match="name one in the URL"):
        RemoteBackend(base_url=endpoint.url("ok")).run_task("summarization", {"text": "Hi"})


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("object_detection", {"inputs": "a cat", "parameters": {}}, "bytes in base64"),
        ("summarization", {"inputs": ["a", "b"], "parameters": {}}, "non-empty string"),
        ("feature_extraction", {"inputs": "Hi", "parameters": {}}, "at the root"),
        ("question_answering", {"inputs": {"question": "Who?"}, "parameters": {}}, "exactly"),
        ("tabular_regression", {"inputs": TABLE, "parameters": {}}, "`table`"),
    ],
)
def test_the_fake_refuses_a_request_in_the_wrong_wire_format(endpoint, name, body, problem):
    request = urllib.request.Request(
        endpoint.url("ok", name),
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    assert problem in json.loads(info.value.read())["error"]
