"""Local runners built on transformers pipelines (every task transformers 5 still has one
for), each converting the pipeline's output to the type InferenceClient returns.

Parameters map one to one onto pipeline keywords (they share InferenceClient's names);
where a model cannot honour one, the runner refuses it with the reason. ``runner`` wraps a
function here into the ``Runner`` that ``registry.RUNNERS`` lists.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
from collections.abc import Callable
from typing import Any

from huggingface_hub import (
    AudioClassificationOutputElement,
    AutomaticSpeechRecognitionOutput,
    DocumentQuestionAnsweringOutputElement,
    FillMaskOutputElement,
    ImageClassificationOutputElement,
    ImageSegmentationOutputElement,
    ObjectDetectionOutputElement,
    TableQuestionAnsweringOutputElement,
    TextClassificationOutputElement,
    TokenClassificationOutputElement,
    ZeroShotClassificationOutputElement,
    ZeroShotImageClassificationOutputElement,
)

from backends import media
from backends.errors import InputValidationError, UnavailableError
from backends.local.tasks import base as r

# Longer recordings are transcribed in 30 s windows (what Whisper was trained on; CTC
# models also keep memory flat this way).
ASR_CHUNK_SECONDS = 30


def runner(task: str, run: Callable[[Any, dict[str, Any], dict[str, Any]], Any]) -> r.Runner:
    """The ``Runner`` for a task on the transformers pipeline ``task`` (e.g.
    ``"image-classification"``): one loaded pipeline per pipeline task and model."""
    return r.Runner(task, functools.partial(r.load_pipeline, task), run, pipeline_task=task)


# -- image ------------------------------------------------------------------------------


def image_classification(pipe, inputs, params):
    out = pipe(r.image(inputs), **r.pick(params, "top_k", "function_to_apply"))
    return r.hub(ImageClassificationOutputElement, out)


def object_detection(pipe, inputs, params):
    picture = r.image(inputs)
    width, height = picture.size
    out = pipe(picture, **r.pick(params, "threshold"))
    for item in out:
        # Models predict boxes that overhang the border; the UI draws inside the image.
        box = item["box"]
        box["xmin"], box["xmax"] = (min(max(int(box[k]), 0), width) for k in ("xmin", "xmax"))
        box["ymin"], box["ymax"] = (min(max(int(box[k]), 0), height) for k in ("ymin", "ymax"))
    return r.hub(ObjectDetectionOutputElement, out)


def image_segmentation(pipe, inputs, params):
    kwargs = r.pick(params, "subtask", "threshold", "mask_threshold", "overlap_mask_area_threshold")
    subtask = kwargs.get("subtask")
    if subtask and not _segmentation_supports(pipe, subtask):
        raise InputValidationError(
            f"This model does not do {subtask} segmentation.",
            field="subtask",
            hint="Leave `subtask` empty to use what the model does.",
        )
    # InferenceClient decodes each mask into a PIL image (mode L); the pipeline's already is.
    return r.hub(ImageSegmentationOutputElement, pipe(r.image(inputs), **kwargs))


def _segmentation_supports(pipe, subtask: str) -> bool:
    processor = pipe.image_processor
    method = {
        "semantic": "post_process_semantic_segmentation",
        "instance": "post_process_instance_segmentation",
        "panoptic": "post_process_panoptic_segmentation",
    }[subtask]
    return hasattr(processor, method)


def zero_shot_image_classification(pipe, inputs, params):
    kwargs = {"candidate_labels": r.labels(inputs, "candidate_labels")}
    if "hypothesis_template" in params:
        kwargs["hypothesis_template"] = r.template(params["hypothesis_template"])
    return r.hub(ZeroShotImageClassificationOutputElement, pipe(r.image(inputs), **kwargs))


def document_question_answering(pipe, inputs, params):
    from transformers.pipelines.document_question_answering import apply_tesseract

    picture = r.image(inputs)
    question = r.text(inputs, "question")
    _check_ocr(params.get("lang"))
    # OCR here rather than inside the pipeline so "no text found" gets its own message.
    words, boxes = apply_tesseract(picture, lang=params.get("lang"), tesseract_config="")
    if not words:
        raise InputValidationError(
            "OCR found no text in this document image.",
            field="image",
            hint="Upload a sharper scan with readable text.",
        )
    kwargs = r.pick(
        params,
        "top_k",
        "doc_stride",
        "max_answer_len",
        "max_question_len",
        "max_seq_len",
        "handle_impossible_answer",
    )
    out = pipe(
        image=picture, question=question, word_boxes=list(zip(words, boxes, strict=True)), **kwargs
    )
    return r.hub(DocumentQuestionAnsweringOutputElement, out)


def _check_ocr(lang: str | None) -> None:
    hint = (
        "Install Tesseract (`apt-get install tesseract-ocr`) and `pip install "
        "pytesseract==0.3.13`, or switch the tab to Remote."
    )
    if importlib.util.find_spec("pytesseract") is None or shutil.which("tesseract") is None:
        raise UnavailableError(
            "Document question answering runs OCR (Tesseract) locally, and it is not installed.",
            hint=hint,
        )
    if lang:
        import pytesseract

        installed = set(pytesseract.get_languages(config=""))
        if any(part not in installed for part in lang.split("+")):
            raise InputValidationError(
                f"Tesseract has no data for `lang` {lang!r}; installed: "
                f"{', '.join(sorted(installed))}.",
                field="lang",
                hint="Install tesseract-ocr-<lang>, or pick an installed language.",
            )


# -- audio ------------------------------------------------------------------------------


def automatic_speech_recognition(pipe, inputs, params):
    rate = pipe.feature_extractor.sampling_rate
    samples = r.audio(inputs, rate)
    kwargs: dict[str, Any] = {}
    # Word timestamps from CTC alignments, segment timestamps from Whisper; other
    # sequence-to-sequence models have none.
    if pipe.type in ("ctc", "ctc_with_lm"):
        kwargs["return_timestamps"] = "word"
    elif pipe.type == "seq2seq_whisper":
        kwargs["return_timestamps"] = True
    if len(samples) > ASR_CHUNK_SECONDS * rate:
        kwargs["chunk_length_s"] = ASR_CHUNK_SECONDS
    out = pipe({"raw": samples, "sampling_rate": rate}, **kwargs)
    duration = len(samples) / rate
    chunks = None
    if out.get("chunks"):
        chunks = []
        for chunk in out["chunks"]:
            start, end = chunk["timestamp"]
            # Whisper leaves the last segment open-ended when the audio stops mid-segment.
            start = 0.0 if start is None else float(start)
            end = duration if end is None else float(end)
            chunks.append({"text": chunk["text"], "timestamp": [start, end]})
    return r.hub(AutomaticSpeechRecognitionOutput, {"text": out["text"], "chunks": chunks})


def audio_classification(pipe, inputs, params):
    rate = pipe.feature_extractor.sampling_rate
    samples = r.audio(inputs, rate)
    kwargs = r.pick(params, "top_k", "function_to_apply")
    out = pipe({"raw": samples, "sampling_rate": rate}, **kwargs)
    return r.hub(AudioClassificationOutputElement, out)


def text_to_speech(pipe, inputs, params):
    prompt = r.text(inputs)
    generate = r.pick(params, "do_sample", "temperature", "max_new_tokens")
    kwargs: dict[str, Any] = {}
    if generate:
        if not pipe.model.can_generate():
            # VITS, FastSpeech2…: one forward pass, no sampling loop to configure.
            r.refuse(
                generate,
                generate,
                f"{pipe.model.config.model_type} models synthesise speech in one pass, "
                "without sampling or tokens",
            )
        kwargs["generate_kwargs"] = generate
    out = pipe(prompt, **kwargs)
    return media.encode_wav(out["audio"], out["sampling_rate"])


# -- tables -----------------------------------------------------------------------------


def table_question_answering(pipe, inputs, params):
    cells = r.table(inputs)
    query = r.text(inputs, "query")
    kwargs = r.pick(params, "padding", "sequential", "truncation")
    if pipe.type == "tapas":
        truncation = kwargs.get("truncation")
        if truncation not in (None, "do_not_truncate"):
            raise InputValidationError(
                f"TAPAS models cannot truncate with {truncation!r}: they drop the rows that "
                "do not fit, or do not truncate.",
                field="truncation",
                hint="Leave `truncation` empty (drop rows) or pick do_not_truncate.",
            )
    else:
        r.refuse(kwargs, ["sequential"], "sequential answering is a TAPAS feature")
    out = pipe(table=cells, query=query, **kwargs)
    return r.hub(TableQuestionAnsweringOutputElement, out)


# -- text -------------------------------------------------------------------------------


def text_classification(pipe, inputs, params):
    # Every label unless top_k says otherwise, as the Inference API answers.
    out = pipe(r.text(inputs), top_k=params.get("top_k"), **r.pick(params, "function_to_apply"))
    return r.hub(TextClassificationOutputElement, out)


def token_classification(pipe, inputs, params):
    kwargs = r.pick(params, "ignore_labels", "stride")
    # "simple" (whole entities) is the Inference API's default; "none" gives raw tokens.
    kwargs["aggregation_strategy"] = params.get("aggregation_strategy", "simple")
    if kwargs["aggregation_strategy"] != "none" and not pipe.tokenizer.is_fast:
        raise InputValidationError(
            "Grouping tokens into entities needs a fast tokenizer, which this model lacks.",
            field="aggregation_strategy",
            hint="Pick aggregation_strategy none.",
        )
    out = pipe(r.text(inputs), **kwargs)
    for item in out:
        item.pop("index", None)  # the Inference API does not send token indices
    return r.hub(TokenClassificationOutputElement, out)


def fill_mask(pipe, inputs, params):
    sentence = r.text(inputs)
    mask = pipe.tokenizer.mask_token
    if mask not in sentence:
        raise InputValidationError(
            f"The text has no {mask}: this model's mask token.",
            field="text",
            hint=f"Write {mask} where the missing word goes.",
        )
    kwargs = r.pick(params, "top_k")
    if "targets" in params:
        kwargs["targets"] = params["targets"]
    out = pipe(sentence, **kwargs)
    if out and isinstance(out[0], list):
        raise InputValidationError(
            f"The text has several {mask} tokens; this runs one at a time.",
            field="text",
            hint=f"Keep a single {mask}.",
        )
    return r.hub(FillMaskOutputElement, out)


def zero_shot_classification(pipe, inputs, params):
    if pipe.entailment_id == -1:
        raise InputValidationError(
            "This model is not an NLI model: none of its labels is 'entailment'.",
            field="model",
            hint="Pick a model trained on NLI (e.g. an MNLI or XNLI fine-tune).",
        )
    kwargs = {"candidate_labels": r.labels(inputs, "candidate_labels")}
    if "hypothesis_template" in params:
        kwargs["hypothesis_template"] = r.template(params["hypothesis_template"])
    if "multi_label" in params:
        kwargs["multi_label"] = params["multi_label"]
    out = pipe(r.text(inputs), **kwargs)
    pairs = [
        {"label": label, "score": score}
        for label, score in zip(out["labels"], out["scores"], strict=True)
    ]
    return r.hub(ZeroShotClassificationOutputElement, pairs)
