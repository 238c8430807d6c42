"""What a local generation engine is, to the rest of the app: ``GenerationEngine``.

Two engines implement it (``transformers.TransformersEngine``, ``llamacpp.LlamaCppEngine``),
each owning one ``queue.RequestQueue`` (admission, the in-flight bound, worker death:
``engine.queue``) and running its own worker loop through it. ``LocalBackend`` and
``outputs`` speak only this protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from backends.local.engine.queue import RequestQueue, TokenStream
from backends.local.engine.sampling import SamplingParams


@runtime_checkable
class GenerationEngine(Protocol):
    name: str  # "transformers" | "llama.cpp"
    dtype: str  # the weights as served: "float32", "bfloat16", "Q4_1" …
    # Admission: in_flight / waiting / running counts, max_queue, failure (set once the
    # worker has died: every call then fails), on_event (EngineEvent observer).
    queue: RequestQueue
    # Tokens one request may span (prompt + new): the model's context, or less where the
    # engine holds fewer KV cells per sequence (llama.cpp batching). Requests are checked
    # against it before they queue, and /info reports it.
    context_limit: int

    def submit(self, input_ids: list[int], params: SamplingParams) -> TokenStream:
        """Queue a request; its events come back through the stream. Raises
        ``OverloadedError`` past ``max_queue`` in flight, ``UnavailableError`` after shutdown
        or worker death, ``InputValidationError`` for a parameter the engine cannot honour."""
        ...

    def stats(self) -> dict[str, int]:
        """``running``, ``waiting``, ``batch_tokens`` and the limits ``max_batch_size``,
        ``max_batch_tokens``, ``max_queue``."""
        ...

    def describe(self) -> str:
        """One line for the status banner, e.g. "llama.cpp engine (Q4_1, 1 thread, …)"."""
        ...

    def shutdown(self) -> None:
        """Stop the worker; requests in flight end with ``UnavailableError``."""
        ...
