"""A fast CPU engine for GGUF models: llama.cpp's quantized kernels, continuous batching, our
sampling.

``LlamaCppEngine`` is a ``GenerationEngine`` like ``TransformersEngine`` (``submit`` →
``TokenStream`` of ``TokenEvent``, ``stats``, ``describe``, ``shutdown``) with the same log
lines and the same scheduler (``scheduler.admit_count``: ``max_batch_size`` rows,
``max_batch_tokens`` reserved tokens, arrival order). It runs the GGUF through llama-cpp-
python's low-level API on one llama.cpp context holding up to ``max_batch_size`` sequences
(``n_seq_max``, one KV stream of ``n_ctx`` cells each): every step is one ``llama_decode``
of one ``llama_batch`` in which each running sequence contributes its last token (tagged
with its sequence id, logits asked for) and waiting prompts contribute chunks (up to
``n_batch`` tokens in all), so a request joins at the next step and streams its first token
as soon as its prompt is in. A request that finishes or is cancelled leaves at once: its KV
cells are removed (``llama_memory_seq_rm``) and its sequence id goes to the next.

Each sequence's row of logits (llama.cpp's own buffer, wrapped as a torch tensor without a
copy) goes to its own ``Sequence.step``, i.e. its own ``Sampler`` (seeded generator, grammar
state, penalties, watermark, ``top_n_tokens``): a seeded request picks the same tokens alone
or batched, and every parameter means what it means on the transformers engine. Only the
logits differ (4-bit weights instead of fp32 ones), not the rules that turn them into
tokens.

llama-cpp-python is an optional extra (``requirements-fast.txt``; it compiles llama.cpp,
minutes): it is imported only when an engine is built. ``llamacpp_available()`` says
whether it can be.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections import deque

from backends.errors import GenerationError, UnavailableError
from backends.local.engine.queue import RequestQueue, TokenStream
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.scheduler import reserved_tokens
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
    """llama.cpp threads unless told (``--threads``/``n_threads``): every physical core, as
    llama.cpp's own tools default to.

    Measured on the portable build with the batching engine (issue 17; bench's
    ``thread_sweep``, in-process, 128 greedy tokens, a quiet 2-core machine, two runs):
    1 thread 82 / 105 tok/s at 1 / 8 streams, 2 threads 134–143 / 187–192 — 1.7–1.8×.
    llama.cpp's threads spin while they wait for each other, so on cores shared with other
    busy processes (builds, test runs) one preempted thread stalls every step: there, set
    fewer.
    """
    return max(1, physical_cores())


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
    """One llama.cpp context holding up to ``n_seq_max`` sequences: ``decode`` a batch of
    tokens (each tagged with its sequence and position), read the logits in place, ``drop``
    a sequence's KV cells."""

    def __init__(
        self, model_path: str, *, n_ctx: int, n_threads: int, n_batch: int, n_seq_max: int
    ) -> None:
        try:
            import llama_cpp
        except (ImportError, OSError) as exc:
            raise UnavailableError(
                f"The llama.cpp engine needs llama-cpp-python: {exc}", hint=INSTALL_HINT
            ) from exc
        import numpy as np

        self._lib = llama_cpp
        try:
            # ``Llama`` loads the weights (and initialises the backend, silences the log);
            # its own context is tiny and unused: generation runs on ``self.ctx`` below,
            # built with what ``Llama`` does not expose (n_seq_max, a unified KV cache).
            self.llm = llama_cpp.Llama(
                model_path,
                n_ctx=64,
                n_batch=8,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=0,
                logits_all=False,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise UnavailableError(f"llama.cpp could not load {model_path}: {exc}") from exc
        params = llama_cpp.llama_context_default_params()
        # One KV stream per sequence (kv_unified off), ``n_ctx`` cells each: a sequence's
        # attention then runs exactly as it does alone, so batched logits are bit for bit
        # those of the same request alone. (One unified pool of cells was measured not to:
        # with 8 or more sequences in it, llama.cpp's logits moved by up to 1.7.)
        params.n_ctx = n_ctx * n_seq_max
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = False
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
        if not self.ctx:
            self.llm.close()
            raise UnavailableError(f"llama.cpp could not create a context for {model_path}.")
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self.ctx)  # cells per sequence
        self.n_batch = llama_cpp.llama_n_batch(self.ctx)
        self.n_seq_max = llama_cpp.llama_n_seq_max(self.ctx)
        self.n_vocab = self.llm.n_vocab()
        self.file_type = self._file_type(self.llm.metadata.get("general.file_type"))
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        # The batch's arrays are ours (numpy), so filling them is a few slice assignments;
        # each token belongs to one sequence, whose id is read through ``seq_id[i]``.
        n = self.n_batch
        self._token = np.zeros(n, dtype=np.int32)
        self._pos = np.zeros(n, dtype=np.int32)
        self._n_seq = np.ones(n, dtype=np.int32)
        self._seq = np.zeros(n, dtype=np.int32)
        self._wants = np.zeros(n, dtype=np.int8)
        address = self._seq.ctypes.data
        pointer = ctypes.POINTER(llama_cpp.llama_seq_id)
        self._seq_ptrs = (pointer * n)(*(ctypes.cast(address + 4 * i, pointer) for i in range(n)))
        self._batch = llama_cpp.llama_batch()
        self._batch.token = self._token.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token))
        self._batch.embd = ctypes.POINTER(ctypes.c_float)()
        self._batch.pos = self._pos.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_pos))
        self._batch.n_seq_id = self._n_seq.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        self._batch.seq_id = ctypes.cast(self._seq_ptrs, ctypes.POINTER(pointer))
        self._batch.logits = self._wants.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))

    @staticmethod
    def _file_type(value: str | None) -> str:
        """``general.file_type`` as a name (``Q4_1``), for the model's dtype label."""
        try:
            from gguf import LlamaFileType

            return LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
        except (ImportError, TypeError, ValueError):
            return "gguf"

    def clear(self) -> None:
        """Forget every sequence's cells."""
        self._lib.llama_memory_clear(self._memory, True)

    def drop(self, seq: int) -> None:
        """Remove sequence ``seq``'s KV cells (it has left; its id can be reused)."""
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    def decode(self, tokens, positions, seqs, wants):
        """Run one batch (at most ``n_batch`` tokens): ``tokens[i]`` at position
        ``positions[i]`` of sequence ``seqs[i]``, its logits kept where ``wants[i]``. Returns
        the kept logits as a ``[rows, vocab]`` float32 tensor over llama.cpp's own buffer, in
        batch order; valid until the next ``decode``."""
        import numpy as np
        import torch

        n = len(tokens)
        self._token[:n] = tokens
        self._pos[:n] = positions
        self._seq[:n] = seqs
        self._wants[:n] = wants
        self._batch.n_tokens = n
        status = self._lib.llama_decode(self.ctx, self._batch)
        if status != 0:
            reason = {1: "no room left in the KV cache", 2: "aborted"}.get(status, "error")
            raise GenerationError(f"llama.cpp decode failed ({reason}, status {status}).")
        rows = int(self._wants[:n].sum())
        address = ctypes.cast(self._lib.llama_get_logits(self.ctx), ctypes.POINTER(ctypes.c_float))
        return torch.from_numpy(np.ctypeslib.as_array(address, shape=(rows, self.n_vocab)))

    def close(self) -> None:
        if self.ctx is not None:
            self._lib.llama_free(self.ctx)
            self.ctx = None
        self.llm.close()


class LlamaCppEngine:
    """Serves requests in continuously formed batches on one llama.cpp context, in arrival
    order; at most ``max_queue`` in flight.

    Args:
        loaded: the tokenizer, EOS ids and context size (``load_tokenizer_only`` gives one
            without torch weights); the HF tokenizer encodes and decodes, as on the
            transformers engine (its ids are the GGUF's vocabulary).
        model_path: the ``.gguf`` file llama.cpp runs.
        max_queue: requests in flight (running + waiting) past which ``submit`` refuses.
        max_batch_size: sequences decoding together (llama.cpp's ``n_seq_max``; 1 serves
            one request at a time).
        max_batch_tokens: bound on the running sequences' prompt + generated tokens (each
            reserves its prompt + ``max_new_tokens`` when it joins; one alone always runs).
        n_ctx: KV cells of each sequence (default: the model's context for a batch of one,
            else ``max_batch_tokens / max_batch_size``, at least 2048 and at most the
            model's context); no sequence grows past it. llama.cpp allocates
            ``n_ctx × max_batch_size`` cells up front.
        n_threads: llama.cpp threads (default: ``default_threads()``).
        n_batch: tokens per ``llama_decode`` call: one per running sequence, the rest
            prompt chunks.

    Raises:
        UnavailableError: llama-cpp-python is missing, or llama.cpp cannot load the file.
    """

    name = "llama.cpp"

    def __init__(
        self,
        loaded: LoadedModel,
        model_path: str,
        *,
        max_queue: int = 64,
        max_batch_size: int = 16,
        max_batch_tokens: int = 16384,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
    ) -> None:
        if min(max_batch_size, max_batch_tokens, n_batch) < 1:
            raise ValueError("max_batch_size, max_batch_tokens and n_batch must be >= 1")
        self.loaded = loaded
        self.n_threads = n_threads or default_threads()
        self.max_batch_size = max_batch_size
        self._context = _LlamaContext(
            model_path,
            n_ctx=n_ctx
            or self._default_n_ctx(loaded.max_context, max_batch_size, max_batch_tokens),
            n_threads=self.n_threads,
            n_batch=max(n_batch, max_batch_size),  # room for every running row, at least
            n_seq_max=max_batch_size,
        )
        self.max_batch_tokens = min(max_batch_tokens, self._context.n_ctx * max_batch_size)
        self.context_limit = min(loaded.max_context, self._context.n_ctx)
        self.dtype = self._context.file_type
        # Worker-only state: sequences being prefilled, and the decoding ones; each holds
        # a llama.cpp sequence id from ``_free`` while it is in the context.
        self._prefilling: deque[Sequence] = deque()
        self._rows: list[Sequence] = []
        self._slot: dict[int, int] = {}  # id(sequence) → llama.cpp sequence id
        self._free = list(range(max_batch_size - 1, -1, -1))
        self._batch_tokens = 0
        # Where the worker's time goes (cumulative, read by the benchmark): llama_decode
        # calls and their seconds, tokens picked, and the seconds of ``Sequence.step``
        # (sampling + detokenizing + stop rules) and of the sampler alone within it.
        self.timings = {"steps": 0, "decode_s": 0.0, "tokens": 0, "step_s": 0.0, "sample_s": 0.0}
        self._special_ids = frozenset(loaded.tokenizer.all_special_ids) | loaded.eos_token_ids
        self.queue = RequestQueue(max_queue, serving=self._serving)
        self.queue.start(self._run, "llama.cpp-engine")

    @staticmethod
    def _default_n_ctx(max_context: int, max_batch_size: int, max_batch_tokens: int) -> int:
        if max_batch_size == 1:
            return max_context
        return min(max_context, max(2048, max_batch_tokens // max_batch_size))

    # -- public --------------------------------------------------------------------------

    def describe(self) -> str:
        """What runs the model, for the UI's status line."""
        threads = f"{self.n_threads} thread{'s' if self.n_threads != 1 else ''}"
        if self.max_batch_size == 1:
            return f"llama.cpp engine ({self.dtype}, {threads}, one request at a time)"
        return (
            f"llama.cpp engine ({self.dtype}, {threads}, continuous batching, "
            f"up to {self.max_batch_size})"
        )

    def stats(self) -> dict[str, int]:
        """``GenerationEngine.stats()``'s keys: ``running``, ``waiting``, ``batch_tokens``
        (prompt + generated tokens of the running requests, as of the last step) and the
        limits."""
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
        # thread): its tensors are a few rows of logits, too small to split, and a team of
        # two on 2 busy cores made torch's ops several times slower.
        torch.set_num_threads(1)
        with torch.inference_mode():
            while self.queue.wait(busy=lambda: bool(self._prefilling or self._rows)):
                try:
                    self._admit()
                    self._step()
                except Exception as exc:  # a failed decode: every sequence in the context
                    # fails (their cells are gone with it); the worker keeps serving others
                    for sequence in (*self._prefilling, *self._rows):
                        self._fail(sequence, exc)
                    self._prefilling.clear()
                    self._rows = []
                    self._slot.clear()
                    self._free = list(range(self.max_batch_size - 1, -1, -1))
                    self._context.clear()
                self._batch_tokens = sum(len(s.ids) for s in (*self._prefilling, *self._rows))
        serving = self._serving()
        self._prefilling.clear()
        self._rows = []
        self.queue.drain(UnavailableError("The local model has shut down."), serving)

    def _serving(self) -> list[Request]:
        return [s.request for s in (*self._prefilling, *self._rows)]

    def _fail(self, sequence: Sequence, exc: Exception) -> None:
        if not isinstance(exc, GenerationError):
            log.error("generation failed", exc_info=exc)
            exc = GenerationError(f"Generation failed: {exc}")
        self.queue.end(sequence.request, exc)

    def _leave(self, sequence: Sequence) -> None:
        """``sequence`` has left the context: its cells are removed, its id is free."""
        slot = self._slot.pop(id(sequence), None)
        if slot is not None:
            self._context.drop(slot)
            self._free.append(slot)

    def _admit(self) -> None:
        """Move waiting requests into the context while it has room (in arrival order:
        ``scheduler.admit_count`` decides how many)."""
        running = [s.input_length + s.budget for s in (*self._prefilling, *self._rows)]
        admitted = self.queue.admit(
            running,
            self._reserve,
            max_batch_size=self.max_batch_size,
            max_batch_tokens=self.max_batch_tokens,
        )
        n_ctx = self._context.n_ctx
        for request in admitted:
            try:
                sequence = Sequence(request, self.loaded, self._special_ids)
            except Exception as exc:  # e.g. a sampler that cannot be built for this model
                self._fail_request(request, exc)
                continue
            room = n_ctx - sequence.input_length
            if room <= 0 < sequence.budget:  # n_ctx was set below the model's context
                self.queue.end(
                    request,
                    GenerationError(
                        f"The prompt ({sequence.input_length} tokens) does not fit llama.cpp's "
                        f"context of {n_ctx} tokens."
                    ),
                )
                continue
            sequence.budget = min(sequence.budget, room)
            if sequence.budget <= 0:
                self.queue.end(request)  # no room left in the context: nothing to generate
                continue
            sequence.sampler = _TimedSampler(sequence.sampler, self.timings)
            self._slot[id(sequence)] = self._free.pop()
            self._prefilling.append(sequence)

    def _fail_request(self, request: Request, exc: Exception) -> None:
        log.error("generation failed", exc_info=exc)
        self.queue.end(request, GenerationError(f"Generation failed: {exc}"))

    def _reserve(self, request: Request) -> int:
        return reserved_tokens(
            len(request.input_ids), request.params.max_new_tokens, self.context_limit
        )

    def _drop_cancelled(self) -> None:
        """Cancelled requests leave before the step (within one token of ``close()``)."""
        for sequence in [
            s for s in (*self._prefilling, *self._rows) if s.request.cancelled.is_set()
        ]:
            if sequence in self._rows:
                self._rows.remove(sequence)
            else:
                self._prefilling.remove(sequence)
            self.queue.emit("cancelled", tokens=sequence.index)
            self._leave(sequence)
            self.queue.end(sequence.request)

    def _step(self) -> None:
        """One ``llama_decode``: the last token of every decoding sequence, then prompt
        chunks of the waiting ones in arrival order, up to ``n_batch`` tokens; then each
        sequence whose logits came back picks its token."""
        if self.queue.stopping:
            return
        self._drop_cancelled()
        context = self._context
        tokens: list[int] = []
        positions: list[int] = []
        seqs: list[int] = []
        wants: list[bool] = []
        for sequence in self._rows:
            tokens.append(sequence.ids[-1])
            positions.append(len(sequence.ids) - 1)
            seqs.append(self._slot[id(sequence)])
            wants.append(True)
        chunks: list[tuple[Sequence, int, int]] = []  # (sequence, start, end) of its prompt
        room = context.n_batch - len(tokens)
        for sequence in self._prefilling:
            if room <= 0:
                break
            start = sequence.prefilled
            end = min(sequence.input_length, start + room)
            details = sequence.params.prefill_details
            slot = self._slot[id(sequence)]
            tokens += sequence.ids[start:end]
            positions += range(start, end)
            seqs += [slot] * (end - start)
            wants += [details] * (end - start)
            if end == sequence.input_length:
                wants[-1] = True
            chunks.append((sequence, start, end))
            room -= end - start
        if not tokens:
            return
        timings = self.timings
        started = time.perf_counter()
        try:
            logits = context.decode(tokens, positions, seqs, wants)
        except GenerationError as exc:  # the batch is shared: every sequence in it fails
            for sequence in [*self._rows, *(c[0] for c in chunks)]:
                self._fail(sequence, exc)
                self._leave(sequence)
            self._rows = []
            for sequence, _, _ in chunks:
                self._prefilling.remove(sequence)
            return
        timings["steps"] += 1
        timings["decode_s"] += time.perf_counter() - started
        # As of this step (set before any token is streamed): the running sequences' ids
        # with the token each is about to pick, and the prompts in the context.
        completing = sum(1 for c in chunks if c[2] == c[0].input_length)
        self._batch_tokens = (
            sum(len(s.ids) + 1 for s in self._rows)
            + sum(len(s.ids) for s in self._prefilling)
            + completing
        )
        row = 0
        keep: list[Sequence] = []
        for sequence in self._rows:
            if self._deliver(sequence, logits[row : row + 1]):
                keep.append(sequence)
            row += 1
        for sequence, start, end in chunks:
            sequence.prefilled = end
            details = sequence.params.prefill_details
            rows = (end - start) if details else int(end == sequence.input_length)
            if details:
                sequence._score_prompt(logits[None, row : row + rows], start, end)
            row += rows
            if sequence.prefilling:
                continue
            self._prefilling.remove(sequence)
            prefill = sequence._prefill_tokens() if details else None
            if self._deliver(sequence, logits[row - 1 : row], prefill):
                keep.append(sequence)
        self._rows = keep

    def _deliver(self, sequence: Sequence, logits, prefill: list | None = None) -> bool:
        """``sequence`` picks its token from ``logits`` and streams it; True while it goes
        on (else it has left the context)."""
        started = time.perf_counter()
        try:
            event = sequence.step(logits, prefill)
            self.timings["tokens"] += 1
            self.timings["step_s"] += time.perf_counter() - started
            self.queue.deliver(sequence, event)
        except Exception as exc:  # e.g. a grammar error: only this sequence fails
            self._fail(sequence, exc)
            self._leave(sequence)
            return False
        if sequence.finished:
            self._leave(sequence)
            self.queue.end(sequence.request)
            return False
        return True


class _TimedSampler:
    """A sequence's ``Sampler``, its calls' seconds added to ``timings["sample_s"]``."""

    def __init__(self, sampler, timings: dict) -> None:
        self._sampler, self._timings = sampler, timings

    def __call__(self, token_ids, logits):
        started = time.perf_counter()
        try:
            return self._sampler(token_ids, logits)
        finally:
            self._timings["sample_s"] += time.perf_counter() - started

    def __getattr__(self, name: str):
        return getattr(self._sampler, name)
