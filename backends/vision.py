"""Images in chat messages: checked with Pillow, sent as OpenAI ``image_url`` content parts.

A user message with images is an OpenAI content-part list::

    [{"type": "text", "text": "What is this?"},
     {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]

Remote vision-language models take it as is: OpenAI-compatible servers, Inference
Providers, and TGI's Messages API (``/v1/chat/completions``), which turns each part into
its own ``![](data:...)`` markdown for the model's processor (idefics, llava-next, …;
https://huggingface.co/docs/text-generation-inference/basic_tutorials/visual_language_models
shows both: ``image_url`` parts for chat, the markdown for ``POST /``, which Chat does
not use).
Text-only models (the local one) refuse it before any compute (``refuse_images``).

Plain Python, no gradio: the chat tab builds parts here, the backends check them here.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from backends.errors import InputValidationError

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # per image, before base64
MAX_IMAGES = 4  # per message
# Pillow format → MIME type for the formats vision-language servers accept.
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
FORMATS = "PNG, JPEG, WebP or GIF"


def image_mime(data: bytes, *, name: str = "the file") -> str:
    """The MIME type of an encoded image, read by Pillow (not trusted from its name).
    Raises ``InputValidationError`` for anything Pillow cannot read or a format no
    vision-language server takes."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format or ""
            probe.verify()  # a truncated file opens but does not verify
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputValidationError(
            f"{name} is not an image Pillow can read.", hint=f"Attach a {FORMATS} image."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InputValidationError(f"{name} is too many pixels.", hint="Resize it.") from exc
    if kind not in MIME:
        raise InputValidationError(
            f"{name} is a {kind or 'unknown'} image; vision models take {FORMATS}.",
            hint="Convert it and attach it again.",
        )
    return MIME[kind]


def data_url(source: bytes | str | Path, *, name: str | None = None) -> str:
    """An image file (path or bytes) → ``data:<mime>;base64,...`` after the checks:
    at most ``MAX_IMAGE_BYTES``, readable by Pillow, a format servers accept."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputValidationError(
                f"The image {name!r} is gone.", hint="Attach it again."
            ) from exc
        if size > MAX_IMAGE_BYTES:
            raise InputValidationError(
                f"The image {name!r} is {size / 1_048_576:.1f} MB; the limit is "
                f"{MAX_IMAGE_BYTES // 1_048_576} MB per image.",
                hint="Resize or compress it and attach it again.",
            )
        data = path.read_bytes()
    else:
        data = bytes(source)
    label = f"The image {name!r}" if name else "The image"
    if len(data) > MAX_IMAGE_BYTES:
        raise InputValidationError(
            f"{label} is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{MAX_IMAGE_BYTES // 1_048_576} MB per image.",
            hint="Resize or compress it and attach it again.",
        )
    if not data:
        raise InputValidationError(f"{label} is empty.", hint=f"Attach a {FORMATS} image.")
    mime = image_mime(data, name=label if name else "This file")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


SAVED_MAX_BYTES = 300 * 1024  # a saved copy's size at most (the browser's storage is ~5-10 MB)
SAVED_MAX_SIDE = 1024


def saved_copy(url: str) -> str:
    """The copy of an image (a data URL) that a saved conversation keeps: itself when
    small, else downscaled to ``SAVED_MAX_SIDE`` px and re-encoded (JPEG, or PNG with
    transparency) until within ``SAVED_MAX_BYTES``, so chats with images fit in the
    browser's localStorage. A reopened chat sends this copy."""
    mime, data = decode_data_url(url)
    if len(data) <= SAVED_MAX_BYTES:
        return url
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)  # an animated GIF keeps its first frame
        alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        picture = image.convert("RGBA" if alpha else "RGB")
    side = SAVED_MAX_SIDE
    while True:
        copy = picture.copy()
        copy.thumbnail((side, side))
        out = io.BytesIO()
        if alpha:
            copy.save(out, format="PNG", optimize=True)
        else:
            copy.save(out, format="JPEG", quality=85)
        if out.tell() <= SAVED_MAX_BYTES or side <= 64:
            kind = "image/png" if alpha else "image/jpeg"
            return f"data:{kind};base64,{base64.b64encode(out.getvalue()).decode('ascii')}"
        side = side * 3 // 4


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:<mime>;base64,...`` → (mime, bytes). Raises ``InputValidationError``."""
    head, sep, payload = url.partition(",")
    if not (sep and head.startswith("data:") and head.endswith(";base64")):
        raise InputValidationError("An image is not a base64 data: URL.")
    try:
        return head[5:-7], base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputValidationError("An image's data: URL is not valid base64.") from exc


def check_count(count: int) -> None:
    if count > MAX_IMAGES:
        raise InputValidationError(
            f"{count} images attached; a message takes at most {MAX_IMAGES}.",
            hint="Remove some, or send them in separate messages.",
        )


def content_parts(text: str, images: Sequence[str]) -> str | list[dict[str, Any]]:
    """A user message's OpenAI content: the text alone (no images), else the text part
    then one ``image_url`` part per data URL."""
    if not images:
        return text
    check_count(len(images))
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return parts


def image_urls(content: Any) -> list[str]:
    """The image URLs in an OpenAI message content (a string has none)."""
    if not isinstance(content, list):
        return []
    urls = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url:
                urls.append(url)
    return urls


def has_images(messages: Iterable[dict[str, Any]]) -> bool:
    return any(image_urls(m.get("content")) for m in messages)


def refuse_images(messages: Iterable[dict[str, Any]], model: str) -> None:
    """For a text-only model: refuse a conversation holding images, before any compute."""
    if has_images(messages):
        raise InputValidationError(
            f"This model ({model}) does not read images: it is a text-only model.",
            field="messages",
            hint="Remove the images, or pick a remote vision-language model in the "
            "Connection panel.",
        )


def check_parts(content: Any) -> Any:
    """A message content for a remote model: a string, or a list of ``text`` and
    ``image_url`` parts (each data: URL checked again, count limited)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise InputValidationError(
            "A message's content must be text or a list of content parts.", field="messages"
        )
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise InputValidationError("A text part needs a `text` string.", field="messages")
        elif kind != "image_url":
            raise InputValidationError(
                f"Unknown content part type {kind!r} (text or image_url).", field="messages"
            )
    urls = image_urls(content)
    if len(urls) != sum(1 for p in content if p.get("type") == "image_url"):
        raise InputValidationError("An image_url part has no URL.", field="messages")
    check_count(len(urls))
    for url in urls:
        if url.startswith("data:"):
            mime, data = decode_data_url(url)
            if len(data) > MAX_IMAGE_BYTES:
                raise InputValidationError(
                    f"An image is {len(data) / 1_048_576:.1f} MB; the limit is "
                    f"{MAX_IMAGE_BYTES // 1_048_576} MB per image.",
                    field="messages",
                )
            if image_mime(data, name="An attached image") != mime:
                raise InputValidationError(
                    f"An image's data: URL says {mime} but holds another format.",
                    field="messages",
                )
    return content
