"""Share a setup: a link that opens the playground with the same target, parameters,
system prompt and (optionally) the conversation — never a token.

The setup travels in the link's query (``?setup=…``): JSON compressed with zlib and
base64url-encoded, validated on the way in by the same models as an imported conversation
(``components.conversations``), so a bad or hostile link gets a message, not a broken page.
Everything here is plain Python (unit-tested); ``workspace.wire`` shows and opens links.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.conversations import Message, Parameters, Structured, Target

FORMAT = "inference-playground.setup"
VERSION = 1
QUERY_KEY = "setup"
MAX_LINK_CHARS = 12_000  # the encoded setup; servers refuse much longer request lines
MAX_JSON_BYTES = 1_000_000  # what a link may inflate to (a zip bomb stops here)


class ShareError(ValueError):
    """A setup that cannot become a link, or a link that cannot be opened (the message
    says why and what to do)."""


class Setup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["inference-playground.setup"]
    version: Literal[1]
    system_prompt: str = Field("", max_length=20_000)
    parameters: Parameters = Field(default_factory=Parameters)
    structured: Structured = Field(default_factory=Structured)
    target: Target = Field(default_factory=Target)
    messages: list[Message] = Field(default_factory=list, max_length=500)


def setup_of(record: dict, *, conversation: bool) -> dict:
    """The shareable part of a conversation record (``conversations.snapshot``): settings and
    target (a record never holds a token), and the messages when ``conversation``; kept
    reply versions and stats are left out."""
    messages = [
        {"role": m["role"], "content": m["content"]}
        for m in record.get("messages", [])
        if conversation
    ]
    setup = {
        "format": FORMAT,
        "version": VERSION,
        "system_prompt": record.get("system_prompt", ""),
        "parameters": record.get("parameters", {}),
        "structured": record.get("structured", {}),
        "target": record.get("target", {}),
        "messages": messages,
    }
    return Setup.model_validate(setup).model_dump(mode="json")


def encode(setup: dict) -> str:
    """``setup`` as the link's query value; ``ShareError`` when it is too long for a link."""
    raw = json.dumps(setup, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")
    if len(text) > MAX_LINK_CHARS:
        raise ShareError(
            f"This setup is too long for a link ({len(text) // 1000} KB encoded; links hold "
            f"{MAX_LINK_CHARS // 1000} KB). Share it without the conversation, or send the "
            "conversation as a file (Export chat)."
        )
    return text


def query(setup: dict) -> str:
    """The link's query (``?setup=…``); the page puts its own address before it (the
    address the visitor sees, behind any proxy or Space)."""
    return "?" + urlencode({QUERY_KEY: encode(setup)})


def decode(text: str) -> dict:
    """A link's setup, validated; ``ShareError`` for anything else (too long, not base64,
    not zlib, inflating past the limit, not JSON, the wrong shape or version)."""
    text = (text or "").strip()
    if len(text) > MAX_LINK_CHARS:
        raise ShareError("This share link is too long to be one of ours.")
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_JSON_BYTES)
        if inflater.unconsumed_tail:
            raise ShareError("This share link unpacks to more than a setup can hold.")
        data = json.loads(raw.decode("utf-8"))
    except ShareError:
        raise
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError) as exc:
        raise ShareError(f"This share link is damaged ({type(exc).__name__}).") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ShareError("This link does not hold an Inference Playground setup.")
    if data.get("version") != VERSION:
        raise ShareError(
            f"This link is version {data.get('version')!r} of the setup format; this "
            f"playground reads version {VERSION}."
        )
    try:
        return Setup.model_validate(data).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise ShareError(f"This share link's setup is not valid: {where}: {first['msg']}.") from exc


def as_record(setup: dict, *, new_id: str, now: float) -> dict[str, Any]:
    """A conversation record opening ``setup`` (a new conversation: never one of the
    visitor's own)."""
    messages = [{**m, "stats": "", "versions": [], "version": 0} for m in setup["messages"]]
    return {
        "id": new_id,
        "title": "",
        "created": now,
        "updated": now,
        "system_prompt": setup["system_prompt"],
        "messages": messages,
        "parameters": setup["parameters"],
        "structured": setup["structured"],
        "target": setup["target"],
        "streaming": False,
    }
