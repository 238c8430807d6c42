"""A fast CPU engine for GGUF models: llama.cpp's quantized kernels, our sampling.

``LlamaCppEngine`` is a ``GenerationEngine`` like ``TransformersEngine`` (``submit`` →
``TokenStream`` of ``TokenEvent``, ``stats``, ``describe``, ``shutdown``) with the same log
lines. It runs
the GGUF through llama-cpp-python's low-level API: llama.cpp computes the logits (the
prompt in batches of ``n_batch``, then one token a step on its KV cache) and writes them into
its own buffer; that buffer is wrapped as a torch tensor without a copy and handed to the
same ``Sampler`` the transformers engine uses, so seeds, penalties, grammars, the watermark
and ``top_n_tokens`` mean exactly the same thing on both engines. Only the logits differ
(4-bit weights instead of fp32 ones), not the rules that turn them into tokens.

Requests are served one at a time, in arrival order (llama.cpp runs one sequence here, and
on 2 cores a second one would only share the same cores). The consumer's ``close()`` is
checked before every step, so a cancelled request stops within one token.

Speed (bundled SmolLM2-135M Q4_1, 2 cores, 128 new tokens, one run, tok/s): raw llama.cpp
greedy 129; this engine greedy 119 (0.92x), sampling 106 (0.82x), temperature + top_p 75
(0.58x: ``top_p`` sorts the whole vocabulary every token, ~3 ms); transformers engine 23.
Greedy costs the sampler ~0.1 ms a token, sampling ~1 ms (the seeded multinomial draws one
exponential per vocabulary entry), against ~7.5 ms for llama.cpp's step.

llama-cpp-python is an optional extra (``requirements-fast.txt``; it compiles llama.cpp,
minutes): it is imported only when an engine is built. ``llamacpp_available()`` says
whether it can be.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

from backends.errors import GenerationError, UnavailableError
from backends.local.engine.queue import RequestQueue, TokenStream
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.sequence import Request, Sequence
from backends.local.model import LoadedModel

# The engine's logger, so "request done" (logged by ``Sequence``) and "request cancelled"
# lines come from one place whichever engine runs.
log = logging.getLogger("backends.local.engine")

INSTALL_HINT = (
    "Run `make setup-fast` (or `pip install llama-cpp-python==0.3.36`; it compiles llama.cpp, "
    "a few minutes)."
)


def llamacpp_available() -> bool:
    """Whether llama-cpp-python is installed and its compiled library loads."""
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):  # OSError: the shared library is missing or broken
        return False
    return True


def default_threads() -> int:
    """llama.cpp threads unless told: the physical cores less one (at least one).

    llama.cpp's threads wait for each other by spinning at every step, so when one is
    preempted by another busy thread (the server streaming tokens, a tokenizer, another
    process) the step stalls. Measured on 2 cores with the bundled model, in one run: raw
    llama.cpp greedy 129 tok/s with 1 thread, 73 with 2.
    """
    return max(1, physical_cores() - 1)


def physical_cores() -> int:
    """Physical cores available to this process: llama.cpp is slower with one thread per
    hyper-thread than with one per core. (psutil comes with accelerate, a requirement.)"""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except ImportError:
        cores = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    counts = [c for c in (cores, available, os.cpu_count()) if c]
    return max(1, min(counts)) if counts else 1


class _LlamaContext:
    """One llama.cpp sequence: ``decode`` tokens at a position, read the logits in place."""

    def __init__(self, model_path: str, *, n_ctx: int, n_threads: int, n_batch: int) -> None:
        try:
            import llama_cpp
        except (ImportError, OSError) as exc:
            raise UnavailableError(
                f"The llama.cpp engine needs llama-cpp-python: {exc}", hint=INSTALL_HINT
            ) from exc
        self._lib = llama_cpp
        try:
            self.llm = llama_cpp.Llama(
                model_path,
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=0,
                logits_all=False,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise UnavailableError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.n_ctx = self.llm.n_ctx()
        self.n_batch = self.llm.n_batch
        self.n_vocab = self.llm.n_vocab()
        self.file_type = self._file_type(self.llm.metadata.get("general.file_type"))
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    @staticmethod
    def _file_type(value: str | None) -> str:
        """``general.file_type`` as a name (``Q4_1``), for the model's dtype label."""
        try:
            from gguf import LlamaFileType

            return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
        except (ImportError, TypeError, ValueError):
            return "gguf"

    def clear(self) -> None:
        """Forget every position (a new request starts from an empty KV cache)."""
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self.llm.ctx), True)

    def decode(self, tokens: list[int], n_past: int, *, all_logits: bool = False):
        """Run ``tokens`` (at most ``n_batch``) at positions ``n_past…`` and return their
        logits as a ``[rows, vocab]`` float32 tensor over llama.cpp's own buffer (every
        row with ``all_logits``, else the last). Valid until the next ``decode``."""
        import numpy as np
        import torch

        batch, n = self._batch, len(tokens)
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = all_logits
        batch.logits[n - 1] = True
        status = self._lib.llama_decode(self.llm.ctx, batch)
        if status != 0:
            reason = {1: "no room left in the KV cache", 2: "aborted"}.get(status, "error")
            raise GenerationError(f"llama.cpp decode failed ({reason}, status {status}).")
        rows = n if all_logits else 1
        pointer = (
            self._lib.llama_get_logits(self.llm.ctx)
            if all_logits
            else self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        )
        address = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float))
        return torch.from_numpy(np.ctypeslib.as_array(address, shape=(rows, self.n_vocab)))

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        self.llm.close()


class LlamaCppEngine:
    """Serves one request at a time, in arrival order; at most ``max_queue`` in flight.

    Args:
        loaded: the tokenizer, EOS ids and context size (``load_tokenizer_only`` gives one
            without torch weights); the HF tokenizer encodes and decodes, as on the
            transformers engine (its ids are the GGUF's vocabulary).
        model_path: the ``.gguf`` file llama.cpp runs.
        max_queue: requests in flight (running + waiting) past which ``submit`` refuses.
        n_ctx: positions of llama.cpp's KV cache (default: the model's context).
        n_threads: llama.cpp threads (default: ``default_threads()``).
        n_batch: prompt tokens per llama.cpp decode call (llama-cpp-python's default).

    Raises:
        UnavailableError: llama-cpp-python is missing, or llama.cpp cannot load the file.
    """

    name = "llama.cpp"
    max_batch_size = 1

    def __init__(
        self,
        loaded: LoadedModel,
        model_path: str,
        *,
        max_queue: int = 64,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
    ) -> None:
        self.queue = RequestQueue(max_queue, serving=self._serving)
        self.loaded = loaded
        self.n_threads = n_threads or default_threads()
        self._context = _LlamaContext(
            model_path,
            n_ctx=n_ctx or loaded.max_context,
            n_threads=self.n_threads,
            n_batch=n_batch,
        )
        self.dtype = self._context.file_type
        self._current: Sequence | None = None  # the request being served (worker-owned)
        self._taken: Request | None = None  # taken from the queue, not ended yet
        self._special_ids = frozenset(loaded.tokenizer.all_special_ids) | loaded.eos_token_ids
        self.queue.start(self._run, "llama.cpp-engine")

    # -- public --------------------------------------------------------------------------

    def describe(self) -> str:
        """What runs the model, for the UI's status line."""
        threads = f"{self.n_threads} thread{'s' if self.n_threads != 1 else ''}"
        return f"llama.cpp engine ({self.dtype}, {threads}, one request at a time)"

    def stats(self) -> dict[str, int]:
        """``GenerationEngine.stats()``'s keys: ``running``, ``waiting``, ``batch_tokens``
        (prompt + generated tokens of the running request) and the limits (a batch of one)."""
        current = self._current
        running, waiting = self.queue.counts()
        return {
            "running": running,
            "waiting": waiting,
            "batch_tokens": len(current.ids) if current is not None else 0,
            "max_batch_size": 1,
            "max_batch_tokens": self._context.n_ctx,
            "max_queue": self.queue.max_queue,
        }

    def submit(self, input_ids: list[int], params: SamplingParams) -> TokenStream:
        """Queue a request; raises ``OverloadedError`` past ``max_queue`` in flight. Every
        ``SamplingParams`` field is honoured: the logits go through the same ``Sampler``."""
        return self.queue.submit(Request(list(input_ids), params))

    def shutdown(self) -> None:
        """Stop the worker (requests in flight end with ``UnavailableError``) and free
        llama.cpp's memory."""
        if self.queue.stop():
            self._context.close()

    # -- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        # One torch thread for the sampler, in this thread only (OpenMP's setting is per
        # thread): its tensors are one row of logits, too small to split, and a team of two
        # on 2 busy cores made torch's sort (top_p) ~7x slower (24 ms vs 3.3 ms a token).
        torch.set_num_threads(1)
        with torch.inference_mode():
            while (request := self.queue.next()) is not None:
                self._taken = request
                self.queue.emit("admitted", running=1, waiting=self.queue.waiting)
                try:
                    error = self._serve(request)
                except Exception as exc:  # keep serving others; the consumer gets the reason
                    log.error("generation failed", exc_info=exc)
                    error = GenerationError(f"Generation failed: {exc}")
                self._current = None
                self.queue.end(request, error)
                self._taken = None
        self.queue.drain(UnavailableError("The local model has shut down."))

    def _serving(self) -> list[Request]:
        return [self._taken] if self._taken is not None else []

    def _serve(self, request: Request) -> BaseException | None:
        """Generate ``request`` to its end; returns the error to end its stream with."""
        if request.cancelled.is_set():
            return None  # gave up while waiting: nothing was computed
        context = self._context
        # Sequence owns the sampler, ids, decoding, stops and events, as on the default
        # engine; this loop only feeds it llama.cpp's logits.
        sequence = self._current = Sequence(request, self.loaded, self._special_ids)
        room = context.n_ctx - sequence.input_length
        if room <= 0 < sequence.budget:  # n_ctx was set below the model's context
            return GenerationError(
                f"The prompt ({sequence.input_length} tokens) does not fit llama.cpp's "
                f"context of {context.n_ctx} tokens."
            )
        sequence.budget = min(sequence.budget, room)
        if sequence.budget <= 0:
            return None  # no room left in the model's context: nothing to generate
        prompt = self._prompt(request)
        if prompt is None:
            self.queue.emit("cancelled", tokens=0)
            return None
        self.queue.deliver(sequence, sequence.step(*prompt))
        while not sequence.finished:
            if self.queue.stopping:
                return UnavailableError("The local model has shut down.")
            if request.cancelled.is_set():
                self.queue.emit("cancelled", tokens=sequence.index)
                return None
            ids = sequence.ids
            self.queue.deliver(sequence, sequence.step(context.decode([ids[-1]], len(ids) - 1)))
        return None

    def _prompt(self, request: Request) -> tuple[Any, list | None] | None:
        """Decode the prompt in ``n_batch`` chunks: the last position's logits ``[1, vocab]``
        and, when asked for, the prompt's tokens with their logprobs (TGI's prefill).
        None when the request is cancelled meanwhile."""
        import torch

        context, ids = self._context, request.input_ids
        details = request.params.prefill_details
        picked: list[float] = []
        context.clear()
        logits = None
        for start in range(0, len(ids), context.n_batch):
            if request.cancelled.is_set():
                return None
            chunk = ids[start : start + context.n_batch]
            logits = context.decode(chunk, start, all_logits=details)
            if details:
                # Row j predicts token start+j+1; a chunk's last row predicts the next
                # chunk's first token (or, at the very end, the first generated one).
                targets = ids[start + 1 : start + len(chunk) + 1]
                rows = torch.log_softmax(logits[: len(targets)], dim=-1)
                picked += rows.gather(1, torch.tensor(targets)[:, None])[:, 0].tolist()
        prefill = None
        if details:
            decode = self.loaded.tokenizer.decode
            prefill = [(i, decode([i]), lp) for i, lp in zip(ids, [None, *picked], strict=True)]
        return logits[-1:], prefill
