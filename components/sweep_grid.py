"""The Sweep tab's plain-Python parts (no gradio): a prompt template with ``{{variables}}``
filled from a table, the grid of cells (rows × targets × parameter values) checked against
the limits before anything runs, the checks each answer meets, the pass-rate summary and
the CSV / JSON export.

Everything a user can get wrong is refused here, up front, as a ``SweepError`` whose
message names what to fix ("Row 2 has no value for {{topic}}.").
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.errors import BackendError, InputValidationError
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
# The columns of every result, before and after the row's variables (table, CSV, JSON).
HEAD_COLUMNS = ["cell", "row"]
TAIL_COLUMNS = [
    "target", "temperature", "max_tokens", "top_p", "output", "tokens", "ttft_ms",
    "total_ms", "tok_s", "finish_reason", "error", "checks", "passed",
]  # fmt: skip


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


# -- checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checks:
    """What each answer is checked for; empty fields are not checked."""

    contains: str = ""
    regex: str = ""
    json_valid: bool = False
    json_schema: str = ""  # implies json_valid
    max_ms: float | None = None  # the whole answer within this many milliseconds

    def compiled(self) -> CompiledChecks:
        """Checked once, before anything runs: raises ``SweepError`` for a regex that does
        not compile, a schema that is not JSON or not a valid schema, a bad limit."""
        pattern = None
        if self.regex:
            try:
                pattern = re.compile(self.regex)
            except re.error as exc:
                raise SweepError(f"The regex check does not compile: {exc}.") from None
        schema = None
        if self.json_schema.strip():
            try:
                schema = json.loads(self.json_schema)
            except json.JSONDecodeError as exc:
                raise SweepError(f"The JSON schema is not valid JSON: {exc}.") from None
            schema_error = _schema_problem(schema)
            if schema_error:
                raise SweepError(f"The JSON schema is not a valid schema: {schema_error}.")
        if self.max_ms is not None and (not math.isfinite(self.max_ms) or self.max_ms <= 0):
            raise SweepError("The latency check needs a positive number of milliseconds.")
        return CompiledChecks(self, pattern, schema)


def _schema_problem(schema: Any) -> str | None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    except Exception as exc:  # a schema is any JSON: some values break the checker itself
        return type(exc).__name__
    return None


@dataclass(frozen=True)
class CompiledChecks:
    checks: Checks
    pattern: re.Pattern | None = None
    schema: Any = None

    @property
    def names(self) -> list[str]:
        c = self.checks
        json_check = "schema" if self.schema is not None else ("json" if c.json_valid else "")
        named = [("contains", bool(c.contains)), ("regex", self.pattern is not None),
                 (json_check, bool(json_check)), ("latency", c.max_ms is not None)]  # fmt: skip
        return [name for name, on in named if on]

    def evaluate(self, text: str, total_ms: float | None) -> dict[str, bool]:
        """``{check: passed}`` for each check asked for."""
        c, results = self.checks, {}
        if c.contains:
            results["contains"] = c.contains in text
        if self.pattern is not None:
            results["regex"] = self.pattern.search(text) is not None
        if self.schema is not None or c.json_valid:
            try:
                value = json.loads(text)
                ok = True
            except json.JSONDecodeError:
                ok = False
            if self.schema is not None:
                results["schema"] = ok and _valid_against(value, self.schema)
            else:
                results["json"] = ok
        if c.max_ms is not None:
            results["latency"] = total_ms is not None and total_ms <= c.max_ms
        return results


def _valid_against(value: Any, schema: Any) -> bool:
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


# -- results --------------------------------------------------------------------------


@dataclass
class CellResult:
    """What one cell gave (so far): ``state`` is queued, running, done or failed."""

    cell: Cell
    state: str = "queued"
    output: str = ""
    tokens: int | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    tok_s: float | None = None
    finish_reason: str = ""
    error: str = ""
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def passed(self) -> bool | None:
        """Every check passed and no error (None until finished)."""
        if not self.finished:
            return None
        return not self.error and all(self.checks.values())

    def record(self) -> dict[str, Any]:
        """The result as JSON (the API's rows, the JSON export)."""
        c = self.cell
        return {
            "cell": c.index, "row": c.row, "variables": c.variables, "target": c.target_label,
            **c.params, "output": self.output, "tokens": self.tokens,
            "ttft_ms": _round(self.ttft_ms), "total_ms": _round(self.total_ms),
            "tok_s": _round(self.tok_s), "finish_reason": self.finish_reason or self.state,
            "error": self.error, "checks": self.checks, "passed": self.passed,
        }  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def checks_text(checks: dict[str, bool]) -> str:
    """E.g. "✅ contains · ❌ json"."""
    return " · ".join(f"{'✅' if ok else '❌'} {name}" for name, ok in checks.items())


def flat_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)`` for the table and the CSV: one column per variable (named after
    it, or ``var_<name>`` where that name is already a column)."""
    names: list[str] = []
    for record in records:
        names += [n for n in record["variables"] if n not in names]
    shown = [f"var_{n}" if n in HEAD_COLUMNS + TAIL_COLUMNS else n for n in names]
    rows = []
    for r in records:
        checks = checks_text(r["checks"])
        variables = [r["variables"].get(n, "") for n in names]
        rest = [checks if c == "checks" else r[c] for c in TAIL_COLUMNS]
        rows.append([r["cell"], r["row"], *variables, *rest])
    return HEAD_COLUMNS + shown + TAIL_COLUMNS, rows


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    columns, rows = flat_rows(records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


def to_json(records: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(records), indent=2, ensure_ascii=False)


def pass_rates(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """``[by, value, cells, passed, pass rate %]`` per target and per parameter value, over
    finished cells. Passed = no error and every check passed."""
    out = []
    for by in ("target", "temperature", "max_tokens", "top_p"):
        groups: dict[Any, list[bool]] = {}
        for r in records:
            if r["passed"] is not None:
                groups.setdefault(r[by], []).append(bool(r["passed"]))
        if by != "target" and len(groups) < 2:
            continue  # one value: the same as the whole sweep
        for value, passed in groups.items():
            rate = round(100 * sum(passed) / len(passed), 1)
            out.append([by, value, len(passed), sum(passed), rate])
    return out


def speed_by_target(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """``[target, mean total ms, mean TTFT ms, mean tok/s]`` over the cells that answered."""
    out = []
    for target in dict.fromkeys(r["target"] for r in records):
        done = [r for r in records if r["target"] == target and r["total_ms"] is not None]
        if not done:
            continue

        out.append([target, *(_mean(done, key) for key in ("total_ms", "ttft_ms", "tok_s"))])
    return out


def _mean(records: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if r[key] is not None]
    return round(sum(values) / len(values), 1) if values else None


def error_text(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        return exc.user_message()
    return f"{type(exc).__name__}: {exc}"
