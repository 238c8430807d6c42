"""Canned answers of an HF Inference endpoint, one per task of ``backends.tasks.TASKS``.

The Hugging Face Hub and its providers are unreachable from here, so these are the
*shapes* huggingface_hub 2.4's ``InferenceClient`` parses (its generated ``*Output`` types
and the raw bytes it returns), filled with plausible values: recorded shapes, not live
traffic. ``tests/server/fake_tasks_endpoint.py`` serves them; tests compare what the client
returns with the values here.

Media is generated with Pillow / soundfile at import, a few hundred bytes each:
``IMAGE_PNG`` (32×24) is the image tests upload, ``AUDIO_WAV`` (0.25 s, 16 kHz) the audio,
and the masks, generated image and speech are the same sizes so a UI can overlay them.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile
from PIL import Image, ImageDraw

IMAGE_SIZE = (32, 24)  # width, height
SAMPLE_RATE = 16_000


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _picture(colour: tuple[int, int, int]) -> Image.Image:
    """A small RGB picture: a background and a rectangle (the "cat")."""
    image = Image.new("RGB", IMAGE_SIZE, colour)
    ImageDraw.Draw(image).rectangle((4, 6, 19, 17), fill=(230, 140, 40))
    return image


def _mask(box: tuple[int, int, int, int]) -> str:
    """A segmentation mask as the HF Inference API sends it: a base64 PNG, mode "L",
    255 inside the region and 0 elsewhere."""
    mask = Image.new("L", IMAGE_SIZE, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return base64.b64encode(_png(mask)).decode()


def _sound(frequency: float, seconds: float, fmt: str) -> bytes:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


#: What tests upload: a PNG and a WAV that the project's upload checks accept.
IMAGE_PNG = _png(_picture((40, 90, 160)))
AUDIO_WAV = _sound(440.0, 0.25, "WAV")

#: What the endpoint sends back as media.
GENERATED_PNG = _png(_picture((20, 160, 60)))  # text_to_image
EDITED_PNG = _png(_picture((200, 200, 200)).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
SPEECH_FLAC = _sound(220.0, 0.25, "FLAC")  # text_to_speech: HF Inference answers FLAC
CLEAN_FLAC = _sound(440.0, 0.25, "FLAC")  # audio_to_audio outputs
NOISE_FLAC = _sound(3000.0, 0.25, "FLAC")

CAT_BOX = {"xmin": 4, "ymin": 6, "xmax": 19, "ymax": 17}
TABLE = {
    "Repository": ["Transformers", "Datasets", "Tokenizers"],
    "Stars": ["36542", "4512", "3934"],
    "Contributors": ["651", "77", "34"],
}


@dataclass(frozen=True)
class Binary:
    """A reply that is raw bytes, not JSON (generated image, speech)."""

    data: bytes
    content_type: str


#: task name → the body the endpoint answers with: JSON-able data, or ``Binary``.
PAYLOADS: dict[str, Any] = {
    # -- image ------------------------------------------------------------------------------
    "image_classification": [
        {"label": "tabby, tabby cat", "score": 0.8712},
        {"label": "Egyptian cat", "score": 0.0934},
        {"label": "tiger cat", "score": 0.0301},
    ],
    "object_detection": [
        {"score": 0.9982, "label": "cat", "box": CAT_BOX},
        {"score": 0.9561, "label": "remote", "box": {"xmin": 22, "ymin": 2, "xmax": 30, "ymax": 8}},
    ],
    "image_segmentation": [
        {"score": 0.9914, "label": "cat", "mask": _mask((4, 6, 19, 17))},
        {"score": 0.9735, "label": "couch", "mask": _mask((0, 18, 31, 23))},
    ],
    # image-to-text answers a list of one generation; InferenceClient returns the first.
    "image_to_text": [{"generated_text": "an orange cat sitting on a blue couch"}],
    "text_to_image": Binary(GENERATED_PNG, "image/png"),
    "image_to_image": Binary(EDITED_PNG, "image/png"),
    "zero_shot_image_classification": [
        {"label": "cat", "score": 0.9311},
        {"label": "dog", "score": 0.0689},
    ],
    "visual_question_answering": [
        {"answer": "orange", "score": 0.9412},
        {"answer": "brown", "score": 0.0367},
    ],
    "document_question_answering": [
        {"answer": "$154.06", "score": 0.9823, "start": 12, "end": 12},
    ],
    # -- audio ------------------------------------------------------------------------------
    "automatic_speech_recognition": {
        "text": " Hello world.",
        "chunks": [
            {"text": " Hello", "timestamp": [0.0, 0.12]},
            {"text": " world.", "timestamp": [0.12, 0.25]},
        ],
    },
    "audio_classification": [
        {"label": "Speech", "score": 0.9134},
        {"label": "Music", "score": 0.0622},
    ],
    "text_to_speech": Binary(SPEECH_FLAC, "audio/flac"),
    # Blobs are base64; InferenceClient decodes them to bytes.
    "audio_to_audio": [
        {
            "label": "speech",
            "content-type": "audio/flac",
            "blob": base64.b64encode(CLEAN_FLAC).decode(),
        },
        {
            "label": "noise",
            "content-type": "audio/flac",
            "blob": base64.b64encode(NOISE_FLAC).decode(),
        },
    ],
    # -- tables -----------------------------------------------------------------------------
    "table_question_answering": {
        "answer": "AVERAGE > 36542",
        "coordinates": [[0, 1]],
        "cells": ["36542"],
        "aggregator": "AVERAGE",
    },
    "tabular_classification": ["popular", "niche", "niche"],
    "tabular_regression": [118.5, 21.25, 9.75],
    # -- text -------------------------------------------------------------------------------
    # The text-classification pipeline answers one list per input: a list of lists.
    "text_classification": [
        [{"label": "POSITIVE", "score": 0.9998}, {"label": "NEGATIVE", "score": 0.0002}]
    ],
    "token_classification": [
        {"entity_group": "PER", "score": 0.9983, "word": "Sarah", "start": 11, "end": 16},
        {"entity_group": "LOC", "score": 0.9991, "word": "London", "start": 31, "end": 37},
    ],
    "summarization": [{"summary_text": "The tower is 324 metres tall, the tallest in Paris."}],
    "translation": [{"translation_text": "Je m'appelle Wolfgang et je vis à Berlin."}],
    "question_answering": {"answer": "Clara", "score": 0.9712, "start": 11, "end": 16},
    "fill_mask": [
        {
            "score": 0.9207,
            "token": 3007,
            "token_str": "capital",
            "sequence": "paris is the capital of france.",
        },
        {
            "score": 0.0219,
            "token": 2803,
            "token_str": "center",
            "sequence": "paris is the center of france.",
        },
    ],
    "zero_shot_classification": [
        {"label": "sport", "score": 0.8866},
        {"label": "politics", "score": 0.0795},
        {"label": "science", "score": 0.0339},
    ],
    "sentence_similarity": [0.7124, 0.1058],
    # One embedding per input text (here 1 × 8).
    "feature_extraction": [[0.0312, -0.2271, 0.1185, 0.4402, -0.0923, 0.0051, 0.3377, -0.1546]],
}
