"""Image and audio results as widget values: boxes drawn with Pillow, segmentation masks
for ``gr.AnnotatedImage``, audio bytes for ``gr.Audio``. Pure functions like
``components.renderers`` (same ``(result, inputs) -> tuple`` contract)."""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from components.renderers import Labelled, as_list, audio_suffix, field

MAX_AUDIO_OUTPUTS = 4  # players shown for audio_to_audio (sources separated)
# Distinct, saturated colours (Kelly / Tableau-like), one per label in order of appearance.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (0, 190, 190),
    (240, 50, 230),
    (128, 128, 0),
    (170, 110, 40),
    (0, 0, 128),
    (128, 0, 0),
    (0, 128, 128),
)


def colour_for(label: str, seen: dict[str, tuple[int, int, int]]) -> tuple[int, int, int]:
    """The same colour for the same label within one result."""
    if label not in seen:
        seen[label] = PALETTE[len(seen) % len(PALETTE)]
    return seen[label]


# -- images -----------------------------------------------------------------------------


def to_image(data: bytes | Image.Image) -> Image.Image:
    if isinstance(data, Image.Image):
        return data.convert("RGB")
    return Image.open(io.BytesIO(data)).convert("RGB")


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _ink(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``colour``."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def line_width(image: Image.Image) -> int:
    """Box outline width: visible on a thumbnail and on a 4K photo alike."""
    return max(3, round(max(image.size) / 200))


def draw_boxes(image: Image.Image, elements: Sequence[Any]) -> Image.Image:
    """A copy of ``image`` with each detection's box drawn (inside its bounds) and a
    "label score" tag above it, one colour per label."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width, font = line_width(canvas), _font(max(12, round(max(canvas.size) / 40)))
    seen: dict[str, tuple[int, int, int]] = {}
    for element in elements:
        box, label = field(element, "box"), str(field(element, "label", ""))
        xmin, ymin = max(0, int(field(box, "xmin"))), max(0, int(field(box, "ymin")))
        xmax = min(canvas.width - 1, int(field(box, "xmax")))
        ymax = min(canvas.height - 1, int(field(box, "ymax")))
        colour = colour_for(label, seen)
        draw.rectangle((xmin, ymin, xmax, ymax), outline=colour, width=width)
        tag = f"{label} {float(field(element, 'score', 0.0)):.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), tag, font=font)
        tag_w, tag_h = right - left + 8, bottom - top + 6
        # Above the box when there is room, else just inside its top edge.
        y = ymin - tag_h if ymin >= tag_h else ymin + width
        draw.rectangle((xmin, y, xmin + tag_w, y + tag_h), fill=colour)
        draw.text((xmin + 4 - left, y + 3 - top), tag, fill=_ink(colour), font=font)
    return canvas


def boxes(result: Any, inputs: dict) -> tuple[Image.Image, pd.DataFrame]:
    """Object detection: the input image with the boxes drawn, and the detections' table."""
    elements = as_list(result)
    rows = []
    for element in elements:
        box = field(element, "box")
        rows.append(
            {
                "label": field(element, "label"),
                "score": round(float(field(element, "score", 0.0)), 4),
                **{k: int(field(box, k)) for k in ("xmin", "ymin", "xmax", "ymax")},
            }
        )
    table = pd.DataFrame(rows, columns=["label", "score", "xmin", "ymin", "xmax", "ymax"])
    return draw_boxes(to_image(inputs["image"]), elements), table


def decode_mask(mask: str | bytes | Image.Image, size: tuple[int, int]) -> np.ndarray:
    """A segmentation mask (the Hub sends a base64 PNG) as a 0/1 float array of ``size``
    (width, height) — resized with nearest neighbour when the model worked at another
    resolution."""
    if isinstance(mask, Image.Image):
        image = mask
    else:
        if isinstance(mask, str):
            try:
                mask = base64.b64decode(mask.split(",", 1)[-1])  # tolerate a data: URL
            except binascii.Error as exc:
                raise ValueError("a segmentation mask is not base64") from exc
        image = Image.open(io.BytesIO(mask))
    image = image.convert("L")
    if image.size != size:
        image = image.resize(size, Image.Resampling.NEAREST)
    return (np.asarray(image) > 127).astype(np.float32)


def masks(result: Any, inputs: dict) -> tuple[tuple[Image.Image, list[tuple[np.ndarray, str]]]]:
    """Image segmentation as a ``gr.AnnotatedImage`` value: the image and one
    ``(mask, label)`` per region (it colours them and draws the legend)."""
    image = to_image(inputs["image"])
    regions = []
    for element in as_list(result):
        score = field(element, "score")
        label = str(field(element, "label", ""))
        if score is not None:
            label = f"{label} ({float(score):.2f})"
        regions.append((decode_mask(field(element, "mask"), image.size), label))
    return ((image, regions),)


def image(result: Any, inputs: dict) -> tuple[Image.Image]:
    """A generated image (text-to-image, image-to-image), shown with a download button."""
    return (result if isinstance(result, Image.Image) else to_image(result),)


# -- audio ------------------------------------------------------------------------------


def audio_value(data: Any) -> tuple[int, np.ndarray] | str:
    """Audio bytes as ``(sampling_rate, samples)`` for ``gr.Audio``; bytes soundfile cannot
    decode are written to a temporary file the browser may still play."""
    if isinstance(data, tuple) and len(data) == 2:
        return data
    import soundfile

    raw = bytes(data)
    try:
        samples, rate = soundfile.read(io.BytesIO(raw), dtype="float32")
        return int(rate), samples
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        with tempfile.NamedTemporaryFile(
            prefix="playground-audio-", suffix=audio_suffix(raw), delete=False
        ) as file:
            file.write(raw)
        return file.name


def audio(result: Any, inputs: dict) -> tuple[Any]:
    """Text to speech: a player (with a download button) for the returned audio."""
    return (audio_value(result),)


def audio_list(result: Any, inputs: dict) -> tuple[Labelled | None, ...]:
    """Audio to audio: one player per returned source, named by its label; unused players
    hidden."""
    elements = as_list(result)[:MAX_AUDIO_OUTPUTS]
    players: list[Labelled | None] = [
        Labelled(audio_value(field(e, "blob")), str(field(e, "label") or f"output {i + 1}"))
        for i, e in enumerate(elements)
    ]
    return tuple(players + [None] * (MAX_AUDIO_OUTPUTS - len(players)))
