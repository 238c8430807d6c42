"""Per-request next-token selection with TGI's semantics, on transformers' processors.

TGI samples when ``do_sample`` is set *or* any warper is set (temperature ≠ 1, top_k,
top_p); otherwise it decodes greedily. Each request owns its processors and its own
``torch.Generator`` seeded from ``seed`` (a random seed when none is given), so the same
seed and parameters give the same tokens whatever else is running.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """What the engine needs to generate one sequence (already validated)."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def sampling(self) -> bool:
        warpers = (
            (self.temperature is not None and self.temperature != 1.0)
            or self.top_k is not None
            or (self.top_p is not None and self.top_p < 1.0)
        )
        return self.do_sample or warpers


class Sampler:
    """Chooses the next token for one request: ``(token_id, logprob)``."""

    def __init__(self, params: SamplingParams, device: str) -> None:
        import torch
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self._torch = torch
        self.sampling = params.sampling
        processors = []
        if params.repetition_penalty is not None and params.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if self.sampling:
            if params.temperature is not None and params.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k is not None:
                processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p is not None and params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
        self.processors = LogitsProcessorList(processors)
        self.needs_ids = params.repetition_penalty not in (None, 1.0)
        self.seed = params.seed if params.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)

    def __call__(self, token_ids: list[int], logits) -> tuple[int, float]:
        """Pick a token from ``logits`` (shape ``[1, vocab]``) given all ids so far."""
        torch = self._torch
        scores = logits.float()
        if self.processors:
            ids = torch.tensor([token_ids], device=logits.device) if self.needs_ids else None
            scores = self.processors(ids, scores)
        logprobs = torch.log_softmax(scores, dim=-1)
        if self.sampling:
            token = torch.multinomial(logprobs.exp(), 1, generator=self.generator)[0, 0]
        else:
            token = torch.argmax(logprobs, dim=-1)[0]
        token_id = int(token)
        return token_id, float(logprobs[0, token_id])
