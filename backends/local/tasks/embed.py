"""Local runners for sentence similarity and feature extraction, on sentence-transformers.

One loaded model serves both tasks. A sentence-transformers directory (``modules.json``)
gives sentence embeddings, as Text-Embeddings-Inference does; a plain transformers encoder
gets mean pooling for similarity and returns its token embeddings for feature extraction,
as the Inference API's transformers pipeline does. ``normalize``, ``truncate``,
``truncation_direction`` and ``prompt_name`` follow TEI's meaning.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.errors import InputValidationError
from backends.local.tasks import base as r


@dataclass
class Embedder:
    """``model`` as saved; ``unnormalized`` the same modules without a trailing Normalize
    (shared weights), for ``normalize=False``."""

    model: Any
    unnormalized: Any
    sentence_model: bool  # a sentence-transformers directory, not a bare encoder


def load_embedder(location: str, device: str) -> Embedder:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    root = Path(location)
    sentence_model = (root / "modules.json").is_file()
    if not sentence_model and not any(
        (root / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    ):
        raise InputValidationError(
            f"{root.name} is neither a sentence-transformers model nor a text encoder with a "
            "tokenizer.",
            field="model",
            hint="Pick a sentence-transformers model (e.g. all-MiniLM-L6-v2).",
        )
    # A bare encoder gets a mean-pooling head (sentence-transformers' documented fallback).
    model = SentenceTransformer(location, device=device, local_files_only=True)
    model.eval()
    modules = list(model)
    unnormalized = model
    if modules and isinstance(modules[-1], Normalize):
        unnormalized = SentenceTransformer(modules=modules[:-1], device=device)
        unnormalized.eval()
    return Embedder(model, unnormalized, sentence_model)


@contextmanager
def _truncation_side(model, side: str | None):
    tokenizer = model.tokenizer
    previous = tokenizer.truncation_side
    if side:
        tokenizer.truncation_side = side
    try:
        yield
    finally:
        tokenizer.truncation_side = previous


def feature_extraction(embedder: Embedder, inputs, params) -> np.ndarray:
    text = r.text(inputs)
    normalize = params.get("normalize")
    model = embedder.unnormalized if normalize is False else embedder.model
    prompt_name = params.get("prompt_name")
    if prompt_name is not None:
        prompts = getattr(embedder.model, "prompts", None) or {}
        if prompt_name not in prompts:
            raise InputValidationError(
                f"`prompt_name` {prompt_name!r} is not one of this model's prompts"
                + (f" ({', '.join(sorted(prompts))})." if prompts else " (it has none)."),
                field="prompt_name",
                hint="Clear prompt_name or pick one of the model's prompts.",
            )
    _check_length(embedder, text, params, prompt_name)
    kwargs: dict[str, Any] = {"prompt_name": prompt_name} if prompt_name else {}
    with _truncation_side(model, params.get("truncation_direction")):
        if embedder.sentence_model:
            vectors = model.encode([text], normalize_embeddings=bool(normalize), **kwargs)
            return np.asarray(vectors, dtype=np.float32)  # (1, dim), as TEI answers
        # A bare encoder: token embeddings (1, tokens, dim), as the feature-extraction
        # pipeline answers.
        tokens = model.encode([text], output_value="token_embeddings", **kwargs)[0]
    array = tokens.float().cpu().numpy()[None]
    if normalize:
        array = array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)
    return array.astype(np.float32)


def _check_length(embedder: Embedder, text: str, params, prompt_name: str | None) -> None:
    """``truncate=False`` (TEI's default is to refuse, ours to truncate): too long is an error."""
    if params.get("truncate") is not False:
        return
    model = embedder.model
    prompt = (model.prompts or {}).get(prompt_name, "") if prompt_name else ""
    length = len(model.tokenizer(prompt + text)["input_ids"])
    if length > model.max_seq_length:
        raise InputValidationError(
            f"The text is {length} tokens; this model reads at most {model.max_seq_length}.",
            field="text",
            hint="Shorten it, or set truncate to let the model cut it.",
        )


def sentence_similarity(embedder: Embedder, inputs, params) -> list[float]:
    source = r.text(inputs, "sentence")
    raw = inputs.get("other_sentences")
    others = _lines(inputs) if isinstance(raw, str) else r.labels(inputs, "other_sentences")
    vectors = embedder.model.encode([source, *others], normalize_embeddings=True)
    vectors = np.asarray(vectors, dtype=np.float32)
    return [float(score) for score in vectors[1:] @ vectors[0]]


def _lines(inputs) -> list[str]:
    """``other_sentences`` typed as one string: one sentence per line."""
    lines = [line.strip() for line in str(inputs["other_sentences"]).splitlines() if line.strip()]
    if not lines:
        raise InputValidationError("`other_sentences` is empty.", field="other_sentences")
    return lines
