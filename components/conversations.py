"""A conversation as the playground keeps it: the versioned format (pydantic models),
the records the chat saves (``snapshot``, reply versions, the store), and the saving of a
streaming reply. Plain Python on dicts (unit-tested); the browser side is
``components.workspace``, the files ``components.conversation_files``.

A user message keeps its images as data URLs (``images``), a reply its thinking
(``thinking``, ``thinking_title``): optional fields, so files without them still read.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from backends import vision
from backends.errors import InputValidationError
from components.thinking import is_thinking

FORMAT = "inference-playground.conversations"
VERSION = 1
MAX_CONVERSATIONS = 500  # the oldest beyond this are dropped from the browser's store
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
