"""Per-request next-token selection with TGI's semantics, on transformers' processors.

TGI samples when ``do_sample`` is set *or* any warper is set (temperature ≠ 1, top_k,
top_p, typical_p); otherwise it decodes greedily. Processors run in TGI's order:
watermark, repetition penalty, frequency/presence penalty, then the warpers. Each request
owns its processors and its own ``torch.Generator`` seeded from ``seed`` (a random seed
when none is given), so the same seed and parameters give the same tokens whatever else
is running.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from backends.params import WATERMARK_DELTA, WATERMARK_GAMMA, samples


@dataclass(frozen=True)
class SamplingParams:
    """What the engine needs to generate one sequence (already validated)."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_n_tokens: int = 0
    watermark: bool = False
    prefill_details: bool = False
    grammar: Any = None  # a compiled grammar (engine.grammar); one state per sequence

    @property
    def sampling(self) -> bool:
        return samples(self.do_sample, self.temperature, self.top_k, self.top_p, self.typical_p)


@dataclass(frozen=True)
class Choice:
    """The chosen token, its logprob, and the top alternatives ``[(id, logprob)]``."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]]


class _OccurrencePenalty:
    """OpenAI-style penalties over every token so far (prompt included, as TGI counts):
    ``frequency`` × occurrences, plus ``presence`` once for any token seen."""

    def __init__(self, frequency: float, presence: float) -> None:
        self.frequency, self.presence = frequency, presence

    def __call__(self, input_ids, scores):
        import torch

        counts = torch.zeros_like(scores).scatter_add_(
            1, input_ids, torch.ones_like(input_ids, dtype=scores.dtype)
        )
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class _Temperature:
    """``scores / temperature`` after subtracting the row's maximum (softmax is unchanged),
    with the divisor kept above float32's smallest normal: a temperature like 1e-300 would
    round to 0 and turn the best score into 0 / 0 = NaN; now it stays 0 and the rest go
    to -inf, the limit (greedy decoding) the user asked for."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __call__(self, input_ids, scores):
        import torch

        divisor = max(self.temperature, torch.finfo(scores.dtype).tiny)
        return (scores - scores.max(dim=-1, keepdim=True).values) / divisor


def _finite(scores):
    """``scores`` without NaN or +inf, which softmax cannot weigh: a tiny repetition
    penalty divides a score by ~0. Tokens at +inf share the choice (the limit of a huge
    score); NaN is impossible (-inf)."""
    import torch

    if bool(torch.isfinite(scores).all()):
        return scores
    top = torch.isposinf(scores)
    if bool(top.any()):
        return torch.where(top, 0.0, float("-inf")).to(scores.dtype)
    return torch.where(torch.isnan(scores), float("-inf"), scores)


class _LazyWatermark:
    """TGI's watermark (Kirchenbauer et al.: a green list seeded by the previous token gets
    +delta) through transformers' processor, built once the vocabulary size is known."""

    def __init__(self, factory, device: str) -> None:
        self.factory, self.device, self.processor = factory, device, None

    def __call__(self, input_ids, scores):
        if self.processor is None:
            self.processor = self.factory(
                scores.shape[-1],
                self.device,
                greenlist_ratio=WATERMARK_GAMMA,
                bias=WATERMARK_DELTA,
            )
        return self.processor(input_ids, scores)


class Sampler:
    """Chooses the next token for one request."""

    def __init__(self, params: SamplingParams, device: str) -> None:
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TopKLogitsWarper,
            TopPLogitsWarper,
            TypicalLogitsWarper,
            WatermarkLogitsProcessor,
        )

        self._torch = torch
        self.sampling = params.sampling
        self.top_n = params.top_n_tokens
        processors: list[Any] = []
        if params.watermark:
            # Sized from the logits themselves on the first step (their width is the truth,
            # whatever the config says).
            processors.append(_LazyWatermark(WatermarkLogitsProcessor, device))
        if params.repetition_penalty is not None and params.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if params.frequency_penalty or params.presence_penalty:
            processors.append(
                _OccurrencePenalty(params.frequency_penalty or 0.0, params.presence_penalty or 0.0)
            )
        self.needs_ids = bool(processors)
        # The grammar masks before the warpers (as TGI orders them), so top_k/top_p pick
        # among allowed tokens and never leave nothing to sample.
        self.grammar = params.grammar.new_state() if params.grammar is not None else None
        if self.grammar is not None:
            processors.append(lambda _ids, scores: self.grammar.mask(scores))
        if self.sampling:
            if params.temperature is not None and params.temperature != 1.0:
                processors.append(_Temperature(params.temperature))
            if params.top_k is not None:
                processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p is not None and params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
            if params.typical_p is not None and params.typical_p < 1.0:
                processors.append(TypicalLogitsWarper(params.typical_p))
        self.processors = LogitsProcessorList(processors)
        self.seed = params.seed if params.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)

    def __call__(self, token_ids: list[int], logits) -> Choice:
        """Pick a token from ``logits`` (shape ``[1, vocab]``) given all ids so far."""
        torch = self._torch
        scores = logits.float()
        if self.processors:
            ids = torch.tensor([token_ids], device=logits.device) if self.needs_ids else None
            scores = _finite(self.processors(ids, scores))
        logprobs = torch.log_softmax(scores, dim=-1)
        if self.sampling:
            token = torch.multinomial(logprobs.exp(), 1, generator=self.generator)[0, 0]
        else:
            token = torch.argmax(logprobs, dim=-1)[0]
        token_id = int(token)
        if self.grammar is not None:
            self.grammar.advance(token_id)
        top: list[tuple[int, float]] = []
        if self.top_n:
            values, indices = torch.topk(logprobs[0], self.top_n)
            # A token a warper or the grammar ruled out (-inf) is no alternative (and JSON
            # has no -Infinity).
            top = [
                (int(i), float(v))
                for i, v in zip(indices, values, strict=True)
                if v > float("-inf")
            ]
        return Choice(token_id, float(logprobs[0, token_id]), top)
