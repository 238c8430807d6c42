"""``LocalBackend``: the Backend protocol over the local engine (chat + text generation)."""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionOutputComplete,
    ChatCompletionOutputFunctionDefinition,
    ChatCompletionOutputLogprob,
    ChatCompletionOutputLogprobs,
    ChatCompletionOutputMessage,
    ChatCompletionOutputToolCall,
    ChatCompletionOutputTopLogprob,
    ChatCompletionOutputUsage,
    TextGenerationOutputBestOfSequence,
)

from backends import BackendStatus, register_backend
from backends.errors import BackendError, InputValidationError, UnavailableError
from backends.local.engine.grammar import (
    TOOL_PROMPT,
    GrammarError,
    compile_grammar,
    tool_call_schema,
)
from backends.local.engine.probe import Verdict, probe
from backends.local.engine.protocol import GenerationEngine
from backends.local.engine.sampling import SamplingParams
from backends.local.engine.select import (
    choose_engine,
    create_engine,
    load_for_engine,
)
from backends.local.model import Device, LoadedModel, resolve_model
from backends.local.outputs import VERSION, chat_stream, text_output, text_stream
from backends.local.tasks import LocalTasks
from backends.params import (
    WATERMARK_DELTA,
    WATERMARK_GAMMA,
    ChatCompletionParameters,
    ChatMessage,
    TextGenerationParameters,
    validate,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 100  # InferenceClient/TGI default for text_generation
DEFAULT_CHAT_MAX_TOKENS = 1024
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
        return self.engine_name

    def _canary(self, model_path: str) -> Verdict:
        from backends.local.engine.llamacpp import default_threads

        self._progress("Checking that llama.cpp runs on this CPU…")
        return probe(model_path, threads=default_threads(), cache_dir=self.cache_dir)

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
            if engine == "llama.cpp":
                options: dict[str, Any] = {"model_path": self.source.location}
            else:
                options = {
                    "max_batch_size": self.max_batch_size,
                    "max_batch_tokens": self.max_batch_tokens,
                }
            self._engine = create_engine(engine, self._loaded, max_queue=self.max_queue, **options)
            # Stop the worker before the interpreter tears torch down under it.
            atexit.register(self._engine.shutdown)
            elapsed = time.perf_counter() - started
            self._message = (
                f"{self._loaded.model_id} on {self._loaded.device} ({self.dtype}), "
                f"{self._loaded.max_context} tokens of context, {self.engine_description} "
                f"— loaded in {elapsed:.1f} s"
            )
        except BackendError as exc:
            self._error = exc
        except Exception as exc:  # any loader failure becomes a status the UI can show
            log.exception("model load failed")
            self._error = UnavailableError(f"Loading {self.source.model_id} failed: {exc}")
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
        loaded, _ = self._require()
        encoding = loaded.tokenizer(text, return_offsets_mapping=True)
        return [
            {"id": token_id, "text": text[start:stop], "start": start, "stop": stop}
            for token_id, (start, stop) in zip(
                encoding.input_ids, encoding.offset_mapping, strict=True
            )
        ]

    def detect_watermark(self, text: str) -> dict[str, Any]:
        """Whether ``text`` carries the watermark this server adds with ``watermark=True``
        (Kirchenbauer et al., TGI's gamma/delta): the z-score of green-list tokens.

        Returns ``{"watermarked", "z_score", "green_fraction", "tokens", "threshold"}``.
        """
        import torch
        from transformers.generation import WatermarkDetector, WatermarkingConfig

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
                self._tasks = LocalTasks(
                    device=self.device, cache_dir=self.cache_dir, models=self.task_models
                )
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
        return self.tasks.run(name, inputs, parameters or {}, model=model)

    def _check_context(self, loaded: LoadedModel, n_input: int, max_new: int, name: str) -> None:
        if n_input + max_new > loaded.max_context:
            raise InputValidationError(
                f"`inputs` tokens + `{name}` must be <= {loaded.max_context}. "
                f"Given: {n_input} `inputs` tokens and {max_new} `{name}`",
                field="inputs",
                hint=f"This model has {loaded.max_context} tokens of context: shorten the "
                f"input or lower {name}.",
            )

    @staticmethod
    def _compile(loaded: LoadedModel, grammar: dict[str, Any] | None):
        """TGI's ``grammar`` compiled for this tokenizer, or a 422-style error before any
        compute (invalid JSON schema, invalid regex, unknown type)."""
        if grammar is None:
            return None
        value = grammar.get("value")
        if isinstance(value, dict) and "properties" in value and "type" not in value:
            # A schema with properties but no type means an object to TGI (outlines), though
            # JSON Schema would accept any value: follow TGI (the reference's own example).
            grammar = {**grammar, "value": {"type": "object", **value}}
        try:
            return compile_grammar(loaded.tokenizer, grammar, eos_token_ids=loaded.eos_token_ids)
        except GrammarError as exc:
            raise InputValidationError(f"Invalid grammar: {exc}", field="grammar") from None

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
        if not prompt:
            raise InputValidationError("`inputs` cannot be empty", field="inputs")
        loaded, engine = self._require()
        ids = loaded.tokenizer(prompt).input_ids
        if params.truncate is not None:
            ids = ids[-params.truncate :]  # keep the last N input tokens, as TGI does
        max_new = params.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        self._check_context(loaded, len(ids), max_new, "max_new_tokens")
        sampling = SamplingParams(
            max_new_tokens=max_new,
            do_sample=params.do_sample,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            typical_p=params.typical_p,
            repetition_penalty=params.repetition_penalty,
            frequency_penalty=params.frequency_penalty,
            seed=params.seed,
            stop=tuple(params.stop or ()),
            top_n_tokens=params.top_n_tokens or 0,
            watermark=params.watermark,
            prefill_details=params.decoder_input_details,
            grammar=self._compile(loaded, params.grammar),
        )
        prefix = prompt if params.return_full_text else ""
        if stream:
            outputs = text_stream(engine, ids, sampling, prefix)
            return outputs if details else (o.token.text for o in outputs)
        runs = [text_output(engine, ids, sampling, prefix) for _ in range(params.best_of or 1)]
        # best_of: the sequence with the highest total logprob wins; the others are reported.
        best = max(runs, key=lambda o: sum(t.logprob for t in o.details.tokens))
        if not details:
            return best.generated_text
        others = [o for o in runs if o is not best]
        if others:
            best.details.best_of_sequences = [
                TextGenerationOutputBestOfSequence(
                    generated_text=o.generated_text,
                    finish_reason=o.details.finish_reason,
                    generated_tokens=o.details.generated_tokens,
                    prefill=o.details.prefill,
                    tokens=o.details.tokens,
                    seed=o.details.seed,
                    top_tokens=o.details.top_tokens,
                )
                for o in others
            ]
        return best

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
        checked = [validate(ChatMessage, dict(m)).model_dump() for m in messages]
        grammar, tool_mode = params.response_format, False
        if params.tools and params.tool_choice != "none":
            try:
                schema = tool_call_schema(params.tools, params.tool_choice)
            except GrammarError as exc:
                raise InputValidationError(str(exc), field="tools") from None
            if schema is not None:
                # As TGI does for a chat template without tool support: the tools and the
                # instruction go after the last message; the grammar enforces the shape.
                grammar, tool_mode = {"type": "json", "value": schema}, True
                note = f"{TOOL_PROMPT}{json.dumps(params.tools, ensure_ascii=False)}"
                checked[-1] = {**checked[-1], "content": f"{checked[-1]['content']}\n{note}"}
        loaded, engine = self._require()
        prompt = loaded.tokenizer.apply_chat_template(
            checked, add_generation_prompt=True, tokenize=False
        )
        ids = loaded.tokenizer(prompt, add_special_tokens=False).input_ids
        room = loaded.max_context - len(ids)
        max_new = params.max_tokens or max(1, min(DEFAULT_CHAT_MAX_TOKENS, room))
        self._check_context(loaded, len(ids), max_new, "max_tokens")
        greedy = params.temperature == 0
        sampling = SamplingParams(
            max_new_tokens=max_new,
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy or params.top_p == 1 else params.top_p,
            seed=params.seed,
            stop=tuple(params.stop or ()),
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            top_n_tokens=(params.top_logprobs or 0) if params.logprobs else 0,
            grammar=self._compile(loaded, grammar),
        )
        chunks = chat_stream(
            engine, ids, sampling, loaded.model_id, params.logprobs, tool_mode=tool_mode
        )
        if stream:
            return chunks
        text, last, token_logprobs, tool_calls = "", None, [], None
        for last in chunks:
            text += last.choices[0].delta.content or ""
            if last.choices[0].delta.tool_calls:
                tool_calls = [
                    ChatCompletionOutputToolCall(
                        function=ChatCompletionOutputFunctionDefinition(
                            name=call.function.name, arguments=call.function.arguments
                        ),
                        id=call.id,
                        type=call.type,
                    )
                    for call in last.choices[0].delta.tool_calls
                ]
            if last.choices[0].logprobs is not None:
                token_logprobs.extend(last.choices[0].logprobs.content)
        assert last is not None and last.usage is not None
        return ChatCompletionOutput(
            choices=[
                ChatCompletionOutputComplete(
                    finish_reason=last.choices[0].finish_reason,
                    index=0,
                    message=ChatCompletionOutputMessage(
                        role="assistant", content=text or None, tool_calls=tool_calls
                    ),
                    logprobs=ChatCompletionOutputLogprobs(
                        content=[
                            ChatCompletionOutputLogprob(
                                logprob=lp.logprob,
                                token=lp.token,
                                top_logprobs=[
                                    ChatCompletionOutputTopLogprob(logprob=t.logprob, token=t.token)
                                    for t in lp.top_logprobs
                                ],
                            )
                            for lp in token_logprobs
                        ]
                    )
                    if params.logprobs
                    else None,
                )
            ],
            created=last.created,
            id=last.id,
            model=last.model,
            system_fingerprint=last.system_fingerprint,
            usage=ChatCompletionOutputUsage(**vars(last.usage)),
        )
