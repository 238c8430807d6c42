"""Local task runners (``LocalTasks``) on tiny random-weight models built from configs
(tests/tiny_models.py) and on the bundled all-MiniLM-L6-v2.

Random weights make the outputs meaningless, so the assertions are about what does not
depend on training: the exact huggingface_hub types InferenceClient returns, labels taken
from each config's id2label, score ranges, shapes and bounds, parameters changing results,
and the errors users get.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile
from huggingface_hub import (
    AudioClassificationOutputElement,
    AutomaticSpeechRecognitionOutput,
    DocumentQuestionAnsweringOutputElement,
    FillMaskOutputElement,
    ImageClassificationOutputElement,
    ImageSegmentationOutputElement,
    ImageToTextOutput,
    ObjectDetectionBoundingBox,
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
from PIL import Image, ImageDraw, ImageFont

from backends import media
from backends.errors import InputValidationError, ModelNotFoundError, UnavailableError
from backends.local.tasks import RUNNERS, LocalTasks, local_tasks
from backends.local.tasks import pipeline as pipeline_runners
from tests import tiny_models as tiny

pytest.importorskip("transformers")


# -- fixtures ---------------------------------------------------------------------------


class Models:
    """Builds each tiny model on first use, once per module."""

    def __init__(self, root):
        self.root = root
        self._built: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._built:
            builder = tiny.BUILDERS.get(name) or getattr(tiny, name)
            self._built[name] = str(builder(self.root / name))
        return self._built[name]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    return Models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def tasks() -> LocalTasks:
    return LocalTasks(device="cpu")


def png(width: int = 40, height: int = 48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return media.encode_png(Image.fromarray(pixels))


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return media.encode_wav(0.5 * np.sin(2 * np.pi * 440 * t), rate)


def document(text: str) -> bytes:
    picture = Image.new("RGB", (420, 120), "white")
    ImageDraw.Draw(picture).text((12, 36), text, fill="black", font=ImageFont.load_default(36))
    return media.encode_png(picture)


def assert_probabilities(items, labels=None, total=None):
    scores = [item.score for item in items]
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True)
    if labels is not None:
        assert {item.label for item in items} <= set(labels)
    if total is not None:
        assert sum(scores) == pytest.approx(total, abs=1e-4)


# -- image ------------------------------------------------------------------------------


def test_image_classification_labels_scores_and_top_k(tasks, models):
    model = models["image_classification"]
    result = tasks.run("image_classification", {"image": png()}, {}, model=model)
    assert all(type(item) is ImageClassificationOutputElement for item in result)
    assert {item.label for item in result} == set(tiny.IMAGE_LABELS.values())
    assert_probabilities(result, total=1.0)
    top = tasks.run("image_classification", {"image": png()}, {"top_k": 1}, model=model)
    assert [item.label for item in top] == [result[0].label]


def test_image_classification_function_to_apply(tasks, models):
    model = models["image_classification"]
    softmax = tasks.run("image_classification", {"image": png()}, {}, model=model)
    raw = tasks.run(
        "image_classification", {"image": png()}, {"function_to_apply": "none"}, model=model
    )
    # Raw logits do not sum to one the way softmax probabilities do.
    assert sum(item.score for item in raw) != pytest.approx(1.0, abs=1e-3)
    assert [i.label for i in raw] == [i.label for i in softmax]


def test_object_detection_boxes_inside_the_image_and_threshold(tasks, models):
    model = models["object_detection"]
    everything = tasks.run(
        "object_detection", {"image": png(40, 48)}, {"threshold": 0.0}, model=model
    )
    assert len(everything) == 5, "threshold 0 keeps every detection token"
    for item in everything:
        assert type(item) is ObjectDetectionOutputElement
        assert type(item.box) is ObjectDetectionBoundingBox
        assert item.label in tiny.IMAGE_LABELS.values()
        box = item.box
        assert 0 <= box.xmin <= box.xmax <= 40 and 0 <= box.ymin <= box.ymax <= 48
    cut = max(item.score for item in everything) + 1e-6
    kept = tasks.run("object_detection", {"image": png(40, 48)}, {"threshold": cut}, model=model)
    assert kept == []


def test_image_segmentation_masks_are_images_of_the_input_size(tasks, models):
    model = models["image_segmentation"]
    result = tasks.run("image_segmentation", {"image": png(40, 48)}, {}, model=model)
    assert result and all(type(item) is ImageSegmentationOutputElement for item in result)
    assert {item.label for item in result} <= set(tiny.SEGMENT_LABELS.values())
    for item in result:
        # InferenceClient decodes the base64 PNG into a PIL image; so does the local runner.
        assert isinstance(item.mask, Image.Image) and item.mask.mode == "L"
        assert item.mask.size == (40, 48)
    with pytest.raises(InputValidationError, match="instance") as caught:
        tasks.run("image_segmentation", {"image": png()}, {"subtask": "instance"}, model=model)
    assert caught.value.field == "subtask"


def test_image_to_text_caption(tasks, models):
    result = tasks.run("image_to_text", {"image": png()}, {}, model=models["image_to_text"])
    assert type(result) is ImageToTextOutput
    assert isinstance(result.generated_text, str) and result.generated_text


def test_image_to_image_super_resolution_doubles_the_size(tasks, models):
    model = models["image_to_image"]
    result = tasks.run("image_to_image", {"image": png(22, 13)}, {}, model=model)
    assert isinstance(result, Image.Image) and result.mode == "RGB"
    assert result.size == (44, 26)
    with pytest.raises(InputValidationError, match="`prompt`"):
        tasks.run("image_to_image", {"image": png(), "prompt": "a cat"}, {}, model=model)
    with pytest.raises(InputValidationError, match="`guidance_scale`"):
        tasks.run("image_to_image", {"image": png()}, {"guidance_scale": 7.0}, model=model)


def test_zero_shot_image_classification_echoes_candidate_labels(tasks, models):
    model = models["zero_shot_image_classification"]
    inputs = {"image": png(), "candidate_labels": ["a zebra", "a violin", "a tree"]}
    result = tasks.run("zero_shot_image_classification", inputs, {}, model=model)
    assert all(type(item) is ZeroShotImageClassificationOutputElement for item in result)
    assert sorted(item.label for item in result) == sorted(inputs["candidate_labels"])
    assert_probabilities(result, total=1.0)
    templated = tasks.run(
        "zero_shot_image_classification",
        inputs,
        {"hypothesis_template": "A drawing of {}."},
        model=model,
    )
    assert [i.score for i in templated] != [i.score for i in result]
    with pytest.raises(InputValidationError, match="hypothesis_template"):
        tasks.run(
            "zero_shot_image_classification",
            inputs,
            {"hypothesis_template": "no slot"},
            model=model,
        )


def test_visual_question_answering_top_k(tasks, models):
    model = models["visual_question_answering"]
    inputs = {"image": png(), "question": "What colour is it?"}
    result = tasks.run("visual_question_answering", inputs, {"top_k": 2}, model=model)
    assert len(result) == 2
    assert all(type(item) is VisualQuestionAnsweringOutputElement for item in result)
    assert {item.answer for item in result} <= set(tiny.VQA_LABELS.values())
    assert all(0.0 <= item.score <= 1.0 for item in result)
    assert len(tasks.run("visual_question_answering", inputs, {}, model=model)) == 4


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_document_question_answering_reads_the_document(tasks, models):
    model = models["document_question_answering"]
    inputs = {"image": document("Total: 42 EUR"), "question": "What is the total?"}
    result = tasks.run("document_question_answering", inputs, {"top_k": 2}, model=model)
    assert 1 <= len(result) <= 2
    for item in result:
        assert type(item) is DocumentQuestionAnsweringOutputElement
        # Answers are OCR'd words of the page; start/end index those words.
        assert set(item.answer.split()) <= {"Total:", "42", "EUR"}
        assert 0 <= item.start <= item.end <= 2
    blank = {"image": media.encode_png(Image.new("RGB", (200, 80), "white")), "question": "?"}
    with pytest.raises(InputValidationError, match="no text"):
        tasks.run("document_question_answering", blank, {}, model=model)
    with pytest.raises(InputValidationError, match="lang"):
        tasks.run("document_question_answering", inputs, {"lang": "xx_none"}, model=model)


def test_document_question_answering_without_ocr_says_what_to_install(tasks, models, monkeypatch):
    monkeypatch.setattr(pipeline_runners.shutil, "which", lambda name: None)
    inputs = {"image": document("Total: 42"), "question": "What is the total?"}
    with pytest.raises(UnavailableError, match="Tesseract") as caught:
        tasks.run(
            "document_question_answering", inputs, {}, model=models["document_question_answering"]
        )
    assert "apt-get install tesseract-ocr" in caught.value.user_message()


# -- audio ------------------------------------------------------------------------------


def test_speech_recognition_text_and_word_timestamps(tasks, models):
    model = models["automatic_speech_recognition"]
    result = tasks.run(
        "automatic_speech_recognition", {"audio": tone(1.5, 16_000)}, {}, model=model
    )
    assert type(result) is AutomaticSpeechRecognitionOutput
    # Random weights emit arbitrary characters for this tone; CTC aligns them to words.
    assert isinstance(result.text, str) and result.text.strip()
    assert result.chunks
    assert " ".join(chunk.text for chunk in result.chunks) == result.text
    for chunk in result.chunks:
        start, end = chunk.timestamp
        assert 0.0 <= start <= end <= 1.5 + 1e-6


def test_audio_is_resampled_to_the_models_rate(tasks, models, monkeypatch):
    """One second at 8 kHz must reach a 16 kHz model as 16 000 samples."""
    model = models["audio_classification"]
    real = RUNNERS["audio_classification"]
    seen = []

    def run(pipe, inputs, params):
        hook = pipe.model.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append(kwargs["input_values"].shape[-1]),
            with_kwargs=True,
        )
        try:
            return real.run(pipe, inputs, params)
        finally:
            hook.remove()

    monkeypatch.setitem(RUNNERS, "audio_classification", dataclasses.replace(real, run=run))
    tasks.run("audio_classification", {"audio": tone(1.0, 8_000)}, {}, model=model)
    assert seen == [16_000]


def test_audio_classification_labels_and_top_k(tasks, models):
    model = models["audio_classification"]
    result = tasks.run("audio_classification", {"audio": tone(1.0, 16_000)}, {}, model=model)
    assert all(type(item) is AudioClassificationOutputElement for item in result)
    assert {item.label for item in result} == set(tiny.AUDIO_LABELS.values())
    assert_probabilities(result, total=1.0)
    top = tasks.run("audio_classification", {"audio": tone(1.0, 16_000)}, {"top_k": 1}, model=model)
    assert [item.label for item in top] == [result[0].label]


def test_text_to_speech_returns_wav_bytes(tasks, models):
    model = models["text_to_speech"]
    result = tasks.run("text_to_speech", {"text": "hello world"}, {}, model=model)
    assert isinstance(result, bytes)
    samples, rate = soundfile.read(io.BytesIO(result))
    assert rate == 16_000 and len(samples) > 0
    # VITS has no sampling loop: a temperature would be silently ignored, so it is refused.
    with pytest.raises(InputValidationError, match="`temperature`"):
        tasks.run("text_to_speech", {"text": "hello"}, {"temperature": 0.7}, model=model)


# -- tables -----------------------------------------------------------------------------

TABLE = {"repo": ["transformers", "datasets", "tokenizers"], "stars": ["36542", "4512", "3934"]}


def test_table_question_answering_cells_come_from_the_table(tasks, models):
    model = models["table_question_answering"]
    inputs = {"table": TABLE, "query": "How many stars does datasets have?"}
    result = tasks.run("table_question_answering", inputs, {}, model=model)
    assert type(result) is TableQuestionAnsweringOutputElement
    all_cells = {cell for column in TABLE.values() for cell in column}
    assert set(result.cells) <= all_cells
    for row, column in result.coordinates:
        assert 0 <= row < 3 and 0 <= column < 2
        assert list(TABLE.values())[column][row] in result.cells
    assert result.aggregator in ("NONE", "SUM", "AVERAGE", "COUNT")
    sequential = tasks.run("table_question_answering", inputs, {"sequential": True}, model=model)
    assert type(sequential) is TableQuestionAnsweringOutputElement
    with pytest.raises(InputValidationError, match="truncat"):
        tasks.run("table_question_answering", inputs, {"truncation": "longest_first"}, model=model)


def test_tabular_classification_casts_numbers_and_joins_columns(tasks, models):
    model = models["tabular_classification"]
    # Extra columns are ignored; numbers arrive as strings and a blank numeric cell is a
    # missing value (the model imputes it), not text that cannot be converted.
    table = {
        "note": ["x", "y", "z"],
        "colour": ["blue", "red", "red"],
        "petal": ["0.7", " 3.9 ", ""],
    }
    result = tasks.run("tabular_classification", {"table": table}, {}, model=model)
    assert result[:2] == ["small", "big"] and result[2] in ("small", "big")
    with pytest.raises(InputValidationError, match="petal"):
        tasks.run("tabular_classification", {"table": {"colour": ["red"]}}, {}, model=model)


def test_tabular_regression_predicts_floats(tasks, models):
    model = models["tabular_regression"]
    table = {"a": ["1", "0", "2.5"], "b": ["0", "1", "-1"]}
    result = tasks.run("tabular_regression", {"table": table}, {}, model=model)
    assert all(type(value) is float for value in result)
    assert result == pytest.approx([3.0, 4.0, 3.0], abs=1e-6)  # y = 2a + 3b + 1


# -- text -------------------------------------------------------------------------------


def test_text_classification_all_labels_then_top_k(tasks, models):
    model = models["text_classification"]
    result = tasks.run("text_classification", {"text": "I love it"}, {}, model=model)
    assert all(type(item) is TextClassificationOutputElement for item in result)
    assert {item.label for item in result} == set(tiny.TEXT_LABELS.values())
    assert_probabilities(result, total=1.0)
    top = tasks.run("text_classification", {"text": "I love it"}, {"top_k": 2}, model=model)
    assert [i.label for i in top] == [i.label for i in result[:2]]
    sigmoid = tasks.run(
        "text_classification", {"text": "I love it"}, {"function_to_apply": "sigmoid"}, model=model
    )
    assert sum(i.score for i in sigmoid) != pytest.approx(1.0, abs=1e-3)


def test_configured_task_model_runs_when_the_request_names_none(models):
    configured = LocalTasks(models={"text_classification": models["text_classification"]})
    assert configured.default_model("text_classification") == models["text_classification"]
    assert models["text_classification"] in configured.describe("text_classification")
    result = configured.run("text_classification", {"text": "I love it"}, {})
    assert {item.label for item in result} == set(tiny.TEXT_LABELS.values())
    with pytest.raises(InputValidationError):
        LocalTasks(models={"no_such_task": "x"})


def test_token_classification_aggregation_and_ignore_labels(tasks, models):
    model = models["token_classification"]
    text = "John lives in Paris"
    grouped = tasks.run("token_classification", {"text": text}, {}, model=model)
    for item in grouped:
        assert type(item) is TokenClassificationOutputElement
        assert item.entity is None and item.entity_group in {"PER", "LOC"}  # O ignored
        assert text[item.start : item.end].lower() == item.word
    tokens = tasks.run(
        "token_classification",
        {"text": text},
        {"aggregation_strategy": "none", "ignore_labels": ["nothing"]},
        model=model,
    )
    # Nothing ignored: one element per word piece, labelled with the raw B-/I-/O tags.
    assert [item.word for item in tokens] == ["john", "lives", "in", "paris"]
    assert {item.entity for item in tokens} <= set(tiny.NER_LABELS.values())
    assert all(item.entity_group is None for item in tokens)


def test_summarization_and_its_truncation(tasks, models):
    model = models["summarization"]
    result = tasks.run("summarization", {"text": "The tower is 324 metres tall."}, {}, model=model)
    assert type(result) is SummarizationOutput and isinstance(result.summary_text, str)
    long_text = "word " * 400  # past the tiny model's 128 positions
    truncated = tasks.run("summarization", {"text": long_text}, {}, model=model)
    assert type(truncated) is SummarizationOutput
    with pytest.raises(InputValidationError, match="tokens"):
        tasks.run(
            "summarization", {"text": long_text}, {"truncation": "do_not_truncate"}, model=model
        )
    with pytest.raises(InputValidationError, match="only_second"):
        tasks.run("summarization", {"text": "hi"}, {"truncation": "only_second"}, model=model)


def test_translation_refuses_languages_for_a_fixed_pair_model(tasks, models):
    model = models["translation"]
    result = tasks.run("translation", {"text": "Hello world"}, {}, model=model)
    assert type(result) is TranslationOutput and isinstance(result.translation_text, str)
    with pytest.raises(InputValidationError, match="src_lang") as caught:
        tasks.run("translation", {"text": "Hello"}, {"src_lang": "en_XX"}, model=model)
    assert caught.value.field == "src_lang"


CONTEXT = "John lives in Paris with his old cat and works at the central library."


def test_question_answering_spans_come_from_the_context(tasks, models):
    model = models["question_answering"]
    inputs = {"question": "Where does John live?", "context": CONTEXT}
    single = tasks.run("question_answering", inputs, {}, model=model)
    assert type(single) is QuestionAnsweringOutputElement  # one answer: one object
    assert CONTEXT[single.start : single.end] == single.answer and single.answer
    several = tasks.run("question_answering", inputs, {"top_k": 3}, model=model)
    assert isinstance(several, list) and len(several) == 3
    assert several[0].answer == single.answer
    for item in several:
        assert CONTEXT[item.start : item.end] == item.answer
        assert 0.0 < item.score <= 1.0
    assert [i.score for i in several] == sorted((i.score for i in several), reverse=True)


def test_question_answering_parameters(tasks, models):
    model = models["question_answering"]
    inputs = {"question": "Where does John live?", "context": CONTEXT}
    words = tasks.run("question_answering", inputs, {"top_k": 5, "max_answer_len": 1}, model=model)
    assert all(" " not in item.answer for item in words)  # one token → one whole word
    # One-token answers: the context has fewer than 20, so the "no answer" one makes the cut.
    params = {"top_k": 20, "max_answer_len": 1}
    without = tasks.run("question_answering", inputs, params, model=model)
    assert "" not in [item.answer for item in without]
    with_null = tasks.run(
        "question_answering", inputs, {**params, "handle_impossible_answer": True}, model=model
    )
    assert "" in [item.answer for item in with_null]
    with pytest.raises(InputValidationError, match="max_question_len"):
        tasks.run("question_answering", inputs, {"max_question_len": 2}, model=model)


def test_question_answering_align_to_words(tasks, models):
    model = models["question_answering"]
    context = "Qwertzuiop met Brahmaputrabibliothek near Xylophonistas."
    words = {"Qwertzuiop", "met", "Brahmaputrabibliothek", "near", "Xylophonistas"}
    inputs = {"question": "Who met whom?", "context": context}
    params = {"top_k": 20, "max_answer_len": 1}  # one word piece per answer
    aligned = tasks.run("question_answering", inputs, params, model=model)
    assert {item.answer for item in aligned} <= words | {"."}
    pieces = tasks.run(
        "question_answering", inputs, {**params, "align_to_words": False}, model=model
    )
    assert {item.answer for item in pieces} - words - {"."}, "rare words split into pieces"
    for item in pieces:
        assert context[item.start : item.end] == item.answer


def test_fill_mask_top_k_and_targets(tasks, models):
    model = models["fill_mask"]
    text = "Paris is the [MASK] of France."
    result = tasks.run("fill_mask", {"text": text}, {"top_k": 3}, model=model)
    assert len(result) == 3 and all(type(item) is FillMaskOutputElement for item in result)
    for item in result:
        assert isinstance(item.token, int) and 0.0 <= item.score <= 1.0
    targeted = tasks.run("fill_mask", {"text": text}, {"targets": ["capital", "city"]}, model=model)
    assert {item.token_str for item in targeted} == {"capital", "city"}
    assert {item.sequence for item in targeted} == {
        "paris is the capital of france.",
        "paris is the city of france.",
    }
    with pytest.raises(InputValidationError, match=r"\[MASK\]"):
        tasks.run("fill_mask", {"text": "no mask here"}, {}, model=model)


def test_zero_shot_classification_single_and_multi_label(tasks, models):
    model = models["zero_shot_classification"]
    inputs = {"text": "The match ended 2-1", "candidate_labels": ["sport", "politics", "food"]}
    single = tasks.run("zero_shot_classification", inputs, {}, model=model)
    assert all(type(item) is ZeroShotClassificationOutputElement for item in single)
    assert sorted(item.label for item in single) == ["food", "politics", "sport"]
    assert_probabilities(single, total=1.0)
    multi = tasks.run("zero_shot_classification", inputs, {"multi_label": True}, model=model)
    assert_probabilities(multi)
    assert sum(item.score for item in multi) != pytest.approx(1.0, abs=1e-3)


def test_zero_shot_classification_needs_an_nli_model(tasks, models):
    inputs = {"text": "hello", "candidate_labels": ["a", "b"]}
    with pytest.raises(InputValidationError, match="entailment"):
        tasks.run("zero_shot_classification", inputs, {}, model=models["text_classification"])


# -- embeddings (the bundled all-MiniLM-L6-v2) -----------------------------------------


def test_sentence_similarity_ranks_the_paraphrase_first(tasks):
    inputs = {
        "sentence": "A cat sits on the mat.",
        "other_sentences": ["A kitten is lying on a rug.", "Stock markets fell sharply today."],
    }
    scores = tasks.run("sentence_similarity", inputs, {})
    assert all(type(score) is float for score in scores) and len(scores) == 2
    assert scores[0] > scores[1] + 0.2
    assert all(-1.0 <= score <= 1.0 for score in scores)


def test_feature_extraction_shape_and_normalize(tasks):
    vector = tasks.run("feature_extraction", {"text": "hello world"}, {})
    assert isinstance(vector, np.ndarray) and vector.dtype == np.float32
    assert vector.shape == (1, 384)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)  # the model's Normalize
    raw = tasks.run("feature_extraction", {"text": "hello world"}, {"normalize": False})
    assert np.linalg.norm(raw) != pytest.approx(1.0, abs=1e-2)
    np.testing.assert_allclose(raw / np.linalg.norm(raw), vector, atol=1e-5)
    again = tasks.run("feature_extraction", {"text": "hello world"}, {"normalize": True})
    np.testing.assert_allclose(again, vector, atol=1e-6)


def test_feature_extraction_truncation(tasks):
    long_text = "alpha " + "beta " * 300 + "gamma"  # past MiniLM's 256 tokens
    right = tasks.run("feature_extraction", {"text": long_text}, {"truncate": True})
    left = tasks.run(
        "feature_extraction",
        {"text": long_text},
        {"truncate": True, "truncation_direction": "left"},
    )
    assert not np.allclose(left, right, atol=1e-4)  # a different end of the text was kept
    with pytest.raises(InputValidationError, match="256"):
        tasks.run("feature_extraction", {"text": long_text}, {"truncate": False})


def test_feature_extraction_prompt_name_must_exist(tasks):
    with pytest.raises(InputValidationError, match="prompt_name"):
        tasks.run("feature_extraction", {"text": "hi"}, {"prompt_name": "nope"})


def test_feature_extraction_on_a_bare_encoder_gives_token_embeddings(tasks, models):
    result = tasks.run(
        "feature_extraction", {"text": "hello world"}, {}, model=models["plain_bert"]
    )
    assert result.dtype == np.float32 and result.shape == (1, 4, 32)  # [CLS] hello world [SEP]


# -- model resolution and errors --------------------------------------------------------


def test_no_local_model_says_what_to_do(tasks):
    with pytest.raises(UnavailableError) as caught:
        tasks.run("image_classification", {"image": png()}, {})
    assert caught.value.user_message() == (
        "No local model for Image classification: enter a model directory or Hub id in the "
        "tab's Local model field, or switch the tab to Remote."
    )


def test_default_models_and_descriptions(tasks, models):
    assert tasks.default_model("feature_extraction") == str(tiny.minilm_dir())
    assert tasks.default_model("sentence_similarity") == str(tiny.minilm_dir())
    assert tasks.default_model("image_classification") is None
    assert "all-MiniLM-L6-v2" in tasks.describe("sentence_similarity")
    assert tasks.describe("image_classification").startswith("No local model for Image")
    assert "no local runner" in tasks.describe("text_to_image")
    model = models["image_classification"]
    assert tasks.describe("image_classification", model) == f"Local model: {model} (directory)."


@pytest.mark.parametrize("name", ["text_to_image", "audio_to_audio"])
def test_tasks_without_a_local_runner_point_to_remote(tasks, name):
    inputs = {"prompt": "a cat"} if name == "text_to_image" else {"audio": tone(0.5, 16_000)}
    with pytest.raises(UnavailableError, match="cannot run locally") as caught:
        tasks.run(name, inputs, {}, model="some/model")
    assert "Remote" in caught.value.user_message()


def test_a_model_of_the_wrong_kind_is_refused(tasks, models):
    with pytest.raises(InputValidationError, match="bert model") as caught:
        tasks.run("image_classification", {"image": png()}, {}, model=models["text_classification"])
    assert "image classification" in caught.value.message


def test_a_directory_without_a_model_is_refused(tasks, tmp_path):
    with pytest.raises(InputValidationError, match="no config.json"):
        tasks.run("text_classification", {"text": "hi"}, {}, model=str(tmp_path))


def test_a_missing_directory(tasks):
    with pytest.raises(UnavailableError, match="not found"):
        tasks.run("text_classification", {"text": "hi"}, {}, model="/no/such/model/dir")


def test_a_text_file_as_image_is_refused(tasks, models):
    with pytest.raises(InputValidationError, match="not an image"):
        tasks.run(
            "image_classification",
            {"image": b"just some text\n"},
            {},
            model=models["image_classification"],
        )


def test_unknown_and_out_of_range_parameters(tasks, models):
    model = models["text_classification"]
    with pytest.raises(InputValidationError, match="temperature"):
        tasks.run("text_classification", {"text": "hi"}, {"temperature": 1.0}, model=model)
    with pytest.raises(InputValidationError, match="top_k"):
        tasks.run("text_classification", {"text": "hi"}, {"top_k": 0}, model=model)


def test_a_hub_id_is_read_from_the_hf_cache(tasks, models, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0" * 40
    repo = tmp_path / "models--tiny--text-classifier"
    shutil.copytree(models["text_classification"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = tasks.run("text_classification", {"text": "hi"}, {}, model="tiny/text-classifier")
    assert {item.label for item in result} == set(tiny.TEXT_LABELS.values())
    assert "in the HF cache" in tasks.describe("text_classification", "tiny/text-classifier")


def test_a_hub_id_that_is_not_cached_and_no_hub(tasks, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    attempts = []

    def unreachable(repo_id, **kwargs):
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        attempts.append(repo_id)
        raise huggingface_hub.errors.LocalEntryNotFoundError("ConnectError: no route")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(UnavailableError) as caught:
        tasks.run("text_classification", {"text": "hi"}, {}, model="someone/some-model")
    assert attempts == ["someone/some-model"]  # a download was tried, once
    message = caught.value.user_message()
    assert "not present locally" in message and "cannot be reached" in message
    assert "Remote" in message


def test_a_hub_id_offline_mode_does_not_try_to_download(tasks, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    calls = []
    real = huggingface_hub.snapshot_download

    def spy(repo_id, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        return real(repo_id, **kwargs)

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    with pytest.raises(UnavailableError, match="cannot be reached"):
        tasks.run("text_classification", {"text": "hi"}, {}, model="someone/some-model")
    assert calls == [True]


def test_a_hub_id_that_does_not_exist(tasks, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    def missing(repo_id, **kwargs):
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        request = httpx.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
        raise huggingface_hub.errors.RepositoryNotFoundError(
            "404", response=httpx.Response(404, request=request)
        )

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(ModelNotFoundError, match="No model someone/typo"):
        tasks.run("text_classification", {"text": "hi"}, {}, model="someone/typo")


# -- the model cache --------------------------------------------------------------------


def test_least_recently_used_models_are_unloaded(models):
    local = LocalTasks(device="cpu")
    inputs = {
        "text_classification": {"text": "hi"},
        "token_classification": {"text": "John lives in Paris."},
        "fill_mask": {"text": "Paris is the [MASK] of France."},
        "question_answering": {"question": "Where does John live?", "context": CONTEXT},
        "image_classification": {"image": png()},
    }

    def use(name):
        local.run(name, inputs[name], {}, model=models[name])

    def held():
        return {
            name for name in inputs if local.describe(name, models[name]).endswith(", loaded).")
        }

    for name in list(inputs)[:4]:
        use(name)
    assert local_tasks.MAX_LOADED == 4 and held() == set(list(inputs)[:4])
    use("text_classification")  # used again: now the most recently used
    use("image_classification")  # a fifth model: the least recently used goes
    assert held() == {
        "text_classification",
        "fill_mask",
        "question_answering",
        "image_classification",
    }
    use("token_classification")  # back: fill_mask is now the least recently used
    assert "fill_mask" not in held() and "token_classification" in held()


def test_two_users_asking_for_one_model_load_it_once(models, monkeypatch):
    local = LocalTasks(device="cpu")
    loads = []
    second_started = threading.Event()
    real = RUNNERS["text_classification"]

    def slow_load(location, device):
        loads.append(location)
        second_started.wait(5)
        time.sleep(0.2)  # let the second request reach the cache while this one loads
        return real.load(location, device)

    monkeypatch.setitem(RUNNERS, "text_classification", dataclasses.replace(real, load=slow_load))
    model = models["text_classification"]
    results = []

    def ask():
        results.append(local.run("text_classification", {"text": "hi"}, {}, model=model))

    first = threading.Thread(target=ask)
    second = threading.Thread(target=lambda: (second_started.set(), ask()))
    first.start()
    second.start()
    first.join(60)
    second.join(60)
    assert len(results) == 2 and loads == [model]
