"""``RUNNERS``: how every task in ``backends.tasks.TASKS`` runs locally, in one table.

Each task maps to a ``Runner`` (its functions live in the family modules: ``pipeline``
for transformers pipelines, ``direct`` and ``vision`` for Auto classes, ``embed`` for
sentence-transformers, ``tabular`` for scikit-learn) or to a ``NoRunner`` saying why it
cannot run locally. tests/unit/test_task_registry.py checks that the table names every
task and nothing else. Imports go one way: this module → family modules → ``base``.
"""

from __future__ import annotations

from backends.local.tasks import direct, embed, pipeline, tabular, vision
from backends.local.tasks.base import NoRunner, Runner

_SEQ2SEQ = ("AutoModelForSeq2SeqLM",)

RUNNERS: dict[str, Runner | NoRunner] = {
    # -- image --------------------------------------------------------------------------
    "image_classification": pipeline.runner("image-classification", pipeline.image_classification),
    "object_detection": pipeline.runner("object-detection", pipeline.object_detection),
    "image_segmentation": pipeline.runner("image-segmentation", pipeline.image_segmentation),
    "image_to_text": Runner(
        "image-to-text",
        vision.load_image_to_text,
        vision.image_to_text,
        auto=("AutoModelForImageTextToText",),
    ),
    "text_to_image": NoRunner(
        "transformers has no text-to-image models (diffusion models need diffusers, which "
        "this playground does not bundle)"
    ),
    "image_to_image": Runner(
        "image-to-image",
        vision.load_image_to_image,
        vision.image_to_image,
        auto=("AutoModelForImageToImage",),
    ),
    "zero_shot_image_classification": pipeline.runner(
        "zero-shot-image-classification", pipeline.zero_shot_image_classification
    ),
    "visual_question_answering": Runner(
        "visual-question-answering",
        vision.load_visual_question_answering,
        vision.visual_question_answering,
        auto=("AutoModelForVisualQuestionAnswering",),
    ),
    "document_question_answering": pipeline.runner(
        "document-question-answering", pipeline.document_question_answering
    ),
    # -- audio --------------------------------------------------------------------------
    "automatic_speech_recognition": pipeline.runner(
        "automatic-speech-recognition", pipeline.automatic_speech_recognition
    ),
    "audio_classification": pipeline.runner("audio-classification", pipeline.audio_classification),
    "text_to_speech": pipeline.runner("text-to-audio", pipeline.text_to_speech),
    "audio_to_audio": NoRunner(
        "transformers has no audio-to-audio pipeline (speech enhancement and source "
        "separation models need SpeechBrain or Asteroid)"
    ),
    # -- tables -------------------------------------------------------------------------
    "table_question_answering": pipeline.runner(
        "table-question-answering", pipeline.table_question_answering
    ),
    "tabular_classification": Runner(
        "sklearn", tabular.load_tabular, tabular.tabular_classification
    ),
    "tabular_regression": Runner("sklearn", tabular.load_tabular, tabular.tabular_regression),
    # -- text ---------------------------------------------------------------------------
    "text_classification": pipeline.runner("text-classification", pipeline.text_classification),
    "token_classification": pipeline.runner("token-classification", pipeline.token_classification),
    "summarization": Runner("seq2seq", direct.load_seq2seq, direct.summarization, auto=_SEQ2SEQ),
    "translation": Runner("seq2seq", direct.load_seq2seq, direct.translation, auto=_SEQ2SEQ),
    "question_answering": Runner(
        "question-answering",
        direct.load_question_answering,
        direct.question_answering,
        auto=("AutoModelForQuestionAnswering",),
    ),
    "fill_mask": pipeline.runner("fill-mask", pipeline.fill_mask),
    "zero_shot_classification": pipeline.runner(
        "zero-shot-classification", pipeline.zero_shot_classification
    ),
    "sentence_similarity": Runner(
        "sentence-transformers", embed.load_embedder, embed.sentence_similarity
    ),
    "feature_extraction": Runner(
        "sentence-transformers", embed.load_embedder, embed.feature_extraction
    ),
}
