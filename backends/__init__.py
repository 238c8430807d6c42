"""The backend layer: the only thing the UI talks to.

A backend answers with huggingface_hub's own output types, and its methods and keyword
names are ``InferenceClient``'s, so a tab never knows (or cares) whether the local model or
a remote endpoint answered. Backends raise ``backends.errors.BackendError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionStreamOutput,
    TextGenerationOutput,
    TextGenerationStreamOutput,
)


@dataclass(frozen=True)
class BackendStatus:
    """What the UI shows about a backend: ``state`` and a one-line description."""

    state: Literal["loading", "ready", "failed"]
    message: str
    warning: str = ""  # shown beside the state, e.g. why another engine runs than asked for


@runtime_checkable
class Backend(Protocol):
    """What every backend implements (InferenceClient's vocabulary)."""

    name: str

    def status(self) -> BackendStatus: ...

    def health_check(self) -> bool: ...

    def get_endpoint_info(self) -> dict[str, Any]: ...

    def chat_completion(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        response_format: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        stream: bool = False,
    ) -> ChatCompletionOutput | Iterable[ChatCompletionStreamOutput]: ...

    def text_generation(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        typical_p: float | None = None,
        repetition_penalty: float | None = None,
        frequency_penalty: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        truncate: int | None = None,
        return_full_text: bool = False,
        details: bool = False,
        decoder_input_details: bool = False,
        top_n_tokens: int | None = None,
        best_of: int | None = None,
        watermark: bool = False,
        grammar: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> str | TextGenerationOutput | Iterable[str] | Iterable[TextGenerationStreamOutput]: ...

    def run_task(
        self,
        name: str,
        inputs: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        model: str | None = None,
    ) -> Any:
        """Run one of ``backends.tasks.TASKS`` (e.g. ``"image_classification"``): ``inputs``
        and ``parameters`` use InferenceClient's keyword names and shapes, the result is what
        ``InferenceClient.<name>`` returns. ``model`` picks the model for this task (a Hub
        id, or for the local backend a directory); ``None``: the backend's default."""
        ...


_REGISTRY: dict[str, type] = {}


def register_backend(name: str):
    """Class decorator: make a backend class constructible by name (``create_backend``)."""

    def decorate(cls: type) -> type:
        _REGISTRY[name] = cls
        return cls

    return decorate


def create_backend(name: str, **kwargs: Any) -> Backend:
    """Build a registered backend, e.g. ``create_backend("local", model=None)``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown backend {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)
