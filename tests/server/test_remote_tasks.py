"""``RemoteBackend.run_task`` for every task of ``backends.tasks.TASKS`` against a real HTTP
server (tests/server/fake_tasks_endpoint.py) that replays the HF Inference API's payload
shapes: the return value is InferenceClient's type with the payload's values, the request
is InferenceClient's wire format with our parameters under their InferenceClient names,
tokens go only where they should, bad parameters never leave the process, and every HTTP
failure becomes the project's error with the server's reason.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from huggingface_hub import (
    AudioClassificationOutputElement,
    AudioToAudioOutputElement,
    AutomaticSpeechRecognitionOutput,
    DocumentQuestionAnsweringOutputElement,
    FillMaskOutputElement,
    ImageClassificationOutputElement,
    ImageSegmentationOutputElement,
    ImageToTextOutput,
    ObjectDetectionOutputElement,
    QuestionAnsweringOutputElement,
    SummarizationOutput,
    TableQuestionAnsweringOutputElement,
    TextClassificationOutputElement,
    TokenClassificationOutputElement,
    TranslationOutput,
    VisualQuestionAnsweringOutputElement,
    ZeroShotClassificationOutputElement,
    ZeroShotImageClassificationOutputElement,
    constants,
)
from huggingface_hub.inference._providers import PROVIDERS as HF_PROVIDERS
from PIL import Image

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
from tests.server.task_payloads import (
    AUDIO_WAV,
    CLEAN_FLAC,
    EDITED_PNG,
    GENERATED_PNG,
    IMAGE_PNG,
    NOISE_FLAC,
    PAYLOADS,
    SPEECH_FLAC,
    TABLE,
)

pytestmark = pytest.mark.server

SECRET = "hf_session_SECRET_token_123"
SAVED = "hf_server_SAVED_token_456"  # this machine's token: must never reach a typed URL
IMAGE_B64 = base64.b64encode(IMAGE_PNG).decode()


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


def pixels(image: Image.Image) -> bytes:
    return image.convert("RGB").tobytes()


def png_pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return pixels(image)


# -- one case per task: what we send, what must go over the wire, what must come back ------


@dataclass(frozen=True)
class Case:
    inputs: dict[str, Any]
    parameters: dict[str, Any]
    # The JSON body InferenceClient must send (None: the raw upload, with no parameters).
    body: dict[str, Any] | None
    check: Callable[[Any], None]
    raw: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fields(element: dict[str, Any]) -> dict[str, Any]:
    """An output element's fields that are set (optional fields default to None)."""
    return {k: v for k, v in element.items() if v is not None}


def labels_of(kind: type, task: str) -> Callable[[Any], None]:
    """For list[{label, score}] outputs: the element type and the payload's values."""

    def check(output: Any) -> None:
        assert isinstance(output, list) and all(type(e) is kind for e in output)
        assert [fields(e) for e in output] == PAYLOADS[task]

    return check


def check_detection(output: Any) -> None:
    assert all(type(e) is ObjectDetectionOutputElement for e in output)
    assert [(e.label, e.score) for e in output] == [("cat", 0.9982), ("remote", 0.9561)]
    assert (output[0].box.xmin, output[0].box.ymin, output[0].box.xmax, output[0].box.ymax) == (
        4,
        6,
        19,
        17,
    )


def check_segmentation(output: Any) -> None:
    assert all(type(e) is ImageSegmentationOutputElement for e in output)
    assert [(e.label, e.score) for e in output] == [("cat", 0.9914), ("couch", 0.9735)]
    # InferenceClient decodes the base64 PNG masks to PIL images.
    for element, sent in zip(output, PAYLOADS["image_segmentation"], strict=True):
        assert isinstance(element.mask, Image.Image)
        assert element.mask.size == (32, 24)
        assert pixels(element.mask) == png_pixels(base64.b64decode(sent["mask"]))


def check_image(expected_png: bytes) -> Callable[[Any], None]:
    def check(output: Any) -> None:
        assert isinstance(output, Image.Image)
        assert pixels(output) == png_pixels(expected_png)

    return check


def check_speech(output: Any) -> None:
    assert output == SPEECH_FLAC  # the audio bytes, as sent


def check_audio_to_audio(output: Any) -> None:
    assert all(type(e) is AudioToAudioOutputElement for e in output)
    assert [(e.label, e.content_type) for e in output] == [
        ("speech", "audio/flac"),
        ("noise", "audio/flac"),
    ]
    assert [e.blob for e in output] == [CLEAN_FLAC, NOISE_FLAC]  # decoded from base64


def check_asr(output: Any) -> None:
    assert type(output) is AutomaticSpeechRecognitionOutput
    assert output.text == " Hello world."
    assert [(c.text, c.timestamp) for c in output.chunks] == [
        (" Hello", [0.0, 0.12]),
        (" world.", [0.12, 0.25]),
    ]


def check_one(kind: type, task: str) -> Callable[[Any], None]:
    """For outputs that are one object (the payload's only element, or the payload)."""

    def check(output: Any) -> None:
        expected = PAYLOADS[task]
        assert type(output) is kind
        assert fields(output) == (expected[0] if isinstance(expected, list) else expected)

    return check


def check_equal(expected: Any) -> Callable[[Any], None]:
    def check(output: Any) -> None:
        assert output == expected and type(output) is type(expected)

    return check


def check_embedding(output: Any) -> None:
    assert isinstance(output, np.ndarray) and output.dtype == np.float32
    assert output.shape == (1, 8)
    np.testing.assert_allclose(output, PAYLOADS["feature_extraction"], rtol=1e-6)


def check_text_classification(output: Any) -> None:
    # The server sends a list per input; InferenceClient returns the first input's list.
    assert all(type(e) is TextClassificationOutputElement for e in output)
    assert output == PAYLOADS["text_classification"][0]


IMAGE = {"image": IMAGE_PNG}
AUDIO = {"audio": AUDIO_WAV}
NER_TEXT = "My name is Sarah and I live in London"

CASES: dict[str, Case] = {
    "image_classification": Case(
        IMAGE,
        {"top_k": 3, "function_to_apply": "softmax"},
        {"inputs": IMAGE_B64, "parameters": {"top_k": 3, "function_to_apply": "softmax"}},
        labels_of(ImageClassificationOutputElement, "image_classification"),
    ),
    "object_detection": Case(
        IMAGE,
        {"threshold": 0.5},
        {"inputs": IMAGE_B64, "parameters": {"threshold": 0.5}},
        check_detection,
    ),
    "image_segmentation": Case(
        IMAGE,
        {"subtask": "semantic", "threshold": 0.9, "mask_threshold": 0.5},
        {
            "inputs": IMAGE_B64,
            "parameters": {"subtask": "semantic", "threshold": 0.9, "mask_threshold": 0.5},
        },
        check_segmentation,
    ),
    "image_to_text": Case(
        IMAGE, {}, None, check_one(ImageToTextOutput, "image_to_text"), raw=IMAGE_PNG
    ),
    "text_to_image": Case(
        {"prompt": "an orange cat"},
        {"negative_prompt": "blurry", "num_inference_steps": 4, "width": 512, "seed": 7},
        {
            "inputs": "an orange cat",
            "parameters": {
                "negative_prompt": "blurry",
                "num_inference_steps": 4,
                "width": 512,
                "seed": 7,
            },
        },
        check_image(GENERATED_PNG),
    ),
    "image_to_image": Case(
        {"image": IMAGE_PNG, "prompt": "mirror it"},
        {"guidance_scale": 7.5},
        # The prompt is a parameter on the wire.
        {"inputs": IMAGE_B64, "parameters": {"prompt": "mirror it", "guidance_scale": 7.5}},
        check_image(EDITED_PNG),
    ),
    "zero_shot_image_classification": Case(
        {"image": IMAGE_PNG, "candidate_labels": ["cat", "dog"]},
        {"hypothesis_template": "A photo of a {}."},
        {
            "inputs": IMAGE_B64,
            "parameters": {
                "candidate_labels": ["cat", "dog"],
                "hypothesis_template": "A photo of a {}.",
            },
        },
        labels_of(ZeroShotImageClassificationOutputElement, "zero_shot_image_classification"),
    ),
    "visual_question_answering": Case(
        {"image": IMAGE_PNG, "question": "What colour is the cat?"},
        {"top_k": 2},
        {
            "inputs": IMAGE_B64,
            "parameters": {"top_k": 2},
            "question": "What colour is the cat?",
            "image": IMAGE_B64,
        },
        labels_of(VisualQuestionAnsweringOutputElement, "visual_question_answering"),
    ),
    "document_question_answering": Case(
        {"image": IMAGE_PNG, "question": "What is the total?"},
        {"top_k": 1, "lang": "eng", "handle_impossible_answer": True},
        {
            "inputs": {"question": "What is the total?", "image": IMAGE_B64},
            "parameters": {"top_k": 1, "lang": "eng", "handle_impossible_answer": True},
        },
        labels_of(DocumentQuestionAnsweringOutputElement, "document_question_answering"),
    ),
    "automatic_speech_recognition": Case(AUDIO, {}, None, check_asr, raw=AUDIO_WAV),
    "audio_classification": Case(
        AUDIO,
        {"top_k": 2},
        {"inputs": base64.b64encode(AUDIO_WAV).decode(), "parameters": {"top_k": 2}},
        labels_of(AudioClassificationOutputElement, "audio_classification"),
    ),
    "text_to_speech": Case(
        {"text": "Hello world."},
        {"do_sample": True, "temperature": 0.7, "max_new_tokens": 64},
        {
            "inputs": "Hello world.",
            "parameters": {"do_sample": True, "temperature": 0.7, "max_new_tokens": 64},
        },
        check_speech,
    ),
    "audio_to_audio": Case(AUDIO, {}, None, check_audio_to_audio, raw=AUDIO_WAV),
    "table_question_answering": Case(
        {"table": TABLE, "query": "What is the average number of stars?"},
        {"padding": "longest", "sequential": False, "truncation": "only_first"},
        {
            "inputs": {"query": "What is the average number of stars?", "table": TABLE},
            "parameters": {"padding": "longest", "sequential": False, "truncation": "only_first"},
        },
        check_one(TableQuestionAnsweringOutputElement, "table_question_answering"),
    ),
    "tabular_classification": Case(
        {"table": TABLE},
        {},
        {"parameters": {}, "table": TABLE},
        check_equal(["popular", "niche", "niche"]),
    ),
    "tabular_regression": Case(
        {"table": TABLE},
        {},
        {"parameters": {}, "table": TABLE},
        check_equal([118.5, 21.25, 9.75]),
    ),
    "text_classification": Case(
        {"text": "I love this!"},
        {"top_k": 2, "function_to_apply": "sigmoid"},
        {"inputs": "I love this!", "parameters": {"top_k": 2, "function_to_apply": "sigmoid"}},
        check_text_classification,
    ),
    "token_classification": Case(
        {"text": NER_TEXT},
        {"aggregation_strategy": "simple", "ignore_labels": ["O"], "stride": 16},
        {
            "inputs": NER_TEXT,
            "parameters": {"aggregation_strategy": "simple", "ignore_labels": ["O"], "stride": 16},
        },
        labels_of(TokenClassificationOutputElement, "token_classification"),
    ),
    "summarization": Case(
        {"text": "The tower is 324 metres tall, about the same height as an 81-storey building."},
        {"truncation": "longest_first", "clean_up_tokenization_spaces": True},
        {
            "inputs": "The tower is 324 metres tall, about the same height as an 81-storey "
            "building.",
            "parameters": {"truncation": "longest_first", "clean_up_tokenization_spaces": True},
        },
        check_one(SummarizationOutput, "summarization"),
    ),
    "translation": Case(
        {"text": "My name is Wolfgang and I live in Berlin."},
        {"src_lang": "en_XX", "tgt_lang": "fr_XX"},
        {
            "inputs": "My name is Wolfgang and I live in Berlin.",
            "parameters": {"src_lang": "en_XX", "tgt_lang": "fr_XX"},
        },
        check_one(TranslationOutput, "translation"),
    ),
    "question_answering": Case(
        {"question": "What is my name?", "context": "My name is Clara and I live in Berkeley."},
        {"top_k": 1, "align_to_words": True, "max_answer_len": 30},
        {
            "inputs": {
                "question": "What is my name?",
                "context": "My name is Clara and I live in Berkeley.",
            },
            "parameters": {"top_k": 1, "align_to_words": True, "max_answer_len": 30},
        },
        check_one(QuestionAnsweringOutputElement, "question_answering"),
    ),
    "fill_mask": Case(
        {"text": "Paris is the [MASK] of France."},
        {"top_k": 2, "targets": ["capital", "center"]},
        {
            "inputs": "Paris is the [MASK] of France.",
            "parameters": {"top_k": 2, "targets": ["capital", "center"]},
        },
        labels_of(FillMaskOutputElement, "fill_mask"),
    ),
    "zero_shot_classification": Case(
        {"text": "The match ended 2-1.", "candidate_labels": ["sport", "politics", "science"]},
        {"multi_label": True, "hypothesis_template": "This text is about {}."},
        {
            "inputs": "The match ended 2-1.",
            "parameters": {
                "candidate_labels": ["sport", "politics", "science"],
                "multi_label": True,
                "hypothesis_template": "This text is about {}.",
            },
        },
        labels_of(ZeroShotClassificationOutputElement, "zero_shot_classification"),
    ),
    "sentence_similarity": Case(
        {"sentence": "A cat sits.", "other_sentences": ["A cat is sitting.", "Stocks fell."]},
        {},
        {
            "inputs": {
                "source_sentence": "A cat sits.",
                "sentences": ["A cat is sitting.", "Stocks fell."],
            },
            "parameters": {},
        },
        check_equal([0.7124, 0.1058]),
    ),
    "feature_extraction": Case(
        {"text": "Hello world"},
        {"normalize": True, "truncate": True, "truncation_direction": "left"},
        # Feature extraction puts its parameters at the root of the body.
        {
            "inputs": "Hello world",
            "normalize": True,
            "truncate": True,
            "truncation_direction": "left",
        },
        check_embedding,
    ),
}


def test_every_task_has_a_payload_and_a_case():
    assert set(PAYLOADS) == set(TASKS), "add the new task's reply to tests/server/task_payloads.py"
    assert set(CASES) == set(TASKS), "add the new task to CASES in this file"


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


@pytest.mark.parametrize("name", ["text_classification", "image_to_text", "text_to_image"])
def test_a_reply_of_the_wrong_kind_is_a_backend_error(endpoint, name):
    # An HTML page where JSON or an image was expected (a proxy's page, a wrong URL).
    url = endpoint.url("garbage", name)
    with pytest.raises(BackendError) as info:
        RemoteBackend(base_url=url).run_task(name, CASES[name].inputs)
    assert url in info.value.message


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
