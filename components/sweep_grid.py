"""The Sweep's grid (plain Python, no gradio): a prompt template with ``{{variables}}``
filled from a table, and the cells (rows × targets × parameter values), checked against
the limits before anything runs. ``sweep_results`` holds the checks, results and export.

Everything a user can get wrong is refused here, up front, as a ``SweepError`` whose
message names what to fix ("Row 2 has no value for {{topic}}.").
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backends.errors import InputValidationError
from backends.media import read_csv
from backends.params import check_text
from components.forms import ChatForm

VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")

# Limits, stated in the tab and enforced before anything runs.
MAX_CELLS = 200
MAX_TARGETS = 4
MAX_ROWS = 100
MAX_VALUES = 8  # values in one parameter list
MAX_TEMPLATE_CHARS = 20_000
MIN_CONCURRENCY, MAX_CONCURRENCY, DEFAULT_CONCURRENCY = 1, 8, 4
LIMITS_LINE = (
    f"Limits: at most {MAX_CELLS} cells (rows × targets × parameter values), "
    f"{MAX_ROWS} rows, {MAX_TARGETS} targets, {MAX_VALUES} values per parameter; "
    f"{MIN_CONCURRENCY}–{MAX_CONCURRENCY} cells at once (default {DEFAULT_CONCURRENCY})."
)


class SweepError(InputValidationError):
    """A sweep that cannot run as asked; the message says what to change."""


def template_variables(template: str) -> list[str]:
    """The ``{{names}}`` in ``template``, each once, in order of first use."""
    return list(dict.fromkeys(VARIABLE.findall(template)))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def fill(template: str, values: dict[str, Any]) -> str:
    """``template`` with each ``{{name}}`` replaced by ``values[name]`` (as text)."""

    def value(match: re.Match) -> str:
        found = values[match.group(1)]
        if isinstance(found, float) and found.is_integer():
            return str(int(found))  # a table's 3.0 is the 3 the user typed
        return str(found)

    return VARIABLE.sub(value, template)


def check_rows(template: str, rows: Sequence[dict[str, Any]]) -> None:
    """Raise ``SweepError`` naming the first variable a row lacks (rows count from 1)."""
    names = template_variables(template)
    if names and not rows:
        listed = ", ".join("{{" + n + "}}" for n in names)
        raise SweepError(
            f"The template uses {listed} but the variables table has no rows.",
            hint="Add a row (or upload a CSV whose header names the variables).",
        )
    for number, row in enumerate(rows, start=1):
        for name in names:
            if name not in row:
                raise SweepError(
                    f"Row {number} has no value for {{{{{name}}}}}: the table has no "
                    f"column named {name!r}.",
                    hint="Name a column after each variable (the CSV's header row).",
                )
            if _missing(row[name]):
                raise SweepError(f"Row {number} has no value for {{{{{name}}}}}.")


def rows_from_table(headers: Sequence[Any], data: Iterable[Sequence[Any]]) -> list[dict]:
    """A table's rows as dicts by header; rows with every cell empty are left out."""
    names = [str(h).strip() for h in headers]
    rows = []
    for values in data:
        values = list(values)
        if all(_missing(v) for v in values):
            continue
        rows.append({n: (values[i] if i < len(values) else None) for i, n in enumerate(names)})
    if len(rows) > MAX_ROWS:
        raise SweepError(f"The table has {len(rows)} rows; the limit is {MAX_ROWS}.")
    return rows


def rows_from_csv(text: str) -> list[dict]:
    """A CSV's rows as dicts: the header row names the variables (``backends.media``'s
    checks and limits apply; blank text is no rows)."""
    check_text(text, "rows_csv")
    if not text.strip():
        return []
    table = read_csv(text.encode("utf-8"))
    names = list(table)
    count = len(table[names[0]])
    return rows_from_table(names, [[table[n][i] for n in names] for i in range(count)])


def parse_values(value: Any, name: str, kind: type, low: float, high: float) -> list:
    """A parameter's values: a comma-separated list ("0, 0.7, 1.2"), a number or a list
    of numbers; each within ``[low, high]``. Raises ``SweepError`` naming ``name``."""
    if isinstance(value, bool):
        raise SweepError(f"`{name}` must be numbers separated by commas (got {value!r}).")
    if isinstance(value, (int, float)):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise SweepError(f'`{name}` must be numbers separated by commas, e.g. "0, 0.7".')
    if not items:
        raise SweepError(f"`{name}` needs at least one value.")
    if len(items) > MAX_VALUES:
        raise SweepError(f"`{name}` has {len(items)} values; the limit is {MAX_VALUES}.")
    out = []
    for item in items:
        shown = str(item)[:40]
        try:
            if isinstance(item, bool):
                raise ValueError
            number = float(item)
        except (TypeError, ValueError, OverflowError):
            raise SweepError(f"`{name}`: {shown!r} is not a number.") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise SweepError(f"`{name}`: {shown} is out of range ({low:g} to {high:g}).")
        if kind is int:
            if not number.is_integer():
                raise SweepError(f"`{name}`: {shown} is not a whole number.")
            number = int(number)
        out.append(number)
    return list(dict.fromkeys(out))  # a repeated value would only repeat cells


def check_concurrency(value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number) or not number.is_integer():
        raise SweepError(f"`concurrency` must be a whole number (got {str(value)[:40]!r}).")
    if not MIN_CONCURRENCY <= number <= MAX_CONCURRENCY:
        raise SweepError(
            f"`concurrency` must be {MIN_CONCURRENCY} to {MAX_CONCURRENCY} (got {number:g})."
        )
    return int(number)


# -- the grid -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One request of the sweep: a row's prompt on a target with one set of parameters."""

    index: int  # 1-based, the results' order
    row: int  # 1-based row of the variables table
    variables: dict[str, Any]
    target: int  # index into the sweep's targets
    target_label: str
    params: dict[str, Any]  # temperature, max_tokens, top_p (the values asked for)
    messages: list[dict[str, str]]
    keywords: dict[str, Any]  # chat_completion's keyword arguments


def expand(
    template: str,
    rows: Sequence[dict[str, Any]],
    targets: Sequence[str],
    *,
    temperatures: Sequence[float],
    max_tokens: Sequence[int],
    top_ps: Sequence[float],
    seed: int | None = None,
    system_prompt: str = "",
) -> list[Cell]:
    """Every cell, row by row, then target, then temperature × max_tokens × top_p.
    Raises ``SweepError`` before anything runs: a missing variable (naming it and the
    row), past a limit, or parameters the chat form refuses."""
    check_text(template, "template")
    check_text(system_prompt, "system_prompt")
    if not template.strip():
        raise SweepError("The prompt template is empty.", hint="Type a prompt, e.g. "
                         "\"Write a haiku about {{topic}}.\"")  # fmt: skip
    if len(template) > MAX_TEMPLATE_CHARS:
        raise SweepError(
            f"The template has {len(template)} characters; the limit is {MAX_TEMPLATE_CHARS}."
        )
    if not 1 <= len(targets) <= MAX_TARGETS:
        raise SweepError(f"A sweep needs 1 to {MAX_TARGETS} targets (got {len(targets)}).")
    rows = list(rows) if template_variables(template) else []
    if len(rows) > MAX_ROWS:
        raise SweepError(f"The table has {len(rows)} rows; the limit is {MAX_ROWS}.")
    check_rows(template, rows)
    rows = rows or [{}]  # a template without variables is one prompt
    for number, row in enumerate(rows, start=1):
        for name, value in row.items():
            if isinstance(value, str):
                check_text(value, f"row {number}, {name}")
    combos = list(itertools.product(temperatures, max_tokens, top_ps))
    count = len(rows) * len(targets) * len(combos)
    if count > MAX_CELLS:
        raise SweepError(
            f"This sweep has {count} cells ({len(rows)} rows × {len(targets)} targets × "
            f"{len(combos)} parameter sets); the limit is {MAX_CELLS}.",
            hint="Use fewer rows, targets or parameter values.",
        )
    keywords = {}
    for temperature, tokens, top_p in combos:
        form = ChatForm(max_tokens=tokens, temperature=temperature, top_p=top_p, seed=seed)
        keywords[(temperature, tokens, top_p)] = form.keywords()  # FormErrors up front
    cells = []
    for number, row in enumerate(rows, start=1):
        prompt = fill(template, row)
        messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
        messages.append({"role": "user", "content": prompt})
        for target, label in enumerate(targets):
            for temperature, tokens, top_p in combos:
                params = {"temperature": temperature, "max_tokens": tokens, "top_p": top_p}
                cells.append(
                    Cell(len(cells) + 1, number, dict(row), target, label, params, messages,
                         keywords[(temperature, tokens, top_p)])
                )  # fmt: skip
    return cells
