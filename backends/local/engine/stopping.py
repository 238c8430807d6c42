"""When a sequence stops: every rule in one place (TGI's finish reasons).

Checked after each generated token, in this order: an end-of-sequence token
(``eos_token``), a completed stop sequence (``stop_sequence``; the stop text stays in the
output, as TGI does), the token budget (``length``: ``max_new_tokens`` or the room left in
the model's context).
"""

from __future__ import annotations

from collections.abc import Collection


def hits_stop(text: str, delta: str, stops: tuple[str, ...]) -> bool:
    """Whether appending ``delta`` to ``text`` completes a stop sequence (only the tail
    that could hold a new match is searched, so the cost does not grow with the text)."""
    if not delta or not stops:
        return False
    longest = max(len(s) for s in stops)
    window = (text + delta)[-(len(delta) + longest - 1) :]
    return any(s in window for s in stops)


class StoppingCriteria:
    """The stop rules of one sequence.

    Args:
        eos_ids: token ids that end the sequence.
        stop: stop sequences (text).
        budget: tokens the sequence may generate.
    """

    def __init__(self, eos_ids: Collection[int], stop: tuple[str, ...], budget: int) -> None:
        self.eos_ids = eos_ids
        self.stop = tuple(stop or ())
        self.budget = budget

    def finish_reason(self, token_id: int, index: int, text: str, delta: str) -> str | None:
        """Why the sequence ends with token ``index`` (``token_id``, adding ``delta`` to
        ``text``), or None when it goes on."""
        if token_id in self.eos_ids:
            return "eos_token"
        if hits_stop(text, delta, self.stop):
            return "stop_sequence"
        if index >= self.budget:
            return "length"
        return None
