"""One case per task of ``backends.tasks.TASKS`` for the remote tests and the browser tests:
the inputs and parameters a user gives (InferenceClient's names and shapes), the JSON body
InferenceClient must send for them to an HF Inference endpoint, and a ``check`` that the
returned value is InferenceClient's type holding ``task_payloads.PAYLOADS``' values.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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
)
from PIL import Image

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

IMAGE_B64 = base64.b64encode(IMAGE_PNG).decode()


def pixels(image: Image.Image) -> bytes:
    return image.convert("RGB").tobytes()


def png_pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return pixels(image)


@dataclass(frozen=True)
class Case:
    """``run_task(name, inputs, parameters)``; ``body``: the JSON InferenceClient must send
    (None: the raw upload ``raw``, sent when there are no parameters); ``check(output)``
    asserts the return value."""

    inputs: dict[str, Any]
    parameters: dict[str, Any]
    body: dict[str, Any] | None
    check: Callable[[Any], None]
    raw: bytes | None = None


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
