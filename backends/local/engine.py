"""The local generation engine: a worker thread that owns the model and streams tokens.

Requests are submitted from any thread and come back as a ``TokenStream``. The worker runs
a prefill then one forward pass per token with a KV cache, checking before every pass
whether the consumer went away (``TokenStream.close()``: stop button, closed tab, dropped
API call), so a cancelled request stops within one token and the next one starts at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from backends.errors import GenerationError, OverloadedError
from backends.local.model import LoadedModel
from backends.local.sampling import Sampler, SamplingParams

log = logging.getLogger(__name__)

# Prompt tokens used as decoding context for the first generated tokens, so tokenizers that
# encode a leading space in the token (SentencePiece) decode it correctly (as TGI does).
_DECODE_CONTEXT = 5


@dataclass
class TokenEvent:
    """One generated token; the last event of a stream carries the finish fields."""

    index: int
    id: int
    text: str
    logprob: float
    special: bool
    input_length: int
    finish_reason: str | None = None  # "length" | "eos_token" | "stop_sequence"
    generated_text: str | None = None
    seed: int | None = None
    # ``top_n_tokens`` alternatives at this step: (id, text, logprob, special), best first.
    top_tokens: list[tuple[int, str, float, bool]] | None = None
    # On the first event when prefill details were asked for: the prompt's tokens with the
    # model's logprob of each given the ones before (None for the first), as TGI reports.
    prefill: list[tuple[int, str, float | None]] | None = None


class IncrementalDecoder:
    """Turns token ids into text deltas without splitting multi-byte characters."""

    def __init__(self, tokenizer, context_ids: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(context_ids[-_DECODE_CONTEXT:])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def step(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        text = self._decode(self.ids[self.prefix_offset :])
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(prefix) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        text = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return text[len(prefix) :] if len(text) > len(prefix) else ""


def _hits_stop(text: str, delta: str, stops: tuple[str, ...]) -> bool:
    """Whether appending ``delta`` to ``text`` completes a stop sequence (only the tail
    that could hold a new match is searched, so the cost does not grow with the text)."""
    if not delta:
        return False
    longest = max(len(s) for s in stops)
    window = (text + delta)[-(len(delta) + longest - 1) :]
    return any(s in window for s in stops)


_END = object()


@dataclass
class _Request:
    input_ids: list[int]
    params: SamplingParams
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class TokenStream:
    """Iterator over a request's ``TokenEvent``s. ``close()`` cancels the request; use it
    in a ``finally`` (or as a context manager) so an abandoned consumer frees the engine."""

    def __init__(self, request: _Request) -> None:
        self._request = request

    def __iter__(self) -> Iterator[TokenEvent]:
        while True:
            item = self._request.events.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._request.cancelled.set()

    def __enter__(self) -> TokenStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Engine:
    """Serves one request at a time, in arrival order; at most ``max_queue`` wait."""

    def __init__(self, loaded: LoadedModel, *, max_queue: int = 64) -> None:
        self.loaded = loaded
        self.max_queue = max_queue
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0
        tokenizer = loaded.tokenizer
        self._special_ids = frozenset(tokenizer.all_special_ids) | loaded.eos_token_ids
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    @property
    def queue_size(self) -> int:
        """Requests submitted and not yet finished (running one included)."""
        return self._waiting

    def submit(self, input_ids: list[int], params: SamplingParams) -> TokenStream:
        """Queue a request; raises ``OverloadedError`` past ``max_queue``."""
        with self._lock:
            if self._waiting >= self.max_queue:
                raise OverloadedError(
                    f"The local model is busy ({self._waiting} requests queued).",
                    hint="Retry in a moment.",
                )
            self._waiting += 1
        request = _Request(list(input_ids), params)
        self._queue.put(request)
        return TokenStream(request)

    def shutdown(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import torch

        torch.set_grad_enabled(False)
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                if not request.cancelled.is_set():
                    with torch.inference_mode():
                        self._generate(request)
            except Exception as exc:  # keep serving others; the consumer gets the reason
                log.exception("generation failed")
                request.events.put(GenerationError(f"Generation failed: {exc}"))
            finally:
                request.events.put(_END)
                with self._lock:
                    self._waiting -= 1

    def _prefill(self, ids: list[int], logits) -> list[tuple[int, str, float | None]]:
        """The prompt's tokens with the raw model logprob of each (first: None)."""
        import torch

        logprobs = torch.log_softmax(logits[0, :-1].float(), dim=-1)
        picked = logprobs.gather(1, torch.tensor(ids[1:], device=logits.device)[:, None])[:, 0]
        values = [None, *picked.tolist()]
        tokenizer = self.loaded.tokenizer
        return [(i, tokenizer.decode([i]), lp) for i, lp in zip(ids, values, strict=True)]

    def _generate(self, request: _Request) -> None:
        import torch

        loaded, params = self.loaded, request.params
        model, tokenizer = loaded.model, loaded.tokenizer
        sampler = Sampler(params, loaded.device)
        special_ids = self._special_ids
        ids = list(request.input_ids)
        input_length = len(ids)
        budget = min(params.max_new_tokens, loaded.max_context - input_length)
        decoder = IncrementalDecoder(tokenizer, ids)
        text = ""
        started = time.perf_counter()

        past = None
        step_input = torch.tensor([ids], device=loaded.device)
        for index in range(1, budget + 1):
            if request.cancelled.is_set():
                log.info("request cancelled after %d tokens", index - 1)
                return
            # Logits for the last position only, unless the prompt's own logprobs are asked
            # for: a long prompt's full logits would take GBs (positions × vocabulary).
            all_logits = index == 1 and params.prefill_details
            out = model(
                input_ids=step_input,
                past_key_values=past,
                use_cache=True,
                logits_to_keep=0 if all_logits else 1,
            )
            past = out.past_key_values
            choice = sampler(ids, out.logits[:, -1, :])
            token_id = choice.token_id
            prefill = (
                self._prefill(ids, out.logits) if index == 1 and params.prefill_details else None
            )
            ids.append(token_id)
            special = token_id in special_ids
            delta = "" if special else decoder.step(token_id)
            finish = None
            if token_id in loaded.eos_token_ids:
                finish = "eos_token"
            elif params.stop and _hits_stop(text, delta, params.stop):
                finish = "stop_sequence"
            elif index == budget:
                finish = "length"
            if finish == "length":
                delta += decoder.flush()
            text += delta
            token_text = tokenizer.convert_ids_to_tokens(token_id) if special else delta
            event = TokenEvent(index, token_id, token_text, choice.logprob, special, input_length)
            event.prefill = prefill
            if choice.top:
                event.top_tokens = [
                    (i, tokenizer.decode([i]), lp, i in special_ids) for i, lp in choice.top
                ]
            if finish:
                event.finish_reason = finish
                event.generated_text = text
                event.seed = sampler.seed if sampler.sampling else None
                request.events.put(event)
                elapsed = time.perf_counter() - started
                log.info(
                    "request done: %d prompt + %d new tokens in %.2f s (%s)",
                    input_length,
                    index,
                    elapsed,
                    finish,
                )
                return
            request.events.put(event)
            step_input = torch.tensor([[token_id]], device=loaded.device)
