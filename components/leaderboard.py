"""Blind votes and the leaderboard they make: plain Python on dicts (no gradio).

A vote is ``{"id", "time", "targets", "outcome"}``: ``targets`` are the names of the
targets in the order their panes were labelled (A, B, C, D) for that round; ``outcome`` is
the label of the pane voted best (``"A"``…``"D"``), ``"tie"`` or ``"bad"`` (every answer
bad). A vote never holds a token or an answer's text.

Ratings: each vote becomes pairwise results — the best pane beats every other pane; a tie
or "all bad" is half a win each way between every pair (as Chatbot Arena counts "both
bad") — and a Bradley–Terry model is fitted to them by the standard MM iteration (Hunter
2004), shown on the Elo scale (``1000 + 400·log10(strength)``). Every target also plays one
virtual tie against a reference of strength 1, a weak prior that keeps an unbeaten or
winless target's rating finite and anchors the scale.

Files: ``{"format": "inference-playground.votes", "version": 1, "votes": [...]}`` (JSON,
what import reads) and a CSV with one row per vote. Importing merges: votes are deduped by
``id``, so several viewers' files can be folded into one leaderboard.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT = "inference-playground.votes"
VERSION = 1
STORE_KEY = "playground-votes"
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_VOTES = 20_000  # the oldest beyond this are dropped from the browser's store
LABELS = "ABCD"
TIE, BAD = "tie", "bad"
BASE_RATING = 1000.0
PRIOR = 1.0  # virtual games against the reference (strength 1), split half and half
ITERATIONS = 1000
TOLERANCE = 1e-9
CSV_COLUMNS = ("id", "time", "targets", "outcome", "best")


class ImportRefused(ValueError):
    """A votes file that cannot be imported; the message says why (nothing is changed)."""


class Vote(BaseModel):
    """One blind vote (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100)
    time: float = Field(ge=0, allow_inf_nan=False)
    targets: list[str] = Field(min_length=2, max_length=len(LABELS))
    outcome: Literal["A", "B", "C", "D", "tie", "bad"]

    @model_validator(mode="after")
    def _names_and_outcome(self) -> Vote:
        if any(not name.strip() or len(name) > 500 for name in self.targets):
            raise ValueError("every target needs a name (at most 500 characters)")
        if self.outcome in LABELS and LABELS.index(self.outcome) >= len(self.targets):
            raise ValueError(
                f"outcome {self.outcome!r} names a pane that vote does not have "
                f"({len(self.targets)} targets)"
            )
        return self


class VotesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["inference-playground.votes"]
    version: Literal[1]
    votes: list[Vote]


def new_vote(targets: Sequence[str], outcome: str, *, now: float | None = None) -> dict:
    """A vote record (validated): ``targets`` in pane order, ``outcome`` as above."""
    vote = Vote(
        id=uuid.uuid4().hex,
        time=time.time() if now is None else now,
        targets=list(targets),
        outcome=outcome,
    )
    return vote.model_dump()


def outcome_label(outcome: str, panes: int) -> str:
    """How an outcome reads on its button: "A better" (2 panes), "A best", "Tie", …"""
    if outcome == TIE:
        return "Tie"
    if outcome == BAD:
        return "Both bad" if panes == 2 else "All bad"
    return f"{outcome} better" if panes == 2 else f"{outcome} best"


def reveal(targets: Sequence[str], outcome: str) -> str:
    """The Markdown line after a vote: "You chose A better. A was x, B was y."."""
    names = ", ".join(f"**{LABELS[i]}** was `{name}`" for i, name in enumerate(targets))
    return f"You voted *{outcome_label(outcome, len(targets))}*. {names}."


# ---------------------------------------------------------------- the browser's store


def votes(store: Any) -> list[dict]:
    """The valid votes of a ``BrowserState`` value (anything else is ignored), oldest first."""
    raw = store.get("votes") if isinstance(store, dict) else None
    kept = []
    for record in raw if isinstance(raw, list) else []:
        try:
            kept.append(Vote.model_validate(record).model_dump())
        except ValidationError:
            continue
    return sorted(kept, key=lambda v: (v["time"], v["id"]))


def merge(store: Any, new: Iterable[dict]) -> tuple[dict, int]:
    """``store`` with ``new`` votes added, deduped by id (an id already there is kept as
    is); the new store and how many votes were added."""
    have = votes(store)
    seen = {vote["id"] for vote in have}
    added = 0
    for vote in new:
        if vote["id"] not in seen:
            seen.add(vote["id"])
            have.append(vote)
            added += 1
    have.sort(key=lambda v: (v["time"], v["id"]))
    return {"votes": have[-MAX_VOTES:]}, added


# ---------------------------------------------------------------- ratings


@dataclass(frozen=True)
class Standing:
    """One target's row: Bradley–Terry rating (Elo scale), votes it took part in, and its
    results in them (best, tie/all bad, another pane best)."""

    target: str
    rating: float
    votes: int
    wins: int
    ties: int
    losses: int


def pairwise(records: Iterable[dict]) -> list[tuple[str, str, float]]:
    """Each vote as ``(x, y, score of x against y)`` per pair of its targets: 1 when x
    was voted best, 0 when y was, 0.5 for a tie, all bad, or two panes neither best."""
    results = []
    for vote in records:
        targets, outcome = vote["targets"], vote["outcome"]
        best = LABELS.index(outcome) if outcome in LABELS else None
        for i in range(len(targets)):
            for j in range(i + 1, len(targets)):
                if targets[i] == targets[j]:
                    continue  # a target against itself says nothing about either
                if best == i:
                    score = 1.0
                elif best == j:
                    score = 0.0
                else:
                    score = 0.5
                results.append((targets[i], targets[j], score))
    return results


def bradley_terry(
    results: Sequence[tuple[str, str, float]], *, prior: float = PRIOR
) -> dict[str, float]:
    """Strengths by the MM iteration: ``p_i ← W_i / Σ_j n_ij / (p_i + p_j)``, with
    ``prior`` virtual games (half won) against a fixed reference of strength 1."""
    names = sorted({name for x, y, _ in results for name in (x, y)})
    wins = {name: prior / 2 for name in names}
    games: dict[str, dict[str, float]] = {name: {} for name in names}
    for x, y, score in results:
        wins[x] += score
        wins[y] += 1 - score
        games[x][y] = games[x].get(y, 0.0) + 1
        games[y][x] = games[y].get(x, 0.0) + 1
    strength = {name: 1.0 for name in names}
    for _ in range(ITERATIONS):
        updated = {}
        for i in names:
            p = strength[i]
            denominator = prior / (p + 1.0) + sum(
                n / (p + strength[j]) for j, n in games[i].items()
            )
            updated[i] = wins[i] / denominator
        change = max((abs(math.log(updated[n] / strength[n])) for n in names), default=0.0)
        strength = updated
        if change < TOLERANCE:
            break
    return strength


def standings(records: Sequence[dict]) -> list[Standing]:
    """Every target that has votes, best rated first (ties broken by name)."""
    strength = bradley_terry(pairwise(records))
    counts: dict[str, list[int]] = {}
    for vote in records:
        best = LABELS.index(vote["outcome"]) if vote["outcome"] in LABELS else None
        for name in dict.fromkeys(vote["targets"]):
            row = counts.setdefault(name, [0, 0, 0, 0])  # votes, wins, ties, losses
            row[0] += 1
            if best is None:
                row[2] += 1
            elif vote["targets"][best] == name:
                row[1] += 1
            else:
                row[3] += 1
    rows = [
        Standing(
            name,
            BASE_RATING + 400 * math.log10(strength.get(name, 1.0)),
            *counts[name],
        )
        for name in counts
    ]
    return sorted(rows, key=lambda row: (-row.rating, row.target))


HEADERS = ["#", "Target", "Rating", "Votes", "Best", "Tie / bad", "Lost"]


def table(records: Sequence[dict]) -> list[list]:
    """The leaderboard as rows for a ``gr.Dataframe`` with ``HEADERS``."""
    return [
        [rank, row.target, round(row.rating), row.votes, row.wins, row.ties, row.losses]
        for rank, row in enumerate(standings(records), start=1)
    ]


def tally(records: Sequence[dict]) -> str:
    """A one-line Markdown summary of ``records`` (a session's votes)."""
    if not records:
        return "No votes in this session yet."
    wins: dict[str, int] = {}
    draws = bad = 0
    for vote in records:
        if vote["outcome"] == TIE:
            draws += 1
        elif vote["outcome"] == BAD:
            bad += 1
        else:
            name = vote["targets"][LABELS.index(vote["outcome"])]
            wins[name] = wins.get(name, 0) + 1
    best = ", ".join(f"`{name}` {count}" for name, count in sorted(wins.items()))
    parts = [f"best: {best}"] if best else []
    parts += [f"ties {draws}", f"all bad {bad}"]
    n = len(records)
    return f"**This session: {n} vote{'s' if n != 1 else ''}** — " + " · ".join(parts)


# ---------------------------------------------------------------- files


def export_json(records: Sequence[dict]) -> str:
    data = VotesFile(format=FORMAT, version=VERSION, votes=list(records))
    return json.dumps(data.model_dump(), indent=2, ensure_ascii=False)


def export_csv(records: Sequence[dict]) -> str:
    """One row per vote; ``targets`` joined with " | ", ``best`` the best target's name
    (empty for a tie / all bad)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for vote in records:
        outcome = vote["outcome"]
        best = vote["targets"][LABELS.index(outcome)] if outcome in LABELS else ""
        writer.writerow([vote["id"], vote["time"], " | ".join(vote["targets"]), outcome, best])
    return out.getvalue()


def parse_import(raw: bytes) -> list[dict]:
    """The votes of an exported JSON file. Raises ``ImportRefused`` saying what is wrong."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise ImportRefused(
            f"The file is {len(raw) / 1_048_576:.1f} MB; imports are limited to "
            f"{MAX_IMPORT_BYTES // 1_048_576} MB."
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportRefused("The file is not UTF-8 text: export votes as JSON.") from None
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            f"The file is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportRefused(
            f'Not a votes file: expected {{"format": "{FORMAT}", "version": 1, "votes": '
            "[...]}, as the leaderboard's JSON export writes."
        )
    try:
        parsed = VotesFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        count = exc.error_count()
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise ImportRefused(f"Invalid votes file at `{where}`: {first['msg']}{more}.") from None
    if not parsed.votes:
        raise ImportRefused("The file holds no votes.")
    return [vote.model_dump() for vote in parsed.votes]
