"""Task results (huggingface_hub's output types) as values for Gradio widgets.

Pure functions over numpy and pandas — no gradio here, so each is unit-tested with plain
objects (images and audio: ``components.render_media``). ``components.tasks.RENDERERS``
maps every ``Output`` kind of ``backends.tasks`` to one function
``(result, inputs) -> tuple``; the tuple's items are the values of the widgets
``components.task_widgets`` builds for that kind, in order. ``inputs`` are the task's inputs
in InferenceClient's shapes (image bytes, ``{column: [cells]}`` tables, …), so a renderer
can draw on the image or join predictions to the table.

An item ``None`` means "hide this widget" (no timestamps, no context to highlight);
``Labelled(value, label)`` also renames the widget (one audio player per separated source).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

HIGHLIGHT_CSS = "background-color: #fde68a; color: #111827; font-weight: 600"


@dataclass(frozen=True)
class Labelled:
    """A widget value that also sets the widget's label."""

    value: Any
    label: str


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` for huggingface_hub types, ``obj[name]`` for plain dicts."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def as_list(result: Any) -> list:
    """Tasks that answer one element or a list of them (QA with ``top_k``) as a list."""
    if result is None:
        return []
    return list(result) if isinstance(result, (list, tuple)) else [result]


# -- labels -----------------------------------------------------------------------------


def labels(result: Any, inputs: dict) -> tuple[dict[str, float]]:
    """Classification scores as ``{label: score}`` for ``gr.Label``. Fill-mask elements have
    no ``label``: their filled-in word (``token_str``) is the label."""
    scores: dict[str, float] = {}
    for element in as_list(result):
        label = field(element, "label")
        if label is None:
            label = str(field(element, "token_str", "")).strip() or str(field(element, "sequence"))
        scores[str(label)] = max(float(field(element, "score", 0.0)), scores.get(str(label), 0.0))
    return (scores,)


# -- text -------------------------------------------------------------------------------

_TEXT_FIELDS = ("generated_text", "summary_text", "translation_text", "text", "answer")


def text_of(result: Any) -> str:
    """The text field of a captioning / summary / translation / transcript output."""
    if isinstance(result, str):
        return result
    if isinstance(result, (list, tuple)):
        return "\n".join(text_of(item) for item in result)
    for name in _TEXT_FIELDS:
        value = field(result, name)
        if value is not None:
            return str(value)
    return str(result)


def text(result: Any, inputs: dict) -> tuple[str, pd.DataFrame | None]:
    """The text, and for speech recognition with chunks a timestamps table (else hidden)."""
    chunks = field(result, "chunks") if not isinstance(result, (str, list, tuple)) else None
    table = None
    if chunks:
        rows = []
        for chunk in chunks:
            stamp = list(field(chunk, "timestamp") or []) + [None, None]
            rows.append(
                {"start (s)": stamp[0], "end (s)": stamp[1], "text": field(chunk, "text", "")}
            )
        table = pd.DataFrame(rows, columns=["start (s)", "end (s)", "text"])
    return text_of(result).strip(), table


def highlight_span(context: str, start: int, end: int, label: str) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` segments: ``context`` with ``[start, end)`` labelled."""
    start, end = max(0, start), min(len(context), end)
    parts = [(context[:start], None), (context[start:end], label), (context[end:], None)]
    return [(segment, tag) for segment, tag in parts if segment]


def answers(result: Any, inputs: dict) -> tuple[pd.DataFrame, list | None]:
    """QA answers as a table (answer, score, and start/end when the task has them), best
    first; with a text context, the best answer highlighted in it (else hidden)."""
    elements = sorted(as_list(result), key=lambda e: -float(field(e, "score", 0.0)))
    has_span = any(field(e, "start") is not None for e in elements)
    columns = ["answer", "score", *(["start", "end"] if has_span else [])]
    rows = [
        {
            "answer": field(e, "answer"),
            "score": round(float(field(e, "score", 0.0)), 4),
            **({"start": field(e, "start"), "end": field(e, "end")} if has_span else {}),
        }
        for e in elements
    ]
    context = inputs.get("context")
    highlighted = None
    if context and elements and field(elements[0], "start") is not None:
        best = elements[0]
        highlighted = highlight_span(
            context, int(field(best, "start")), int(field(best, "end")), "answer"
        )
    return pd.DataFrame(rows, columns=columns), highlighted


def entities(result: Any, inputs: dict) -> tuple[list[tuple[str, str | None]], pd.DataFrame]:
    """Token classification: the text cut into ``(segment, entity or None)`` for
    ``gr.HighlightedText``, and the entities' table."""
    source = inputs.get("text", "")
    found = sorted(as_list(result), key=lambda e: int(field(e, "start", 0)))
    segments: list[tuple[str, str | None]] = []
    rows, cursor = [], 0
    for element in found:
        start, end = int(field(element, "start", 0)), int(field(element, "end", 0))
        label = field(element, "entity_group") or field(element, "entity") or "?"
        rows.append(
            {
                "entity": label,
                "word": field(element, "word"),
                "score": round(float(field(element, "score", 0.0)), 4),
                "start": start,
                "end": end,
            }
        )
        if start < cursor or end <= start:
            continue  # overlapping spans (aggregation "none"): the first one is shown
        if start > cursor:
            segments.append((source[cursor:start], None))
        segments.append((source[start:end], str(label)))
        cursor = end
    if cursor < len(source):
        segments.append((source[cursor:], None))
    table = pd.DataFrame(rows, columns=["entity", "word", "score", "start", "end"])
    return segments, table


# -- tables -----------------------------------------------------------------------------


def cell_styles(frame: pd.DataFrame, coordinates: Sequence[Sequence[int]]) -> pd.DataFrame:
    """CSS per cell: ``HIGHLIGHT_CSS`` at each ``[row, column]`` of ``coordinates``."""
    styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for row, column in coordinates:
        if 0 <= row < len(frame.index) and 0 <= column < len(frame.columns):
            styles.iat[row, column] = HIGHLIGHT_CSS
    return styles


def table_answer(result: Any, inputs: dict) -> tuple[str, Any]:
    """Table QA: the answer (with its aggregator when there is one) and the table with the
    answer's cells highlighted (a pandas ``Styler``, which ``gr.Dataframe`` displays)."""
    answer = str(field(result, "answer", ""))
    aggregator = field(result, "aggregator")
    if aggregator and aggregator.upper() != "NONE" and not answer.startswith(aggregator):
        answer = f"{aggregator} > {answer}"
    cells = field(result, "cells") or []
    if cells and ", ".join(cells) not in answer:
        answer += f"  (cells: {', '.join(cells)})"
    frame = pd.DataFrame(inputs["table"])
    coordinates = field(result, "coordinates") or []
    styler = frame.style.apply(lambda f: cell_styles(f, coordinates), axis=None)
    return answer, styler


def table_predictions(result: Any, inputs: dict) -> tuple[pd.DataFrame]:
    """Tabular classification / regression: the input rows with a ``prediction`` column
    joined — first, so it stays in view when the table scrolls sideways."""
    frame = pd.DataFrame(inputs["table"])
    predictions = list(as_list(result))
    # A model that answers fewer rows than it was given leaves the rest empty, visibly.
    predictions += [None] * (len(frame.index) - len(predictions))
    frame.insert(0, "prediction", predictions[: len(frame.index)])
    return (frame,)


def scores(result: Any, inputs: dict) -> tuple[pd.DataFrame]:
    """Sentence similarity: each sentence with its score, most similar first."""
    sentences = list(inputs.get("other_sentences") or [])
    values = [float(v) for v in as_list(result)]
    frame = pd.DataFrame(
        {"sentence": sentences[: len(values)], "score": [round(v, 4) for v in values]}
    )
    frame = frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    return (frame,)


def embedding(result: Any, inputs: dict) -> tuple[str, pd.DataFrame]:
    """Feature extraction: a line with the shape (and norm), the first values, and the
    vector as a ``dimension``/``value`` frame for a line plot."""
    array = np.asarray(result, dtype=np.float32)
    vector = array.reshape(-1, array.shape[-1])[0] if array.ndim > 1 else array.reshape(-1)
    rows = array.reshape(-1, array.shape[-1]).shape[0] if array.ndim > 1 else 1
    preview = ", ".join(f"{v:.4f}" for v in vector[:8])
    more = ", …" if vector.size > 8 else ""
    which = f" (row 1 of {rows} shown: one vector per token)" if rows > 1 else ""
    summary = (
        f"**shape {tuple(array.shape)}** · {vector.size} dimensions · "
        f"L2 norm {float(np.linalg.norm(vector)):.4f}{which}\n\n`[{preview}{more}]`"
    )
    frame = pd.DataFrame({"dimension": np.arange(vector.size), "value": vector.astype(float)})
    return summary, frame


_AUDIO_MAGIC = (
    (b"RIFF", ".wav"),
    (b"fLaC", ".flac"),
    (b"OggS", ".ogg"),
    (b"ID3", ".mp3"),
    (b"\xff\xfb", ".mp3"),
    (b"\xff\xf3", ".mp3"),
    (b"\xff\xf2", ".mp3"),
)


def audio_suffix(data: bytes) -> str:
    """A file extension for encoded audio, from its first bytes (``.bin`` if unknown)."""
    for magic, suffix in _AUDIO_MAGIC:
        if data.startswith(magic):
            return suffix
    if data[4:8] == b"ftyp":
        return ".m4a"
    return ".bin"


# -- the raw result ---------------------------------------------------------------------

_MAX_STRING = 200  # base64 masks and blobs are summarized in the JSON view


def to_jsonable(value: Any) -> Any:
    """The raw result for ``gr.JSON``: hub types as dicts, arrays as lists (large ones
    summarized), images and bytes described, long strings cut."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.size <= 4096:
            return value.tolist()
        return {"shape": list(value.shape), "first values": value.reshape(-1)[:16].tolist()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Image.Image):
        return {"image": f"{value.width}×{value.height}", "mode": value.mode}
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"bytes": len(data), "format": audio_suffix(data).lstrip(".")}
    if isinstance(value, str) and len(value) > _MAX_STRING:
        return f"{value[:_MAX_STRING]}… ({len(value)} characters)"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dict__"):
        return to_jsonable(vars(value))
    return str(value)
