"""Conversations that last: saved in the visitor's own browser, listed in a sidebar,
exported and imported as files.

Two ``gr.BrowserState`` values (encrypted localStorage, per browser and origin) hold the
visitor's work: ``store`` (every saved conversation, newest first) and ``current`` (the
open one, written while a reply streams, about once a second). On page load ``current``
is folded back into ``store``; a reply that was still streaming is marked interrupted.

Everything here but ``render``/``wire`` is plain Python on dicts (unit-tested). The file
format (``export_json``, ``parse_import``) is documented in the README:
``{"format": "inference-playground.conversations", "version": 1, "conversations": [...]}``.
A user message keeps its images as data URLs (``images``), a reply its thinking
(``thinking``, ``thinking_title``): optional fields, so files without them still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from backends import vision
from backends.errors import InputValidationError
from components.thinking import is_thinking

FORMAT = "inference-playground.conversations"
VERSION = 1
# Room for a conversation's images (up to 4 × 5 MB per message, base64 adds a third).
MAX_IMPORT_BYTES = 32 * 1024 * 1024
MAX_CONVERSATIONS = 500  # the oldest beyond this are dropped from the browser's store
STORE_KEY = "playground-conversations"
CURRENT_KEY = "playground-current"
SECRET_ENV = "PLAYGROUND_STORAGE_SECRET"
SECRET_FILE = "storage-secret"
INTERRUPTED = "\n\n_(interrupted)_"
SAVE_INTERVAL_S = 1.0  # a streaming reply is saved at most this often (and at its end)
TITLE_CHARS = 60

# The chat tab's settings a conversation keeps, in widget order (see ``chat.render``).
PARAMETERS = ("max_tokens", "temperature", "top_p", "seed", "stop")
STRUCTURED = ("format_kind", "format_value", "tools_text", "tool_choice")
TARGET = ("mode", "endpoint", "provider", "model")  # never the token


# ---------------------------------------------------------------- the format (pydantic)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Version(_Strict):
    """An earlier reply kept when the reply was retried (a branch)."""

    content: str
    stats: str = ""
    thinking: str = ""
    thinking_title: str = ""


def _image_url(url: str) -> str:
    """A saved image: a base64 ``data:`` URL of a type vision models take, within the limit."""
    head, _, payload = url.partition(",")
    if head.removeprefix("data:").removesuffix(";base64") not in vision.MIME.values():
        raise ValueError(f"an image must be a data:<{'|'.join(vision.MIME.values())}>;base64 URL")
    if len(payload) > (vision.MAX_IMAGE_BYTES + 2) // 3 * 4:
        raise ValueError(f"an image is over {vision.MAX_IMAGE_BYTES // 1_048_576} MB")
    return url


ImageURL = Annotated[str, AfterValidator(_image_url)]


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: str
    stats: str = ""  # the reply's stats line (tokens, first token, tokens/s, finish)
    # A user message's images, as ``data:<mime>;base64,...`` URLs (what the model was sent).
    images: list[ImageURL] = Field(default_factory=list, max_length=vision.MAX_IMAGES)
    thinking: str = ""  # a reasoning model's thinking before this reply (never sent back)
    thinking_title: str = ""  # its collapsible block's title, e.g. "Thinking · 42 tokens"
    interrupted: bool = False  # the page went away while this reply streamed
    versions: list[Version] = Field(default_factory=list)  # other replies (branches)
    version: int = 0  # which of versions + [this one] is shown: len(versions) = this one


class Parameters(_Strict):
    max_tokens: int = Field(512, ge=1, le=4096)
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.95, ge=0.05, le=1)
    seed: int | None = Field(-1, ge=-1)
    stop: str = ""


class Structured(_Strict):
    format_kind: Literal["text", "json_schema", "regex"] = "text"
    format_value: str = ""
    tools_text: str = ""
    tool_choice: Literal["none", "auto", "required"] = "none"


class Target(_Strict):
    mode: str = ""
    endpoint: str = ""
    provider: str = "auto"
    model: str = ""


class Conversation(_Strict):
    id: str = Field(min_length=1, max_length=64)
    title: str = Field("", max_length=200)
    created: float = 0.0
    updated: float = 0.0
    system_prompt: str = ""
    messages: list[Message] = Field(default_factory=list)
    parameters: Parameters = Field(default_factory=Parameters)
    structured: Structured = Field(default_factory=Structured)
    target: Target = Field(default_factory=Target)
    streaming: bool = False  # a reply was streaming when this was saved


class ExportFile(_Strict):
    format: Literal["inference-playground.conversations"]
    version: Literal[1]
    conversations: list[Conversation]


def _images(content: Any) -> list[str]:
    """A history message's images as data URLs: Gradio file parts (read and checked from
    disk; an unreadable one is left out) and OpenAI ``image_url`` data URLs, each as its
    saved copy (``vision.saved_copy``: large ones downscaled to fit the browser)."""
    parts = content if isinstance(content, (list, tuple)) else [content]
    urls = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            for url in vision.image_urls([part]):
                try:
                    urls.append(vision.saved_copy(url))
                except (InputValidationError, OSError, ValueError):
                    pass
            continue
        file = part.get("file") if part.get("type") == "file" else part
        path = file.get("path") if isinstance(file, dict) else None
        if isinstance(path, str) and path:
            try:
                urls.append(vision.saved_copy(vision.data_url(path)))
            except (InputValidationError, OSError, ValueError):
                pass
    return urls[: vision.MAX_IMAGES]


def _image_count(content: Any) -> int:
    parts = content if isinstance(content, (list, tuple)) else [content]
    return sum(
        1
        for p in parts
        if isinstance(p, dict) and (p.get("type") in ("file", "image_url") or "path" in p)
    )


class OpenAIMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list | None = None


class ImportError_(ValueError):
    """A file the import refuses; the message says why (shown to the visitor)."""


# ---------------------------------------------------------------- records


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def text_of(content: Any) -> str:
    """Message content (a string, a part, or Gradio 6's list of parts) → its text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", "") or "")
    if isinstance(content, (list, tuple)):
        return "".join(text_of(part) for part in content)
    return "" if content is None else str(content)


def title_from(messages: Sequence[dict]) -> str:
    for message in messages:
        if message.get("role") == "user":
            text = " ".join(text_of(message.get("content")).split())
            if text:
                return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
    return "New chat"


def valid(record: Any) -> dict | None:
    """``record`` as a clean conversation dict, or None when it is not one."""
    if not isinstance(record, dict) or not record:
        return None
    try:
        return Conversation.model_validate(record).model_dump()
    except ValidationError:
        return None


def conversations(store: Any) -> list[dict]:
    """The store's conversations (invalid entries dropped), newest first."""
    items = store.get("conversations", []) if isinstance(store, dict) else []
    records = [r for r in (valid(item) for item in items or []) if r is not None]
    return sorted(records, key=lambda r: r["updated"], reverse=True)


def make_store(records: Sequence[dict]) -> dict:
    ordered = sorted(records, key=lambda r: r["updated"], reverse=True)
    return {"conversations": list(ordered[:MAX_CONVERSATIONS])}


def upsert(store: Any, record: dict | None) -> dict:
    """The store with ``record`` saved (replacing the one with its id); an empty
    conversation (no messages) is not saved."""
    records = conversations(store)
    if not record or not record.get("messages"):
        return make_store(records)
    records = [r for r in records if r["id"] != record["id"]]
    return make_store([record, *records])


def remove(store: Any, conversation_id: str) -> dict:
    return make_store([r for r in conversations(store) if r["id"] != conversation_id])


def find(store: Any, conversation_id: str | None) -> dict | None:
    return next((r for r in conversations(store) if r["id"] == conversation_id), None)


def strip_mark(text: str) -> tuple[str, bool]:
    """A displayed reply → (its text, whether it carried the interrupted mark)."""
    if text.endswith(INTERRUPTED):
        return text[: -len(INTERRUPTED)], True
    return text, False


def snapshot(
    current: Any,
    history: Sequence[dict],
    *,
    stats: str | None = None,
    system_prompt: str = "",
    parameters: dict | None = None,
    structured: dict | None = None,
    target: dict | None = None,
    streaming: bool = False,
    now: float | None = None,
) -> dict:
    """The open conversation as a record: the chat's messages (``history``, Gradio's
    message dicts) and the settings, keeping what ``current`` knew (id, title, created,
    each message's stats and kept versions). ``stats``: the last reply's stats line."""
    now = time.time() if now is None else now
    before = valid(current) or {}
    old_messages = before.get("messages", [])
    messages: list[dict] = []
    thought: dict | None = None  # a thinking block waiting for the reply it precedes
    for item in history or []:
        role = item.get("role")
        if role not in ("user", "assistant"):
            continue
        if role == "assistant" and is_thinking(item):
            thought = item
            continue
        index = len(messages)
        old = old_messages[index] if index < len(old_messages) else None
        text, interrupted = strip_mark(text_of(item.get("content")))
        message = Message(role=role, content=text, interrupted=interrupted).model_dump()
        if role == "user":
            count = _image_count(item.get("content"))
            same = old is not None and old["role"] == "user" and old["content"] == text
            if count and same and len(old["images"]) == count:
                message["images"] = old["images"]  # unchanged: not read from disk again
            elif count:
                message["images"] = _images(item.get("content"))
        elif thought is not None:
            message["thinking"] = text_of(thought.get("content"))
            message["thinking_title"] = str((thought.get("metadata") or {}).get("title", ""))
        thought = None
        if old is not None and old["role"] == role:
            message["versions"] = old["versions"]
            if old["content"] == text:
                message["stats"] = old["stats"]
                message["interrupted"] = interrupted or old["interrupted"]
                message["version"] = old["version"]
            else:  # a new reply (or an edited message): the last of its versions
                message["version"] = len(old["versions"])
        messages.append(message)
    if stats is not None and messages and messages[-1]["role"] == "assistant":
        messages[-1]["stats"] = stats
    record = {
        "id": before.get("id") or new_id(),
        "title": before.get("title") or title_from(messages),
        "created": before.get("created") or now,
        "updated": now,
        "system_prompt": system_prompt or "",
        "messages": messages,
        "parameters": _section(Parameters, _clean_parameters(parameters or {})),
        "structured": _section(Structured, structured or {}),
        "target": _section(Target, target or {}),
        "streaming": streaming,
    }
    return valid(record) or {**before, "messages": messages, "updated": now}


def _section(model: type[BaseModel], values: dict) -> dict:
    """``values`` as ``model`` (missing or refused fields take their defaults)."""
    values = {k: v for k, v in values.items() if v is not None and k in model.model_fields}
    try:
        return model.model_validate(values).model_dump()
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        kept = {k: v for k, v in values.items() if k not in bad}
        return model.model_validate(kept).model_dump()


def _clean_parameters(values: dict) -> dict:
    out = {k: v for k, v in values.items() if k in PARAMETERS}
    kinds = {"max_tokens": int, "temperature": float, "top_p": float, "seed": int}
    for name, kind in kinds.items():
        try:
            out[name] = kind(out[name])
        except (KeyError, TypeError, ValueError):
            out.pop(name, None)
    out["stop"] = out.get("stop") or ""
    return out


def _every(message: dict) -> list[dict]:
    """All versions of a reply in order; the shown one at index ``version``."""
    shown = {
        "content": message["content"],
        "stats": message["stats"],
        "thinking": message["thinking"],
        "thinking_title": message["thinking_title"],
    }
    v = min(message["version"], len(message["versions"]))
    return [*message["versions"][:v], shown, *message["versions"][v:]]


def keep_version(current: Any, index: int) -> dict:
    """Retry: the reply at ``index`` is about to be replaced; keep it (and its other
    versions) so the next reply becomes one more version (a branch one can go back to)."""
    record = valid(current)
    if record is None or index >= len(record["messages"]):
        return record or {}
    old = record["messages"][index]
    if old["role"] != "assistant":
        return record
    every = [Version(**v).model_dump() for v in _every(old)]
    record["messages"] = record["messages"][:index] + [
        {
            **old,
            "versions": every,
            "content": "",
            "stats": "",
            "thinking": "",
            "thinking_title": "",
            "version": len(every),
        }
    ]
    return record


def switch_version(record: Any, step: int) -> dict:
    """Show the previous (``step`` -1) or next (+1) version of the last reply."""
    record = valid(record)
    if record is None or not record["messages"] or record["messages"][-1]["role"] != "assistant":
        return record or {}
    last = record["messages"][-1]
    every = _every(last)
    target = last["version"] + step
    if not last["versions"] or not 0 <= target < len(every):
        return record
    chosen = every[target]
    last.update(
        content=chosen["content"],
        stats=chosen["stats"],
        thinking=chosen["thinking"],
        thinking_title=chosen["thinking_title"],
        versions=every[:target] + every[target + 1 :],
        version=target,
        interrupted=False,
    )
    record["updated"] = time.time()
    return record


def version_label(record: Any) -> str:
    """The last reply's place among its versions, e.g. "2/3" (shown between the ‹ and ›
    buttons: "‹ 2/3 ›"); "" when it has none."""
    record = valid(record)
    if not record or not record["messages"] or record["messages"][-1]["role"] != "assistant":
        return ""
    last = record["messages"][-1]
    if not last["versions"]:
        return ""
    return f"{last['version'] + 1}/{len(last['versions']) + 1}"


def fold_current(store: Any, current: Any) -> tuple[dict, dict]:
    """Page load: the open conversation saved into the store; a reply that was still
    streaming is kept up to where it got and marked interrupted."""
    record = valid(current)
    if record is None or not record["messages"]:
        return make_store(conversations(store)), {}
    if record["streaming"]:
        record["streaming"] = False
        last = record["messages"][-1]
        if last["role"] == "assistant":
            last["interrupted"] = True
    stored = find(store, record["id"])
    if stored is not None and stored["updated"] > record["updated"]:
        record = stored  # a later save from another tab of this browser wins
    return upsert(store, record), record


def image_file(url: str) -> str | None:
    """A saved image (data URL) as a file the Chatbot can show, written once per content
    under the temporary directory (Gradio serves files from there); None if unreadable."""
    try:
        mime, data = vision.decode_data_url(url)
    except InputValidationError:
        return None
    suffix = {v: k.lower() for k, v in vision.MIME.items()}.get(mime, "img")
    folder = Path(tempfile.gettempdir()) / "playground-images"
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.{suffix}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(path)


def chat_messages(record: Any) -> list[dict]:
    """A record's messages for the Chatbot (an interrupted reply carries the mark; a
    reply's thinking comes first as a collapsed "Thinking" block; images as files)."""
    record = valid(record) or {"messages": []}
    out: list[dict] = []
    for m in record["messages"]:
        text = m["content"] + (INTERRUPTED if m["interrupted"] else "")
        if m["thinking"]:
            title = m["thinking_title"] or "Thinking"
            metadata = {"title": title, "status": "done"}
            out.append({"role": "assistant", "content": m["thinking"], "metadata": metadata})
        files = [path for path in map(image_file, m["images"]) if path]
        if files:
            content: Any = [{"path": path} for path in files] + ([text] if text else [])
            out.append({"role": m["role"], "content": content})
        else:
            out.append({"role": m["role"], "content": text})
    return out


def last_stats(record: Any) -> str:
    record = valid(record) or {"messages": []}
    for message in reversed(record["messages"]):
        if message["role"] == "assistant":
            return message["stats"]
    return ""


def choices(store: Any, query: str = "") -> list[tuple[str, str]]:
    """The sidebar's (label, id) list, newest first, filtered by ``query`` (title and
    message text, case-insensitive)."""
    query = (query or "").strip().lower()
    out = []
    for record in conversations(store):
        if query:
            haystack = " ".join([record["title"], *(m["content"] for m in record["messages"])])
            if query not in haystack.lower():
                continue
        out.append((record["title"] or "New chat", record["id"]))
    return out


def rename(store: Any, current: Any, title: str) -> tuple[dict, dict]:
    """Rename the open conversation (an empty title goes back to the first message)."""
    record = valid(current)
    if record is None or not record["messages"]:
        return make_store(conversations(store)), record or {}
    record["title"] = " ".join((title or "").split())[:200] or title_from(record["messages"])
    record["updated"] = time.time()
    return upsert(store, record), record


# ---------------------------------------------------------------- storage secret


def storage_secret(cache_dir: Path) -> str:
    """``PLAYGROUND_STORAGE_SECRET``, else one generated once and kept in ``cache_dir``
    (so saved conversations stay readable across restarts)."""
    value = os.environ.get(SECRET_ENV, "").strip()
    if value:
        return value
    path = Path(cache_dir) / SECRET_FILE
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except OSError:
        pass
    value = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
    except FileExistsError:
        return path.read_text().strip() or value
    except OSError:
        pass  # a read-only cache: this process's secret only
    return value


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


# ---------------------------------------------------------------- the UI


def settings_of(system_prompt: str, form: dict, connection: Any) -> dict:
    """The chat tab's settings as ``snapshot`` keywords (``connection``: a ``Connection``;
    its token is never read)."""
    target = {
        name: getattr(connection, name, "") or ("auto" if name == "provider" else "")
        for name in TARGET
    }
    return dict(
        system_prompt=system_prompt or "",
        parameters={k: form.get(k) for k in PARAMETERS},
        structured={k: form.get(k) for k in STRUCTURED},
        target=target,
    )


@dataclass
class Sidebar:
    store: Any
    current: Any
    search: Any
    listing: Any
    new: Any
    title: Any
    rename: Any
    delete: Any
    clear_all: Any
    confirm_box: Any
    confirm: Any
    cancel: Any
    export_one: Any
    export_all: Any
    export_md: Any
    file: Any
    upload: Any
    note: Any
    share: Any
    share_chat: Any
    share_url: Any


def render_sidebar(secret: str | None) -> Sidebar:
    """The conversations column (call inside a ``gr.Column``)."""
    import gradio as gr

    store = gr.BrowserState({"conversations": []}, storage_key=STORE_KEY, secret=secret)
    current = gr.BrowserState({}, storage_key=CURRENT_KEY, secret=secret)
    with gr.Row():
        new = gr.Button("+ New chat", size="sm", variant="primary", elem_id="new-chat")
    search = gr.Textbox(
        placeholder="Search conversations", show_label=False, elem_id="conversation-search"
    )
    listing = gr.Radio([], label="Conversations", elem_id="conversation-list", container=False)
    with gr.Accordion("This conversation", open=False, elem_id="conversation-actions"):
        title = gr.Textbox(label="Title", elem_id="conversation-title", max_lines=1)
        with gr.Row():
            rename = gr.Button("Rename", size="sm", elem_id="rename-chat")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-chat")
        with gr.Row():
            share_chat = gr.Checkbox(
                True, label="with the conversation", elem_id="share-with-chat", min_width=100
            )
            share = gr.Button("🔗 Share link", size="sm", elem_id="share-link")
        share_url = gr.Textbox(
            label="Link (target, parameters, system prompt — never a token)",
            visible=False, max_lines=3, buttons=["copy"], elem_id="share-url",
        )  # fmt: skip
    with gr.Accordion("Export / import", open=False, elem_id="conversation-files"):
        with gr.Row():
            export_one = gr.Button("Export chat", size="sm", elem_id="export-one")
            export_all = gr.Button("Export all", size="sm", elem_id="export-all")
            export_md = gr.Button("Markdown", size="sm", elem_id="export-md")
        file = gr.File(label="Download", visible=False, elem_id="export-file")
        upload = gr.UploadButton(
            "Import (.json)", file_types=[".json"], size="sm", elem_id="import-button"
        )
    note = gr.Markdown("", elem_id="workspace-note")
    clear_all = gr.Button("Clear all", size="sm", elem_id="clear-all")
    with gr.Group(visible=False, elem_id="clear-all-confirm") as confirm_box:
        gr.Markdown("Delete **every** saved conversation in this browser?")
        with gr.Row():
            confirm = gr.Button(
                "Yes, delete all", size="sm", variant="stop", elem_id="confirm-clear"
            )
            cancel = gr.Button("Cancel", size="sm", elem_id="cancel-clear")
    return Sidebar(
        store, current, search, listing, new, title, rename, delete, clear_all, confirm_box,
        confirm, cancel, export_one, export_all, export_md, file, upload, note, share,
        share_chat, share_url,
    )  # fmt: skip


def wire(
    sb: Sidebar,
    *,
    chatbot: Any,
    stats: Any,
    system_prompt: Any,
    form_widgets: dict,
    connection: Any,
    connection_fields: Sequence[Any],
    versions: tuple[Any, Any, Any],
    after: Sequence[Any],
    cancels: list,
) -> None:
    """Events: load, save after each change of the chat (``after``: events whose end
    saves), switch, new, search, rename, delete, clear all, export, import, versions."""
    import gradio as gr

    from components import share
    from components.connection import mode_choices

    hidden = dict(api_visibility="private", show_progress="hidden")
    form_names = list(form_widgets)
    settings_inputs = [system_prompt, *form_widgets.values(), connection]
    mode, endpoint, provider, model = list(connection_fields)[:4]
    prev_btn, label, next_btn, row = versions
    opened = [
        chatbot, stats, system_prompt, *form_widgets.values(), mode, endpoint, provider,
        model, label, row, sb.title,
    ]  # fmt: skip

    def settings(values: Sequence[Any]) -> dict:
        system, *rest = values[:-1]
        return settings_of(system, dict(zip(form_names, rest, strict=True)), values[-1])

    def open_values(record: dict | None) -> list:
        """Widget values that show ``record`` (a blank chat for None: settings stay)."""
        record = valid(record)
        if record is None:
            return [[], "", *([gr.update()] * (len(opened) - 5)), "", gr.Row(visible=False), ""]
        p, s, t = record["parameters"], record["structured"], record["target"]
        form = {**p, **s}
        modes = [value for _, value in mode_choices()]
        return [
            chat_messages(record),
            last_stats(record),
            record["system_prompt"],
            *(form.get(name, gr.update()) for name in form_names),
            t["mode"] if t["mode"] in modes else gr.update(),
            t["endpoint"],
            t["provider"] or "auto",
            t["model"],
            version_label(record),
            gr.Row(visible=bool(version_label(record))),
            record["title"],
        ]

    def listed(store, query="", active=None):
        return gr.Radio(choices=choices(store, query), value=active)

    def save(store, current, history, line, query, title_box, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        if not record.get("messages"):
            return (
                make_store(conversations(store)),
                {},
                listed(store, query),
                "",
                gr.Row(visible=False),
                "",
            )
        store = upsert(store, record)
        shown = version_label(record)
        listing = listed(store, query, record["id"])
        # The title box is written when empty (a new chat) or showing the saved title: a
        # title being typed while a reply streams is not overwritten by its end-of-reply save.
        typed = (title_box or "").strip()
        before = (valid(current) or {}).get("title")
        title = record["title"] if not typed or typed == before else gr.update()
        return store, record, listing, shown, gr.Row(visible=bool(shown)), title

    save_io = dict(
        fn=save,
        inputs=[sb.store, sb.current, chatbot, stats, sb.search, sb.title, *settings_inputs],
        outputs=[sb.store, sb.current, sb.listing, label, row, sb.title],
        concurrency_limit=None,  # quick: never waits behind another visitor's save
        **hidden,
    )
    for event in after:
        event.then(**save_io)

    def load(request, store, current):
        folded, record = fold_current(store, current)
        note = gr.skip()
        shared = request.query_params.get(share.QUERY_KEY) if request is not None else None
        if shared:  # a share link: opened as a new conversation, never over one's own
            try:
                setup = share.decode(shared)
            except share.ShareError as exc:
                gr.Warning(str(exc), title="Share link not opened", duration=10)
                note = f"⚠️ Share link not opened — {exc}"
            else:
                record = share.as_record(setup, new_id=new_id(), now=time.time())
                record["title"] = title_from(record["messages"]) if record["messages"] else ""
                folded = upsert(folded, record)
                where = record["target"]["endpoint"] or record["target"]["mode"] or "local"
                note = (
                    f"🔗 Opened a shared setup (target: `{where}`). Check the target before "
                    "you send anything private."
                )
        # Unchanged values are not sent back (a large store would be re-encrypted and
        # rewritten on every page load).
        return [
            gr.update() if folded == store else folded,
            gr.update() if record == current else record,
            listed(folded, "", record.get("id")),
            *open_values(record),
            note,
        ]

    load.__annotations__ = {"request": gr.Request}  # Gradio passes the page's request

    load_outputs = [sb.store, sb.current, sb.listing, *opened]

    def switch(store, current, history, line, query, chosen, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        store = upsert(store, record) if record.get("messages") else store
        target = find(store, chosen) or {}
        return [store, target, listed(store, query, target.get("id")), *open_values(target)]

    switch_inputs = [sb.store, sb.current, chatbot, stats, sb.search, sb.listing]
    sb.listing.input(
        switch, [*switch_inputs, *settings_inputs], load_outputs, cancels=cancels,
        queue=False, **hidden,
    )  # fmt: skip

    def new_chat(store, current, history, line, query, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        store = upsert(store, record) if record.get("messages") else store
        return [store, {}, listed(store, query), *open_values(None)]

    sb.new.click(
        new_chat, [*switch_inputs[:5], *settings_inputs], load_outputs, cancels=cancels,
        queue=False, **hidden,
    )  # fmt: skip
    sb.search.change(
        lambda store, query, current: listed(store, query, (current or {}).get("id")),
        [sb.store, sb.search, sb.current], sb.listing, queue=False, **hidden,
    )  # fmt: skip

    def do_rename(store, current, query, title):
        store, record = rename(store, current, title)
        if not record or not record.get("messages"):
            return (
                store,
                record,
                listed(store, query),
                "Send a message first: an empty chat is not saved.",
            )
        return store, record, listed(store, query, record["id"]), ""

    for trigger in (sb.rename.click, sb.title.submit):
        trigger(
            do_rename, [sb.store, sb.current, sb.search, sb.title],
            [sb.store, sb.current, sb.listing, sb.note], queue=False, **hidden,
        )  # fmt: skip

    def do_delete(store, current, query):
        store = remove(store, (current or {}).get("id", ""))
        return [store, {}, listed(store, query), *open_values(None)]

    sb.delete.click(
        do_delete, [sb.store, sb.current, sb.search], load_outputs, cancels=cancels,
        queue=False, **hidden,
    )  # fmt: skip
    sb.clear_all.click(lambda: gr.Group(visible=True), None, sb.confirm_box, queue=False, **hidden)
    sb.cancel.click(lambda: gr.Group(visible=False), None, sb.confirm_box, queue=False, **hidden)
    sb.confirm.click(
        lambda: [{"conversations": []}, {}, listed({}), *open_values(None), gr.Group(visible=False)],  # noqa: E501
        None, [*load_outputs, sb.confirm_box], cancels=cancels, queue=False, **hidden,
    )  # fmt: skip

    def export(which: str):
        def run(store, current, history, line, *values):
            record = snapshot(current, history, stats=line, **settings(values))
            if which == "all":
                records = conversations(upsert(store, record))
                text, name = export_json(records), "conversations.json"
            elif which == "md":
                records = [record] if record.get("messages") else []
                text, name = export_markdown(records), f"{file_stem(record)}.md"
            else:
                records = [record] if record.get("messages") else []
                text, name = export_json(records), f"{file_stem(record)}.json"
            if not records:
                return gr.File(visible=False), "Nothing to export yet: send a message first."
            return gr.File(write_export(text, name), visible=True), ""

        return run

    for button, which in ((sb.export_one, "one"), (sb.export_all, "all"), (sb.export_md, "md")):
        button.click(
            export(which), [sb.store, sb.current, chatbot, stats, *settings_inputs],
            [sb.file, sb.note], queue=False, **hidden,
        )  # fmt: skip

    def do_import(path, store, current, history, line, query, *values):
        unchanged = [gr.update()] * (len(load_outputs))
        try:
            size = os.path.getsize(path)
            if size > MAX_IMPORT_BYTES:
                raise ImportError_(
                    f"The file is {size / 1_048_576:.1f} MB; imports are limited to "
                    f"{MAX_IMPORT_BYTES // 1_048_576} MB."
                )
            records = parse_import(Path(path).read_bytes())
        except (ImportError_, OSError) as exc:
            gr.Warning(str(exc), title="Import refused", duration=10)
            return [*unchanged, f"⚠️ Import refused — {exc} Nothing was changed."]
        record = snapshot(current, history, stats=line, **settings(values))
        store = upsert(store, record) if record.get("messages") else store
        for imported in records:
            store = upsert(store, imported)
        first = find(store, records[0]["id"]) or records[0]
        count = len(records)
        message = f"✅ Imported {count} conversation{'s' if count != 1 else ''}."
        return [store, first, listed(store, query, first["id"]), *open_values(first), message]

    sb.upload.upload(
        do_import, [sb.upload, *switch_inputs[:5], *settings_inputs],
        [*load_outputs, sb.note], cancels=cancels, concurrency_limit=None, **hidden,
    )  # fmt: skip

    def step(direction: int):
        def run(store, current, query):
            record = switch_version(current, direction)
            if not record:
                return [gr.update()] * 7
            store = upsert(store, record)
            return (
                store, record, listed(store, query, record["id"]), chat_messages(record),
                last_stats(record), version_label(record), gr.Row(visible=True),
            )  # fmt: skip

        return run

    for button, direction in ((prev_btn, -1), (next_btn, 1)):
        button.click(
            step(direction), [sb.store, sb.current, sb.search],
            [sb.store, sb.current, sb.listing, chatbot, stats, label, row], queue=False,
            **hidden,
        )  # fmt: skip
    from gradio.context import Context

    Context.root_block.load(
        load,
        [sb.store, sb.current],
        [*load_outputs, sb.note],
        concurrency_limit=None,
        **hidden,
    ).then(None, js=DROP_SETUP_JS, **hidden)  # a reload does not open the link again

    def make_link(current, history, line, with_chat, *values):
        record = snapshot(current, history, stats=line, **settings(values))
        try:
            query = share.query(share.setup_of(record, conversation=bool(with_chat)))
        except share.ShareError as exc:
            return gr.Textbox(visible=False), f"⚠️ {exc}"
        return gr.Textbox(query, visible=True), ""

    sb.share.click(
        make_link, [sb.current, chatbot, stats, sb.share_chat, *settings_inputs],
        [sb.share_url, sb.note], queue=False, **hidden,
    ).then(None, sb.share_url, sb.share_url, js=FULL_LINK_JS, **hidden)  # fmt: skip


# The page's own address before a share link's query (what the visitor sees, behind any
# proxy or Space), and the query taken off the address bar once the link is opened (the
# page is then marked as loaded: ``body[data-workspace-loaded]``).
FULL_LINK_JS = "(q) => (q && q.startsWith('?')) ? location.origin + location.pathname + q : q"
DROP_SETUP_JS = """() => {
  document.body.dataset.workspaceLoaded = "1";  // the saved work is on the page
  const url = new URL(location.href);
  if (url.searchParams.has("setup")) {
    url.searchParams.delete("setup");
    history.replaceState(null, "", url);
  }
}"""


def saving_stream(
    current: Any, history: list[dict], settings: dict, *, keep: bool = True
) -> Callable:
    """For a streaming reply: ``save(reply, line, final=False)`` → the record to write to
    ``current`` now, or None (at most every ``SAVE_INTERVAL_S``; always when final).
    ``keep``: a reply it replaces is kept as a version (off for Continue)."""
    # The reply's place among the record's messages (thinking blocks are part of a reply).
    index = sum(1 for m in history if m.get("role") in ("user", "assistant") and not is_thinking(m))
    base = current
    record = valid(current)
    if keep and record is not None and index < len(record["messages"]):
        base = keep_version(record, index)  # a retried reply: keep the one it replaces
    last = [0.0]
    state = [base]

    def save(
        reply: str, line: str, final: bool = False, *, thinking: str = "", title: str = ""
    ) -> dict | None:
        now = time.monotonic()
        if not final and now - last[0] < SAVE_INTERVAL_S:
            return None
        last[0] = now
        block = {"role": "assistant", "content": thinking, "metadata": {"title": title}}
        chat = [*history, *([block] if thinking else []), {"role": "assistant", "content": reply}]
        record = snapshot(state[0], chat, stats=line, streaming=not final, **settings)
        state[0] = record  # later saves keep its id (and the versions it carries)
        return record

    return save
