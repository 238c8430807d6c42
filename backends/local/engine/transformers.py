"""The local generation engine: a worker thread that owns the model and streams tokens.

Requests are submitted from any thread and come back as a ``TokenStream``. The worker
batches continuously: a request that arrives while others are generating is prefilled on
its own (long prompts in chunks, between decode steps, so running streams keep flowing)
and joins the running batch at the next step; every step is one forward pass for the whole
batch (``backends.local.engine.kv_batch``). Each request keeps its own ``Sampler`` (parameters,
seeded generator, grammar state) applied to its own row of logits, so a seeded request
picks its tokens the same way alone or in a batch. Finished and cancelled requests
(``TokenStream.close()``: stop button, closed tab, dropped API call) leave before the next
pass, and a waiting request takes the slot.

Limits: ``max_batch_size`` rows decode together and ``max_batch_tokens`` bounds the sum of
their (prompt + generated) tokens, each request reserving its prompt + ``max_new_tokens``
when it joins; past either, requests wait in arrival order. Past
``max_queue`` requests in flight (running and waiting), ``submit`` raises
``OverloadedError`` (HTTP 429 ``overloaded``).
"""

from __future__ import annotations

import logging
from collections import deque

from backends.errors import GenerationError, UnavailableError
from backends.local.engine.faults import FaultPlan, is_out_of_memory
from backends.local.engine.kv_batch import KVBatch, supports_batching
from backends.local.engine.queue import RequestQueue, TokenStream
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.scheduler import reserved_tokens
from backends.local.engine.sequence import Request, Sequence
from backends.local.model import LoadedModel

__all__ = ["TransformersEngine"]

log = logging.getLogger(__name__)

# Prompt tokens per prefill pass (default). Longer prompts are prefilled in chunks, one
# chunk between two decode steps, so a long prompt delays running streams by one chunk's
# compute at a time. Chunk boundaries depend only on the prompt, so a prompt is prefilled
# the same way whatever else is running.
PREFILL_CHUNK = 512


class TransformersEngine:
    """Serves requests in continuously formed batches, in arrival order.

    Args:
        loaded: the model, tokenizer and limits.
        max_queue: requests in flight (running + waiting) past which ``submit`` refuses.
        max_batch_size: rows that decode together (1 serves one request at a time).
        max_batch_tokens: bound on the running rows' prompt + generated tokens. Each
            request reserves its prompt + ``max_new_tokens`` when it joins, so the bound
            holds at every step; a request that does not fit waits (one alone always runs).
        prefill_chunk: prompt tokens per prefill pass; about this many are prefilled
            between two decode steps.
        faults: failures to inject, for tests (default: ``PLAYGROUND_FAULTS``, usually
            none; see ``engine/faults.py``).

    Running out of memory (a forward pass, a prefill chunk, merging a cache) fails the
    requests it hit with a ``GenerationError`` saying so, after the tokens they already
    streamed; their KV cache is dropped, the allocator's cache emptied, and the engine keeps
    serving the next requests.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        max_queue: int = 64,
        max_batch_size: int = 16,
        max_batch_tokens: int = 16384,
        prefill_chunk: int = PREFILL_CHUNK,
        faults: FaultPlan | None = None,
    ) -> None:
        if min(max_batch_size, max_batch_tokens, prefill_chunk) < 1:
            raise ValueError("max_batch_size, max_batch_tokens and prefill_chunk must be >= 1")
        self.queue = RequestQueue(max_queue, serving=self._serving)
        self.loaded = loaded
        self.context_limit = loaded.max_context
        # Models whose cache cannot be padded and merged (sliding-window, linear attention)
        # are served one request at a time.
        self.max_batch_size = max_batch_size if supports_batching(loaded.model) else 1
        self.max_batch_tokens = max_batch_tokens
        self.prefill_chunk = prefill_chunk
        self._faults = faults if faults is not None else FaultPlan.from_env()
        # Worker-only state: requests being prefilled, and the decoding rows with their cache.
        self._prefilling: deque[Sequence] = deque()
        self._rows: list[Sequence] = []
        self._batch = KVBatch()
        self._batch_tokens = 0
        tokenizer = loaded.tokenizer
        self._special_ids = frozenset(tokenizer.all_special_ids) | loaded.eos_token_ids
        self.queue.start(self._run, "engine")

    name = "transformers"

    # -- public --------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        return self.loaded.dtype

    def describe(self) -> str:
        """What runs the model, for the UI's status line."""
        return f"transformers engine (continuous batching, up to {self.max_batch_size})"

    def stats(self) -> dict[str, int]:
        """What /info or the UI can show: ``running``, ``waiting``, ``batch_tokens`` (prompt +
        generated tokens of the running requests, as of the last step) and the limits."""
        running, waiting = self.queue.counts()
        return {
            "running": running,
            "waiting": waiting,
            "batch_tokens": self._batch_tokens,
            "max_batch_size": self.max_batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "max_queue": self.queue.max_queue,
        }

    def submit(self, input_ids: list[int], params: SamplingParams) -> TokenStream:
        """Queue a request; raises ``OverloadedError`` past ``max_queue`` in flight."""
        return self.queue.submit(Request(list(input_ids), params))

    def shutdown(self) -> None:
        """Stop the worker; requests still in flight end with ``UnavailableError``."""
        self.queue.stop()

    # -- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        torch.set_grad_enabled(False)
        with torch.inference_mode():
            while self.queue.wait(busy=lambda: bool(self._prefilling or self._rows)):
                try:
                    self._admit()
                    self._prefill()
                    self._decode()
                except Exception as exc:  # e.g. out of memory merging caches: the batch is
                    # lost, so every request in it fails; the worker keeps serving the rest
                    lost = (*self._prefilling, *self._rows)
                    self._prefilling.clear()
                    self._rows, self._batch = [], KVBatch()
                    for sequence in lost:
                        self._fail(sequence, exc, batch=len(lost))
                    if is_out_of_memory(exc):
                        _release_memory()
                self._batch_tokens = sum(len(s.ids) for s in (*self._prefilling, *self._rows))
        self._abort_all()

    def _serving(self) -> list[Request]:
        return [s.request for s in (*self._prefilling, *self._rows)]

    def _fail(self, sequence: Sequence, exc: Exception, batch: int = 1) -> None:
        """End ``sequence`` with ``exc`` as a ``GenerationError`` (the tokens it streamed
        stay with its consumer); ``batch``: how many requests the failure hit."""
        if is_out_of_memory(exc):
            log.error(
                "out of memory after %d tokens (batch of %d): the request fails, the engine "
                "keeps serving: %s",
                sequence.index,
                batch,
                exc,
            )
            shared = f" (in a batch of {batch} requests)" if batch > 1 else ""
            error = GenerationError(
                f"The local model ran out of memory after {sequence.index} generated "
                f"tokens{shared}.",
                hint="The text so far is kept. Retry, with a shorter prompt or fewer new "
                "tokens; if it keeps happening, restart the app with a lower "
                "--max-batch-size or --max-batch-tokens.",
            )
        else:
            log.error("generation failed", exc_info=exc)
            error = GenerationError(f"Generation failed: {exc}")
        self.queue.end(sequence.request, error)

    def _abort_all(self) -> None:
        serving = self._serving()
        self._prefilling.clear()
        self._rows = []
        self._batch = KVBatch()
        self.queue.drain(UnavailableError("The local model has shut down."), serving)

    def _admit(self) -> None:
        """Move waiting requests into the batch while it has room (in arrival order:
        ``scheduler.admit_count`` decides how many)."""
        running = [s.input_length + s.budget for s in (*self._prefilling, *self._rows)]
        admitted = self.queue.admit(
            running,
            self._reserve,
            max_batch_size=self.max_batch_size,
            max_batch_tokens=self.max_batch_tokens,
        )
        for request in admitted:
            try:
                sequence = Sequence(request, self.loaded, self._special_ids)
            except Exception as exc:  # e.g. a sampler that cannot be built for this model
                self.queue.end(request, GenerationError(f"Generation failed: {exc}"))
                continue
            if sequence.budget <= 0:
                self.queue.end(request)  # no room left in the context: nothing to generate
            else:
                self._prefilling.append(sequence)

    def _reserve(self, request: Request) -> int:
        return reserved_tokens(
            len(request.input_ids), request.params.max_new_tokens, self.loaded.max_context
        )

    def _prefill(self) -> None:
        """Prefill waiting sequences, about one chunk's worth of prompt tokens per step."""
        done = 0
        while self._prefilling and done < self.prefill_chunk:
            sequence = self._prefilling[0]
            if sequence.request.cancelled.is_set():
                self._prefilling.popleft()
                self.queue.emit("cancelled", tokens=0)
                self.queue.end(sequence.request)
                continue
            try:
                processed, event = sequence.prefill_chunk(self.loaded.model, self.prefill_chunk)
                done += processed
                self.queue.deliver(sequence, event)
            except Exception as exc:  # this request fails; the others keep going
                self._prefilling.popleft()
                self._fail(sequence, exc)
                if is_out_of_memory(exc):
                    _release_memory()
                continue
            if sequence.prefilling:
                continue
            if not sequence.finished:
                self._batch.add(sequence.take_cache(), len(sequence.ids) - 1)
                self._rows.append(sequence)
            self._prefilling.popleft()
            if sequence.finished:
                self.queue.end(sequence.request)

    def _decode(self) -> None:
        """One forward pass for every decoding row, then each row picks its own token."""
        rows = self._rows
        keep = []
        for i, sequence in enumerate(rows):
            if sequence.request.cancelled.is_set():
                self.queue.emit("cancelled", tokens=sequence.index)
                self.queue.end(sequence.request)
            else:
                keep.append(i)
        self._leave(keep)
        rows = self._rows
        if not rows:
            return
        try:
            self._faults.before_decode()
            logits = self._batch.forward(self.loaded.model, [s.ids[-1] for s in rows])
        except Exception as exc:  # the pass is shared: every row in it fails
            # Drop the batch's cache outright (not ``keep([])``, which computes on it).
            self._rows, self._batch = [], KVBatch()
            for sequence in rows:
                self._fail(sequence, exc, batch=len(rows))
            if is_out_of_memory(exc):
                _release_memory()
            return
        keep = []
        for i, sequence in enumerate(rows):
            try:
                self.queue.deliver(sequence, sequence.step(logits[i : i + 1]))
            except Exception as exc:  # e.g. a grammar error: only this row fails
                self._fail(sequence, exc)
                continue
            if sequence.finished:
                self.queue.end(sequence.request)
            else:
                keep.append(i)
        self._leave(keep)

    def _leave(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep``; the others have left the batch."""
        if len(keep) == len(self._rows):
            return
        self._batch.keep(keep)
        self._rows = [self._rows[i] for i in keep]


def _release_memory() -> None:
    """After running out of memory: collect what the failed batch held and hand the
    allocator's cached blocks back, so the next batch starts from a clean slate."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
