"""A reasoning model's thinking, kept apart from its answer while the reply streams.

Two ways servers send it: ``<think>…</think>`` inside the streamed text (DeepSeek-R1,
Qwen3 through TGI or llama.cpp; a template that opens ``<think>`` in the prompt leaves
only the closing tag in the reply), and separate deltas (``delta.reasoning`` in
huggingface_hub's ``ChatCompletionStreamOutputDelta``, ``delta.reasoning_content`` as
vLLM and DeepSeek's API send it). Plain Python: unit-tested on arbitrary chunk boundaries.
"""

from __future__ import annotations

from typing import Any

OPEN, CLOSE = "<think>", "</think>"
TITLE = "Thinking"


def reasoning_delta(delta: Any) -> str:
    """The reasoning text of a stream delta (``reasoning``, or ``reasoning_content``, which
    huggingface_hub keeps as an extra attribute)."""
    for name in ("reasoning", "reasoning_content"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


def _held_back(text: str, tags: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` could begin one of ``tags``."""
    for size in range(min(len(text), max(map(len, tags)) - 1), 0, -1):
        if any(tag.startswith(text[-size:]) for tag in tags):
            return size
    return 0


class ThinkSplitter:
    """Feed streamed text pieces; ``thinking`` and ``answer`` hold the text so far, with
    the tags removed. A tag split across pieces is held back until it is complete."""

    def __init__(self) -> None:
        self.thinking = ""
        self.answer = ""
        self._inside = False
        self._pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        """Add a piece; returns (thinking added, answer added) by this piece."""
        before = (len(self.thinking), len(self.answer))
        self._pending += text
        while True:
            if self._inside:
                at = self._pending.find(CLOSE)
                if at < 0:
                    break
                self.thinking += self._pending[:at]
                self._pending = self._pending[at + len(CLOSE) :]
                self._inside = False
                continue
            opens, closes = self._pending.find(OPEN), self._pending.find(CLOSE)
            if closes >= 0 and (opens < 0 or closes < opens):
                # Only the closing tag: the template opened <think> in the prompt, so what
                # came before it was thinking.
                self.thinking += self.answer + self._pending[:closes]
                self.answer = ""
                self._pending = self._pending[closes + len(CLOSE) :]
                continue
            if opens < 0:
                break
            self.answer += self._pending[:opens]
            self._pending = self._pending[opens + len(OPEN) :]
            self._inside = True
        keep = _held_back(self._pending, (CLOSE,) if self._inside else (OPEN, CLOSE))
        ready, self._pending = (
            self._pending[: len(self._pending) - keep],
            self._pending[len(self._pending) - keep :],
        )
        if self._inside:
            self.thinking += ready
        else:
            self.answer += ready
        return self.thinking[before[0] :], self.answer[before[1] :]

    def add_reasoning(self, text: str) -> None:
        """A reasoning delta (sent apart from the content)."""
        self.thinking += text

    def finish(self) -> tuple[str, str]:
        """The stream ended: a held-back partial tag is text after all."""
        if self._inside:
            self.thinking += self._pending
        else:
            self.answer += self._pending
        self._pending = ""
        return self.thinking, self.answer

    @property
    def thinking_open(self) -> bool:
        """Inside an unclosed ``<think>`` (the model is still thinking)."""
        return self._inside


def thinking_title(tokens: int) -> str:
    """The collapsible block's title, with its own token count."""
    return f"{TITLE} · {tokens} token{'s' if tokens != 1 else ''}"


def is_thinking(message: dict) -> bool:
    """A Chatbot message that is a thinking block (its metadata has a Thinking title)."""
    metadata = message.get("metadata") or {}
    title = metadata.get("title") if isinstance(metadata, dict) else None
    return isinstance(title, str) and title.startswith(TITLE)
