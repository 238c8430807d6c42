"""``LocalBackend``: the Backend protocol over the local engine (chat + text generation)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huggingface_hub import (
    ChatCompletionOutput,
    ChatCompletionOutputComplete,
    ChatCompletionOutputMessage,
    ChatCompletionOutputUsage,
    ChatCompletionStreamOutput,
    ChatCompletionStreamOutputChoice,
    ChatCompletionStreamOutputDelta,
    ChatCompletionStreamOutputUsage,
    TextGenerationOutput,
    TextGenerationOutputDetails,
    TextGenerationOutputToken,
    TextGenerationStreamOutput,
    TextGenerationStreamOutputStreamDetails,
    TextGenerationStreamOutputToken,
)

from backends import BackendStatus, register_backend
from backends.errors import BackendError, InputValidationError, UnavailableError
from backends.local.engine import Engine, TokenEvent
from backends.local.model import Device, LoadedModel, load_model, resolve_model
from backends.local.sampling import SamplingParams
from backends.params import (
    ChatCompletionParameters,
    ChatMessage,
    TextGenerationParameters,
    validate,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 100  # InferenceClient/TGI default for text_generation
DEFAULT_CHAT_MAX_TOKENS = 1024
VERSION = "0.1.0"


def _given(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


class StopHoldback:
    """Chat semantics for stop sequences (OpenAI): the stop text is never shown. Text that
    could be the start of a stop sequence is held back until it is known not to be one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.pending = ""
        self.done = False

    def feed(self, delta: str) -> str:
        if self.done:
            return ""
        self.pending += delta
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[: min(hits)], ""
            self.done = True  # nothing after the stop is ever released
            return out
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out) :]
        return out

    def finish(self) -> str:
        out = self.feed("")
        rest, self.pending = self.pending, ""
        return out + ("" if self.done else rest)


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
        load_timeout: float = 600.0,
    ) -> None:
        self.source = resolve_model(model)
        self.device = device
        self.cache_dir = cache_dir
        self.max_queue = max_queue
        self.load_timeout = load_timeout
        self._loaded: LoadedModel | None = None
        self._engine: Engine | None = None
        self._ready = threading.Event()
        self._error: BackendError | None = None
        self._message = f"Loading {self.source.model_id}…"
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalBackend:
        """Load the model in a background thread (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.load, name="model-loader", daemon=True)
            self._thread.start()
        return self

    def load(self) -> LocalBackend:
        """Load the model in this thread; safe to call once."""
        started = time.perf_counter()
        try:
            self._loaded = load_model(
                self.source, device=self.device, cache_dir=self.cache_dir, progress=self._progress
            )
            self._engine = Engine(self._loaded, max_queue=self.max_queue)
            # Stop the worker before the interpreter tears torch down under it.
            atexit.register(self._engine.shutdown)
            elapsed = time.perf_counter() - started
            self._message = (
                f"{self._loaded.model_id} on {self._loaded.device} ({self._loaded.dtype}), "
                f"{self._loaded.max_context} tokens of context — loaded in {elapsed:.1f} s"
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

    def _progress(self, message: str) -> None:
        log.info(message)
        self._message = message

    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()

    def status(self) -> BackendStatus:
        if not self._ready.is_set():
            return BackendStatus("loading", self._message)
        return BackendStatus("failed" if self._error else "ready", self._message)

    def _require(self) -> tuple[LoadedModel, Engine]:
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
        return self._loaded, self._engine

    # -- informational -------------------------------------------------------------------

    def health_check(self) -> bool:
        return self._ready.is_set() and self._error is None

    def get_endpoint_info(self) -> dict[str, Any]:
        """TGI's ``/info`` shape."""
        loaded, engine = self._require()
        return {
            "model_id": loaded.model_id,
            "model_dtype": loaded.dtype,
            "model_device_type": loaded.device,
            "max_input_tokens": loaded.max_context - 1,
            "max_total_tokens": loaded.max_context,
            "max_concurrent_requests": engine.max_queue,
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

    # -- generation ----------------------------------------------------------------------

    def _check_context(self, loaded: LoadedModel, n_input: int, max_new: int, name: str) -> None:
        if n_input + max_new > loaded.max_context:
            raise InputValidationError(
                f"`inputs` tokens + `{name}` must be <= {loaded.max_context}. "
                f"Given: {n_input} `inputs` tokens and {max_new} `{name}`",
                field="inputs",
                hint=f"This model has {loaded.max_context} tokens of context: shorten the "
                f"input or lower {name}.",
            )

    def text_generation(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        do_sample: bool = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        return_full_text: bool = False,
        details: bool = False,
        stream: bool = False,
    ):
        """Like ``InferenceClient.text_generation``: a string, a ``TextGenerationOutput``
        (``details=True``), or an iterator of strings / ``TextGenerationStreamOutput``."""
        params = validate(
            TextGenerationParameters,
            _given(
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
                seed=seed,
                stop=stop,
                return_full_text=return_full_text,
                details=details,
            ),
        )
        if not prompt:
            raise InputValidationError("`inputs` cannot be empty", field="inputs")
        loaded, engine = self._require()
        ids = loaded.tokenizer(prompt).input_ids
        max_new = params.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        self._check_context(loaded, len(ids), max_new, "max_new_tokens")
        sampling = SamplingParams(
            max_new_tokens=max_new,
            do_sample=params.do_sample,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            repetition_penalty=params.repetition_penalty,
            seed=params.seed,
            stop=tuple(params.stop or ()),
        )
        prefix = prompt if params.return_full_text else ""
        outputs = self._text_stream(engine, ids, sampling, prefix)
        if stream:
            return outputs if details else (o.token.text for o in outputs)
        tokens, last = [], None
        for last in outputs:
            tokens.append(TextGenerationOutputToken(**vars(last.token)))
        assert last is not None and last.details is not None
        if not details:
            return last.generated_text
        return TextGenerationOutput(
            generated_text=last.generated_text,
            details=TextGenerationOutputDetails(
                finish_reason=last.details.finish_reason,
                generated_tokens=last.details.generated_tokens,
                prefill=[],
                tokens=tokens,
                seed=last.details.seed,
            ),
        )

    @staticmethod
    def _text_stream(
        engine: Engine, ids: list[int], sampling: SamplingParams, prefix: str
    ) -> Iterator[TextGenerationStreamOutput]:
        # Submitted on the first next(), inside the generator: a consumer that goes away
        # before reading anything then never holds the engine (nothing to cancel).
        with engine.submit(ids, sampling) as stream:
            for event in stream:
                out = TextGenerationStreamOutput(
                    index=event.index,
                    token=TextGenerationStreamOutputToken(
                        id=event.id, logprob=event.logprob, special=event.special, text=event.text
                    ),
                )
                if event.finish_reason:
                    out.generated_text = prefix + (event.generated_text or "")
                    out.details = TextGenerationStreamOutputStreamDetails(
                        finish_reason=event.finish_reason,
                        generated_tokens=event.index,
                        input_length=event.input_length,
                        seed=event.seed,
                    )
                yield out

    def chat_completion(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        stream: bool = False,
    ):
        """Like ``InferenceClient.chat_completion``: a ``ChatCompletionOutput`` or an
        iterator of ``ChatCompletionStreamOutput`` (the last chunk carries ``usage``)."""
        params = validate(
            ChatCompletionParameters,
            _given(
                max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop
            ),
        )
        if not messages:
            raise InputValidationError("`messages` cannot be empty", field="messages")
        checked = [validate(ChatMessage, dict(m)).model_dump() for m in messages]
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
        )
        chunks = self._chat_stream(engine, ids, sampling, loaded.model_id)
        if stream:
            return chunks
        text, last = "", None
        for last in chunks:
            text += last.choices[0].delta.content or ""
        assert last is not None and last.usage is not None
        return ChatCompletionOutput(
            choices=[
                ChatCompletionOutputComplete(
                    finish_reason=last.choices[0].finish_reason,
                    index=0,
                    message=ChatCompletionOutputMessage(role="assistant", content=text),
                )
            ],
            created=last.created,
            id=last.id,
            model=last.model,
            system_fingerprint=last.system_fingerprint,
            usage=ChatCompletionOutputUsage(**vars(last.usage)),
        )

    @staticmethod
    def _chat_stream(
        engine: Engine, ids: list[int], sampling: SamplingParams, model_id: str
    ) -> Iterator[ChatCompletionStreamOutput]:
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        holdback = StopHoldback(sampling.stop)

        def chunk(content: str, finish: str | None = None, event: TokenEvent | None = None):
            usage = None
            if event is not None:
                usage = ChatCompletionStreamOutputUsage(
                    completion_tokens=event.index,
                    prompt_tokens=event.input_length,
                    total_tokens=event.index + event.input_length,
                )
            return ChatCompletionStreamOutput(
                choices=[
                    ChatCompletionStreamOutputChoice(
                        delta=ChatCompletionStreamOutputDelta(role="assistant", content=content),
                        index=0,
                        finish_reason=finish,
                    )
                ],
                created=created,
                id=chunk_id,
                model=model_id,
                system_fingerprint=f"inference-playground-{VERSION}",
                usage=usage,
            )

        with engine.submit(ids, sampling) as stream:  # on first next(), as in _text_stream
            for event in stream:
                if event.finish_reason:
                    finish = "length" if event.finish_reason == "length" else "stop"
                    yield chunk(
                        holdback.feed(event.text if not event.special else "") + holdback.finish(),
                        finish,
                        event,
                    )
                    return
                if not event.special:
                    text = holdback.feed(event.text)
                    if text:
                        yield chunk(text)
