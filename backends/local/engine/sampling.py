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


# Candidates kept before top_p / typical_p are checked: the most likely 64 tokens hold the
# asked-for mass on almost every step; when they do not, the bound grows 8× at a time.
CANDIDATES = 64
_WIDEN = 8


class Sampler:
    """Chooses the next token for one request.

    Greedy: the argmax of the processed logits. Sampling: temperature, then top_k, top_p and
    typical_p (TGI's order, transformers' semantics) applied to a few candidates instead of
    the whole vocabulary: ``torch.topk`` to a bound (top_k, else ``CANDIDATES``), widened
    only when the candidates hold less than the mass top_p / typical_p keep; then one seeded
    uniform draw against the kept candidates' cumulative probabilities (O(candidates)).
    """

    def __init__(self, params: SamplingParams, device: str) -> None:
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
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
        self.processors = LogitsProcessorList(processors)
        # The warpers (sampling only), applied by ``_warp`` on candidates.
        temperature = params.temperature
        self.temperature = temperature if self.sampling and temperature not in (None, 1.0) else None
        self.top_k = params.top_k if self.sampling else None
        top_p, typical_p = params.top_p, params.typical_p
        self.top_p = top_p if self.sampling and top_p is not None and top_p < 1.0 else None
        self.typical_p = (
            typical_p if self.sampling and typical_p is not None and typical_p < 1.0 else None
        )
        self.seed = params.seed if params.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)

    def __call__(self, token_ids: list[int], logits) -> Choice:
        """Pick a token from ``logits`` (shape ``[1, vocab]``) given all ids so far."""
        torch = self._torch
        scores = logits.float()
        if self.processors:
            ids = torch.tensor([token_ids], device=logits.device) if self.needs_ids else None
            scores = _finite(self.processors(ids, scores))
        row = scores[0]
        if self.sampling:
            candidates, logprobs = self._warp(row)  # ids (None: all) and their logprobs
            pick = _draw(torch, logprobs, self.generator)
            token_id = int(candidates[pick]) if candidates is not None else pick
            logprob = float(logprobs[pick])
        else:
            logprobs = torch.log_softmax(row, dim=-1)
            candidates = None
            token_id = int(torch.argmax(logprobs))
            logprob = float(logprobs[token_id])
        if self.grammar is not None:
            self.grammar.advance(token_id)
        top: list[tuple[int, float]] = []
        if self.top_n:
            top = self._top(candidates, logprobs, row.shape[-1])
        return Choice(token_id, logprob, top)

    def _top(self, candidates, logprobs, vocab: int) -> list[tuple[int, float]]:
        """The ``top_n`` best tokens of the final distribution (best first)."""
        torch = self._torch
        if candidates is not None:
            if len(candidates) < self.top_n:  # the rest were cut: -inf, as a full row shows
                full = torch.full((vocab,), float("-inf"), device=logprobs.device)
                logprobs = full.index_put_((candidates,), logprobs)
                candidates = None
            else:  # candidates are sorted by probability already
                order = torch.argsort(logprobs, descending=True, stable=True)[: self.top_n]
                return [(int(candidates[i]), float(logprobs[i])) for i in order]
        values, indices = torch.topk(logprobs, self.top_n)
        # A token a warper or the grammar ruled out (-inf) is no alternative (and JSON has
        # no -Infinity).
        return [
            (int(i), float(v)) for i, v in zip(indices, values, strict=True) if v > float("-inf")
        ]

    def _warp(self, scores):
        """Temperature, top_k, top_p, typical_p (TGI's order) on the row ``scores``:
        ``(candidate ids or None for the whole vocabulary, their final logprobs)``."""
        torch = self._torch
        if self.temperature is not None:  # a tiny temperature tends to greedy, never NaN
            scores = _Temperature(self.temperature)(None, scores.unsqueeze(0))[0]
        vocab = scores.shape[-1]
        ids = None  # None: every token is still a candidate, with logits ``scores``
        if self.top_k is not None:
            values, ids = torch.topk(scores, max(1, min(self.top_k, vocab)))
            scores = values
        if self.top_p is not None:
            values, ids = _nucleus(torch, scores, ids, self.top_p)
            scores = values
        if self.typical_p is not None:
            values, ids = _typical(torch, scores, ids, self.typical_p)
            scores = values
        return ids, torch.log_softmax(scores, dim=-1)


def _bounded(torch, key, logprobs, mass: float):
    """Indices of the largest ``key`` entries, in order, enough of them that they hold
    ``mass`` (or all): ``torch.topk`` to ``CANDIDATES``, widened 8× while the kept mass is
    short. ``logprobs(values, indices)`` gives the kept entries' logprobs. Returns
    ``(indices, their logprobs)``."""
    size = key.shape[-1]
    bound = min(CANDIDATES, size)
    while True:
        values, order = torch.topk(key, bound)
        kept = logprobs(values, order)
        if bound >= size or float(kept.exp().sum()) >= mass:
            return order, kept
        bound = min(size, bound * _WIDEN)


def _keep_mass(torch, logprobs, mass: float) -> int:
    """How many leading entries (most likely first) transformers' top_p / typical_p keep:
    each whose more likely predecessors hold less than ``mass``, at least one."""
    cumulative = torch.cumsum(logprobs.exp(), dim=-1)
    return max(1, int((cumulative - logprobs.exp() < mass).sum()))


def _nucleus(torch, scores, ids, top_p: float):
    """top_p on candidate logits ``scores`` (ids ``ids``; None: the whole vocabulary):
    the most likely tokens whose predecessors hold less than ``top_p``."""
    if ids is None:  # the whole vocabulary: topk to a bound, not a full sort
        total = torch.logsumexp(scores, dim=-1)
        ids, kept = _bounded(torch, scores, lambda values, _: values - total, top_p)
        scores = scores[ids]
    else:  # a few candidates, sorted by topk already
        kept = torch.log_softmax(scores, dim=-1)
    count = _keep_mass(torch, kept, top_p)
    return scores[:count], ids[:count]


def _typical(torch, scores, ids, typical_p: float):
    """typical_p (locally typical sampling): the tokens whose surprisal is closest to the
    entropy, holding ``typical_p`` of the mass."""
    logprobs = torch.log_softmax(scores, dim=-1)
    entropy = -(logprobs.exp() * logprobs).nansum()
    distance = (-logprobs - entropy).abs()
    order, kept = _bounded(torch, -distance, lambda _, order: logprobs[order], typical_p)
    count = _keep_mass(torch, kept, typical_p)
    order = order[:count]
    return scores[order], (order if ids is None else ids[order])


def _draw(torch, logprobs, generator) -> int:
    """One seeded draw from the distribution ``logprobs`` (a few candidates, or a row):
    one uniform number against the cumulative probabilities."""
    probs = logprobs.exp()
    cumulative = torch.cumsum(probs, dim=-1)
    point = torch.rand((), generator=generator, device=probs.device) * cumulative[-1]
    pick = int(torch.searchsorted(cumulative, point.reshape(1), right=True))
    if pick >= probs.shape[-1]:  # rounding at the very top: the last token with any mass
        pick = int(torch.nonzero(probs > 0)[-1])
    return pick
