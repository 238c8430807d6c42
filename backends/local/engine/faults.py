"""Fault injection for tests: make the transformers engine fail on purpose, reproducibly.

A plan is read once, when an engine is built, from ``PLAYGROUND_FAULTS`` (or passed as
``TransformersEngine(faults=...)``); without it nothing is injected and the hook costs one
integer increment per decode step. Entries are comma-separated:

``oom@N``  the Nth batched decode pass (counted from 1 since the engine started) raises
           ``torch.OutOfMemoryError`` before it runs, as a GPU that runs out of memory
           merging or extending a batch's KV cache would.

So ``PLAYGROUND_FAULTS=oom@40 python app.py`` fails whatever batch is decoding at the 40th
step, and the app must say so and keep serving. Only the tests set it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

FAULTS_ENV = "PLAYGROUND_FAULTS"
INJECTED = "(injected by PLAYGROUND_FAULTS)"


@dataclass
class FaultPlan:
    """Which decode steps fail; ``before_decode`` is the engine's hook."""

    oom_steps: frozenset[int] = frozenset()
    steps: int = field(default=0, init=False)  # decode passes so far

    @classmethod
    def parse(cls, text: str | None) -> FaultPlan:
        """``"oom@3,oom@10"`` → a plan; raises ``ValueError`` naming a bad entry."""
        steps = set()
        for entry in (text or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            kind, _, at = entry.partition("@")
            if kind != "oom" or not at.isdigit() or int(at) < 1:
                raise ValueError(
                    f"{FAULTS_ENV}: cannot read {entry!r} (expected oom@N, N >= 1, comma-separated)"
                )
            steps.add(int(at))
        return cls(frozenset(steps))

    @classmethod
    def from_env(cls) -> FaultPlan:
        return cls.parse(os.environ.get(FAULTS_ENV))

    def before_decode(self) -> None:
        """Count one decode pass; raise the fault planned for it, if any."""
        self.steps += 1
        if self.steps in self.oom_steps:
            import torch

            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB at decode step {self.steps} "
                f"{INJECTED}"
            )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device (or host) running out of memory: torch's
    ``OutOfMemoryError`` (CUDA, MPS), a ``MemoryError``, or a RuntimeError saying so (the
    CPU allocator's "can't allocate memory", older torch's "CUDA out of memory")."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without torch
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
