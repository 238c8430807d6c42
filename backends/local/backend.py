"""``LocalBackend``: the Backend protocol over the local engine (chat + text generation)."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from backends import BackendStatus, register_backend, vision
from backends.errors import BackendError, InputValidationError, UnavailableError
from backends.local.engine.probe import Verdict, probe
from backends.local.engine.protocol import GenerationEngine
from backends.local.engine.select import (
    choose_engine,
    create_engine,
    load_for_engine,
)
from backends.local.model import Device, LoadedModel, resolve_model
from backends.local.outputs import (
    VERSION,
    LocalStream,
    QueueSpot,
    best_of_output,
    chat_output,
    chat_stream,
    text_output,
    text_stream,
)
from backends.local.requests import chat_request, templated, text_request
from backends.local.tasks import LocalTasks
from backends.params import (
    WATERMARK_DELTA,
    WATERMARK_GAMMA,
    ChatCompletionParameters,
    ChatMessage,
    TextGenerationParameters,
    check_text,
    validate,
)

log = logging.getLogger(__name__)

LOAD_HINT = (
    "Point --model (or PLAYGROUND_MODEL) at a complete transformers model directory "
    "(config.json, tokenizer, weights), an intact .gguf file or a Hub id, or unset it for "
    "the bundled model; PLAYGROUND_LOG_LEVEL=DEBUG logs the stack trace."
)


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


WATERMARK_Z = 4.0  # z-score above which a text counts as watermarked (TGI/paper: 4)
WATERMARK_MIN_TOKENS = 16  # below this a z-score says little either way


def _given(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


@register_backend("local")
class LocalBackend:
    """The bundled (or ``--model``) causal LM, loaded in a background thread at ``start()``.

    Calls made while the model loads wait for it (up to ``load_timeout`` seconds); a model
    that failed to load answers every call with ``UnavailableError`` and the reason.
    """

    name = "local"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: Device = "auto",
        cache_dir: Path | None = None,
        max_queue: int = 64,
        max_batch_size: int = 16,
        max_batch_tokens: int = 16384,
        threads: int | None = None,
        load_timeout: float = 600.0,
        task_models: dict[str, str] | None = None,
        engine: str = "auto",
    ) -> None:
        self.source = resolve_model(model)
        self.engine_choice = engine  # --engine: auto | transformers | llama.cpp
        self.engine_name: str | None = None  # the one chosen at load time
        self.engine_note = ""  # why it is not the one asked for (llama.cpp failed its canary)
        self.task_models = dict(task_models or {})  # the local model per task (--task-model)
        self.device = device
        self.cache_dir = cache_dir
        self.max_queue = max_queue
        self.max_batch_size = max_batch_size  # requests decoding together (continuous batching)
        self.max_batch_tokens = max_batch_tokens  # their prompt + generated tokens, at most
        self.threads = threads  # llama.cpp's threads (None: default_threads())
        self.load_timeout = load_timeout
        self._loaded: LoadedModel | None = None
        self._engine: GenerationEngine | None = None
        self._ready = threading.Event()
        self._error: BackendError | None = None
        self._message = f"Loading {self.source.model_id}…"
        self._thread: threading.Thread | None = None
        self._tasks: LocalTasks | None = None
        self._tasks_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalBackend:
        """Load the model in a background thread (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.load, name="model-loader", daemon=True)
            self._thread.start()
        return self

    def choose_engine(self) -> str:
        """Pick the engine (``--engine``), letting llama.cpp prove it runs on this CPU first
        (a child process, cached per library build: see ``llamacpp_probe``). app.py calls it
        before serving, so an explicit ``--engine llama.cpp`` that cannot run exits at once.

        Raises:
            UnavailableError: the engine asked for cannot run here (the hint says why).
        """
        if self.engine_name is None:
            choice = choose_engine(
                self.engine_choice, self.source, self.device, canary=self._canary
            )
            self.engine_name, self.engine_note = choice.name, choice.note
            log.info("%s", choice.reason)
        return self.engine_name

    def _canary(self, model_path: str) -> Verdict:
        from backends.local.engine.llamacpp import default_threads

        self._progress("Checking that llama.cpp runs on this CPU…")
        threads = self.threads or default_threads()
        return probe(model_path, threads=threads, cache_dir=self.cache_dir)

    def load(self) -> LocalBackend:
        """Load the model in this thread; safe to call once."""
        started = time.perf_counter()
        try:
            engine = self.choose_engine()
            self._loaded = load_for_engine(
                engine,
                self.source,
                device=self.device,
                cache_dir=self.cache_dir,
                progress=self._progress,
            )
            # Both engines batch continuously under the same limits.
            options: dict[str, Any] = {
                "max_batch_size": self.max_batch_size,
                "max_batch_tokens": self.max_batch_tokens,
            }
            if engine == "llama.cpp":
                options["model_path"] = self.source.location
                options["n_threads"] = self.threads
            self._engine = create_engine(engine, self._loaded, max_queue=self.max_queue, **options)
            context = f"{self._loaded.max_context} tokens of context"
            if self._engine.context_limit < self._loaded.max_context:
                # llama.cpp batching holds fewer KV cells per sequence than the model's
                # context: check requests against, and report, what really fits.
                context = (
                    f"{self._engine.context_limit} tokens of context a request (the model "
                    f"has {self._loaded.max_context}: raise --max-batch-tokens or lower "
                    "--max-batch-size for more)"
                )
                self._loaded = dataclasses.replace(
                    self._loaded, max_context=self._engine.context_limit
                )
            # Stop the worker before the interpreter tears torch down under it.
            atexit.register(self._engine.shutdown)
            elapsed = time.perf_counter() - started
            self._message = (
                f"{self._loaded.model_id} on {self._loaded.device} ({self.dtype}), "
                f"{context}, {self.engine_description} "
                f"— loaded in {elapsed:.1f} s"
            )
        except BackendError as exc:
            self._error = exc
            log.error("%s", exc.user_message())  # the operator's terminal says it too
        except Exception as exc:  # any loader failure becomes a status the UI can show
            self._error = UnavailableError(
                f"Loading {self.source.model_id} ({self.source.location}) failed: "
                f"{type(exc).__name__}: {shorten(str(exc))}",
                hint=LOAD_HINT,
            )
            # One line for the operator; the stack trace only when asked for (DEBUG).
            log.error("%s", self._error.user_message())
            log.debug("model load failed", exc_info=exc)
        finally:
            if self._error is not None:
                self._message = self._error.user_message()
            self._ready.set()
        return self

    @property
    def dtype(self) -> str:
        """The weights' type as served: fp32/bf16 for transformers, the GGUF's quantization
        (e.g. Q4_1) for llama.cpp."""
        if self._engine is not None:
            return self._engine.dtype
        return self._loaded.dtype if self._loaded else ""

    @property
    def engine_description(self) -> str:
        """e.g. "llama.cpp engine (Q4_1, 1 thread)" or "transformers engine (… up to 16)"."""
        return self._engine.describe() if self._engine is not None else ""

    def _progress(self, message: str) -> None:
        log.info(message)
        self._message = message

    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()

    def status(self) -> BackendStatus:
        if not self._ready.is_set():
            return BackendStatus("loading", self._message, self.engine_note)
        failure = self._engine.queue.failure if self._engine is not None else None
        if failure is not None:  # the engine's worker died after loading
            return BackendStatus("failed", failure.user_message(), self.engine_note)
        return BackendStatus("failed" if self._error else "ready", self._message, self.engine_note)

    def _require(self) -> tuple[LoadedModel, GenerationEngine]:
        if not self._ready.is_set():
            if self._thread is None:
                self.start()
            if not self._ready.wait(self.load_timeout):
                raise UnavailableError(
                    f"The model is still loading: {self._message}", hint="Retry in a moment."
                )
        if self._error is not None:
            raise self._error
        assert self._loaded is not None and self._engine is not None
        if self._engine.queue.failure is not None:
            raise self._engine.queue.failure
        return self._loaded, self._engine

    # -- informational -------------------------------------------------------------------

    def health_check(self) -> bool:
        return self.status().state == "ready"

    def metrics(self) -> dict[str, Any]:
        """The engine's counts (``RequestQueue.metrics``), or {} before it is loaded."""
        return self._engine.queue.metrics() if self._engine is not None else {}

    def get_endpoint_info(self) -> dict[str, Any]:
        """TGI's ``/info`` shape."""
        loaded, engine = self._require()
        return {
            "model_id": loaded.model_id,
            "model_dtype": self.dtype,
            "model_device_type": loaded.device,
            "max_input_tokens": loaded.max_context - 1,
            "max_total_tokens": loaded.max_context,
            "max_concurrent_requests": engine.queue.max_queue,
            # TGI's batching limits: requests decoding together, and their tokens.
            "max_batch_size": engine.stats()["max_batch_size"],
            "max_batch_total_tokens": engine.stats()["max_batch_tokens"],
            "max_stop_sequences": 4,
            "router": "inference-playground",
            "version": VERSION,
        }

    def tokenize(self, text: str) -> list[dict[str, Any]]:
        """TGI's ``/tokenize``: ``[{"id", "text", "start", "stop"}]`` with character offsets."""
        check_text(text, "inputs")
        loaded, _ = self._require()
        encoding = loaded.tokenizer(text, return_offsets_mapping=True)
        return [
            {"id": token_id, "text": text[start:stop], "start": start, "stop": stop}
            for token_id, (start, stop) in zip(
                encoding.input_ids, encoding.offset_mapping, strict=True
            )
        ]

    def chat_prompt(
        self,
        messages: list[dict[str, str]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """ "Show prompt": the exact text the chat template makes of ``messages`` for
        ``chat_completion`` (tools folded in as it does), its token count and the context."""
        params = validate(ChatCompletionParameters, _given(tools=tools, tool_choice=tool_choice))
        if not messages:
            raise InputValidationError("`messages` cannot be empty", field="messages")
        checked = [validate(ChatMessage, dict(m)).model_dump() for m in messages]
        loaded, _ = self._require()
        prompt, ids, _ = templated(loaded, checked, params)
        return {"prompt": prompt, "tokens": len(ids), "max_context": loaded.max_context}

    def detect_watermark(self, text: str) -> dict[str, Any]:
        """Whether ``text`` carries the watermark this server adds with ``watermark=True``
        (Kirchenbauer et al., TGI's gamma/delta): the z-score of green-list tokens.

        Returns ``{"watermarked", "z_score", "green_fraction", "tokens", "threshold"}``.
        """
        import torch
        from transformers.generation import WatermarkDetector, WatermarkingConfig

        check_text(text, "text")
        loaded, _ = self._require()
        ids = loaded.tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) < WATERMARK_MIN_TOKENS:
            raise InputValidationError(
                f"The watermark test needs at least {WATERMARK_MIN_TOKENS} tokens of text "
                f"(got {len(ids)}): paste a longer text.",
                field="text",
            )
        detector = WatermarkDetector(
            loaded.config or loaded.model.config,
            loaded.device,
            WatermarkingConfig(greenlist_ratio=WATERMARK_GAMMA, bias=WATERMARK_DELTA),
        )
        result = detector(
            torch.tensor([ids], device=loaded.device), z_threshold=WATERMARK_Z, return_dict=True
        )
        return {
            "watermarked": bool(result.prediction[0]),
            "z_score": float(result.z_score[0]),
            "green_fraction": float(result.green_fraction[0]),
            "tokens": int(result.num_tokens_scored[0]),
            "threshold": WATERMARK_Z,
        }

    # -- generation ----------------------------------------------------------------------

    # -- other tasks (transformers pipelines, loaded on first use) --------------------------

    @property
    def tasks(self) -> LocalTasks:
        """The pipeline runner for every task in ``backends.tasks`` (built on first use)."""
        with self._tasks_lock:
            if self._tasks is None:
                self._tasks = LocalTasks(device=self.device, models=self.task_models)
            return self._tasks

    def run_task(
        self,
        name: str,
        inputs: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        model: str | None = None,
    ) -> Any:
        """Run a task on a local transformers model (see ``LocalTasks.run``)."""
        for key, value in inputs.items():  # text and lists of sentences or labels
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str):
                    check_text(text, key)
        return self.tasks.run(name, inputs, parameters or {}, model=model)

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
    ):
        """Like ``InferenceClient.text_generation``: a string, a ``TextGenerationOutput``
        (``details=True``), or an iterator of strings / ``TextGenerationStreamOutput``.
        Parameters have TGI's semantics and bounds (see ``backends.params``)."""
        values = {k: v for k, v in locals().items() if k not in ("self", "prompt", "stream")}
        params = validate(TextGenerationParameters, _given(**values))
        if stream and params.best_of and params.best_of > 1:
            raise InputValidationError(
                "`best_of` != 1 is not supported when streaming tokens", field="best_of"
            )
        if not prompt:  # before waiting for the model
            raise InputValidationError("`inputs` cannot be empty", field="inputs")
        check_text(prompt, "inputs")
        loaded, engine = self._require()
        ids, sampling = text_request(loaded, prompt, params)
        prefix = prompt if params.return_full_text else ""
        if stream:
            spot = QueueSpot(engine)
            outputs = text_stream(spot, ids, sampling, prefix)
            return LocalStream(outputs if details else (o.token.text for o in outputs), spot)
        runs = [text_output(engine, ids, sampling, prefix) for _ in range(params.best_of or 1)]
        best = best_of_output(runs)
        return best if details else best.generated_text

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
    ):
        """Like ``InferenceClient.chat_completion``: a ``ChatCompletionOutput`` or an
        iterator of ``ChatCompletionStreamOutput`` (the last chunk carries ``usage``).
        ``logprobs``/``top_logprobs`` add each token's logprob and alternatives."""
        values = {k: v for k, v in locals().items() if k not in ("self", "messages", "stream")}
        params = validate(ChatCompletionParameters, _given(**values))
        if not messages:
            raise InputValidationError("`messages` cannot be empty", field="messages")
        # Before the engine sees anything: the local model is text-only.
        vision.refuse_images(messages, self.source.model_id)
        checked = [validate(ChatMessage, dict(m)).model_dump() for m in messages]
        loaded, engine = self._require()
        ids, sampling, tool_mode = chat_request(loaded, checked, params)
        spot = QueueSpot(engine)
        chunks = chat_stream(
            spot, ids, sampling, loaded.model_id, params.logprobs, tool_mode=tool_mode
        )
        return LocalStream(chunks, spot) if stream else chat_output(chunks, params.logprobs)
