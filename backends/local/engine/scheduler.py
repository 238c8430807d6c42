"""Which waiting requests join the running batch: a pure function, no torch, no locks.

Each request reserves the most tokens it can reach (its prompt + the new tokens that fit
the context), so the running batch stays within ``max_batch_tokens`` however long its
requests run. Requests join in arrival order: the first that does not fit stops the
admission (no overtaking, so a long request is never starved by short ones), except that
one request alone always runs, however large.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def admit_count(
    waiting: Iterable[int],
    running: Sequence[int],
    *,
    max_batch_size: int,
    max_batch_tokens: int,
) -> int:
    """How many of ``waiting`` (their reserved tokens, oldest first; read lazily, only as
    far as the first that does not join) join a batch whose
    members reserve ``running``: as many from the front as keep the batch within
    ``max_batch_size`` rows and ``max_batch_tokens`` reserved tokens."""
    rows, tokens, admitted = len(running), sum(running), 0
    for needs in waiting:
        if rows >= max_batch_size or (rows and tokens + needs > max_batch_tokens):
            break
        rows, tokens, admitted = rows + 1, tokens + needs, admitted + 1
    return admitted


def reserved_tokens(prompt_tokens: int, max_new_tokens: int, max_context: int) -> int:
    """Tokens a request can reach: its prompt and as many new ones as fit the context."""
    return prompt_tokens + max(0, min(max_new_tokens, max_context - prompt_tokens))
