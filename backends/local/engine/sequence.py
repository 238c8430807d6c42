"""One request inside the engine: its event stream, and its state while it is served.

``Sequence`` holds everything that belongs to one request and to no other: its ``Sampler``
(parameters, seeded generator, grammar state), its token ids, its incremental decoder and
stop sequences, and, while its prompt is prefilled, its own KV cache. The engine hands it
one row of logits per step and it emits the ``TokenEvent``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backends.local.engine.sampling import Sampler, SamplingParams
from backends.local.engine.stopping import StoppingCriteria
from backends.local.model import LoadedModel

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


_END = object()


@dataclass
class Request:
    """A submitted request: its input, and the queue its events go to."""

    input_ids: list[int]
    params: SamplingParams
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    ended: bool = False  # set by the worker that closed the stream (it ends once)

    def stream(self) -> Iterator[TokenEvent]:
        """The events until the end; an error the worker sent is raised here."""
        while True:
            item = self.events.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def end_request(request: Request, error: BaseException | None = None) -> None:
    """Close ``request``'s stream, after ``error`` if there is one."""
    if error is not None:
        request.events.put(error)
    request.events.put(_END)


class Sequence:
    """A request being served: prefilled in chunks, then given one row of logits per step."""

    def __init__(self, request: Request, loaded: LoadedModel, special_ids: frozenset[int]):
        params = request.params
        self.request = request
        self.params = params
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.special_ids = special_ids
        self.sampler = Sampler(params, loaded.device)
        self.ids = list(request.input_ids)
        self.input_length = len(self.ids)
        self.stopping = StoppingCriteria(
            loaded.eos_token_ids,
            params.stop or (),
            min(params.max_new_tokens, loaded.max_context - self.input_length),
        )
        self.decoder = IncrementalDecoder(self.tokenizer, self.ids)
        self.text = ""
        self.index = 0  # tokens generated so far
        self.finished = False
        self.started = time.perf_counter()
        self.prefilled = 0  # prompt tokens in the cache
        self._cache: Any = None
        self._prompt_logprobs: list[float | None] = [None]

    @property
    def budget(self) -> int:
        """New tokens this sequence may generate (``max_new_tokens`` that fit the context)."""
        return self.stopping.budget

    @budget.setter
    def budget(self, value: int) -> None:
        self.stopping.budget = value

    @property
    def prefilling(self) -> bool:
        return self.prefilled < self.input_length

    def take_cache(self) -> Any:
        """The prompt's KV cache (batch size 1), handed over to the running batch."""
        cache, self._cache = self._cache, None
        return cache

    def prefill_chunk(self, model: Any, chunk: int) -> tuple[int, TokenEvent | None]:
        """Run the next ``chunk`` prompt tokens through ``model``. Returns the number of
        prompt tokens processed and, after the last chunk, the first token's event."""
        import torch

        start, end = self.prefilled, min(self.prefilled + chunk, self.input_length)
        details = self.params.prefill_details
        # Logits for the last position only, unless the prompt's own logprobs are asked
        # for: a long prompt's full logits would take GBs (positions × vocabulary).
        out = model(
            input_ids=torch.tensor([self.ids[start:end]], device=self.device),
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=0 if details else 1,
        )
        self._cache = out.past_key_values
        self.prefilled = end
        if details:
            self._score_prompt(out.logits, start, end)
        if self.prefilling:
            return end - start, None
        prefill = self._prefill_tokens() if details else None
        return end - start, self.step(out.logits[:, -1, :], prefill)

    def _score_prompt(self, logits, start: int, end: int) -> None:
        """Logprobs of prompt tokens ``start+1 .. end`` (what positions ``start .. end-1``
        predict, the last one excluded when it predicts the first generated token)."""
        import torch

        targets = self.ids[start + 1 : min(end + 1, self.input_length)]
        if not targets:
            return
        logprobs = torch.log_softmax(logits[0, : len(targets)].float(), dim=-1)
        picked = logprobs.gather(1, torch.tensor(targets, device=logits.device)[:, None])[:, 0]
        self._prompt_logprobs.extend(picked.tolist())

    def _prefill_tokens(self) -> list[tuple[int, str, float | None]]:
        """The prompt's tokens with the raw model logprob of each (first: None)."""
        prompt = self.ids[: self.input_length]
        decode = self.tokenizer.decode
        return [(i, decode([i]), lp) for i, lp in zip(prompt, self._prompt_logprobs, strict=True)]

    def step(self, logits, prefill: list | None = None) -> TokenEvent:
        """Pick the next token from ``logits`` (``[1, vocab]``): sample, detokenize, apply
        the stop rules. Returns the token's event (the engine streams it)."""
        choice = self.sampler(self.ids, logits)
        self.index += 1
        index, token_id = self.index, choice.token_id
        self.ids.append(token_id)
        special = token_id in self.special_ids
        delta = "" if special else self.decoder.step(token_id)
        finish = self.stopping.finish_reason(token_id, index, self.text, delta)
        if finish == "length":
            delta += self.decoder.flush()
        self.text += delta
        tokenizer = self.tokenizer
        token_text = tokenizer.convert_ids_to_tokens(token_id) if special else delta
        event = TokenEvent(index, token_id, token_text, choice.logprob, special, self.input_length)
        event.prefill = prefill
        if choice.top:
            event.top_tokens = [
                (i, tokenizer.decode([i]), lp, i in self.special_ids) for i, lp in choice.top
            ]
        if finish:
            event.finish_reason = finish
            event.generated_text = self.text
            event.seed = self.sampler.seed if self.sampler.sampling else None
            self.finished = True
        return event
