"""Conversations as files: export (versioned JSON, Markdown) and import (that JSON or a
plain OpenAI ``messages`` list), with the reason when a file is refused. The format is
documented in the README:
``{"format": "inference-playground.conversations", "version": 1, "conversations": [...]}``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backends import vision
from components.conversations import (
    FORMAT,
    VERSION,
    ExportFile,
    ImportError_,
    OpenAIMessage,
    snapshot,
    text_of,
    valid,
)

# Room for a conversation's images (up to 4 × 5 MB per message, base64 adds a third).
MAX_IMPORT_BYTES = 32 * 1024 * 1024

# ---------------------------------------------------------------- export / import


def export_data(records: Sequence[dict]) -> dict:
    return ExportFile(format=FORMAT, version=VERSION, conversations=list(records)).model_dump()


def export_json(records: Sequence[dict]) -> str:
    return json.dumps(export_data(records), ensure_ascii=False, indent=2)


def export_markdown(records: Sequence[dict]) -> str:
    parts = []
    for record in records:
        record = valid(record)
        if record is None:
            continue
        lines = [f"# {record['title']}", ""]
        target = record["target"]
        where = target["endpoint"] or target["mode"] or "local model"
        p = record["parameters"]
        lines.append(
            f"_Target: {where}"
            + (f" (model {target['model']})" if target["model"] else "")
            + f" · max_tokens {p['max_tokens']} · temperature {p['temperature']} · "
            f"top_p {p['top_p']} · seed {p['seed']}_"
        )
        lines.append("")
        if record["system_prompt"]:
            lines += ["**System:**", "", record["system_prompt"], ""]
        for message in record["messages"]:
            lines += [f"## {message['role'].capitalize()}", ""]
            if message["thinking"]:
                summary = message["thinking_title"] or "Thinking"
                lines += [f"<details><summary>{summary}</summary>", "", message["thinking"]]
                lines += ["", "</details>", ""]
            lines += [f"![image {i + 1}]({url})" for i, url in enumerate(message["images"])]
            lines.append(message["content"])
            if message["interrupted"]:
                lines.append("\n_(interrupted)_")
            if message["stats"]:
                lines += ["", f"_{message['stats']}_"]
            lines.append("")
        parts.append("\n".join(lines))
    return "\n---\n\n".join(parts)


def _summarise(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "the top level"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first.get('msg')}{more}"


def from_openai(messages: list, now: float | None = None) -> dict:
    """A plain OpenAI ``messages`` list → one conversation (the system message becomes
    the system prompt)."""
    now = time.time() if now is None else now
    try:
        parsed = [OpenAIMessage.model_validate(m) for m in messages]
    except ValidationError as exc:
        raise ImportError_(f"Not a messages list: {_summarise(exc)}.") from None
    system = "\n\n".join(text_of(m.content) for m in parsed if m.role in ("system", "developer"))
    chat = [
        {
            "role": m.role,
            "content": (
                [{"type": "text", "text": text_of(m.content)}, *image_parts]
                if (image_parts := _data_url_parts(m.content)) and m.role == "user"
                else text_of(m.content)
            ),
        }
        for m in parsed
        if m.role in ("user", "assistant")
    ]
    if not chat:
        raise ImportError_("The messages list has no user or assistant message.")
    record = snapshot({}, chat, system_prompt=system, now=now)
    return record


def _data_url_parts(content: Any) -> list[dict]:
    return [
        {"type": "image_url", "image_url": {"url": url}}
        for url in vision.image_urls(content)
        if url.startswith("data:")
    ]


def parse_import(raw: bytes, now: float | None = None) -> list[dict]:
    """An uploaded file → the conversations it holds. Raises ``ImportError_`` with a
    message for the visitor (nothing is changed then)."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise ImportError_(
            f"The file is {len(raw) / 1_048_576:.1f} MB; imports are limited to "
            f"{MAX_IMPORT_BYTES // 1_048_576} MB."
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportError_(f"The file is not JSON ({exc}).") from None
    if isinstance(data, list):
        return [from_openai(data, now)]
    if isinstance(data, dict) and isinstance(data.get("messages"), list) and "format" not in data:
        return [from_openai(data["messages"], now)]
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportError_(
            f'Not a conversations file: expected {{"format": "{FORMAT}", "version": {VERSION}, '
            '"conversations": [...]}} or an OpenAI messages list.'
        )
    if data.get("version") != VERSION:
        raise ImportError_(
            f"This file is version {data.get('version')!r} of the format; this playground "
            f"reads version {VERSION}."
        )
    try:
        parsed = ExportFile.model_validate(data)
    except ValidationError as exc:
        raise ImportError_(f"The file does not match the format: {_summarise(exc)}.") from None
    if not parsed.conversations:
        raise ImportError_("The file holds no conversations.")
    return [c.model_dump() for c in parsed.conversations]


def write_export(text: str, name: str) -> str:
    """Write an export to a fresh temporary file (for ``gr.File``); its path."""
    folder = Path(tempfile.mkdtemp(prefix="playground-export-"))
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def file_stem(record: dict | None) -> str:
    title = (record or {}).get("title") or "conversation"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in title.lower())
    return "-".join(filter(None, safe.split("-")))[:40] or "conversation"
