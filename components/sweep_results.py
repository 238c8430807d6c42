"""The Sweep's results (plain Python, no gradio): the checks each answer meets, one
cell's result as a record, the pass-rate and speed summaries, and the CSV / JSON export.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.errors import BackendError
from components.sweep_grid import Cell, SweepError

# The columns of every result, before and after the row's variables (table, CSV, JSON).
HEAD_COLUMNS = ["cell", "row"]
TAIL_COLUMNS = [
    "target", "temperature", "max_tokens", "top_p", "output", "tokens", "ttft_ms",
    "total_ms", "tok_s", "finish_reason", "error", "checks", "passed",
]  # fmt: skip


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


def _jsonschema():
    """The ``jsonschema`` package (in requirements.txt; an install without it still checks
    plain JSON and says what to install for schemas)."""
    try:
        import jsonschema
    except ImportError:
        raise SweepError(
            "Checking answers against a JSON schema needs the jsonschema package.",
            hint="pip install jsonschema==4.26.0, or leave the schema empty to check only "
            "that each answer is valid JSON.",
        ) from None
    return jsonschema


def _schema_problem(schema: Any) -> str | None:
    jsonschema = _jsonschema()
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
    jsonschema = _jsonschema()
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


# -- results --------------------------------------------------------------------------


@dataclass
class CellResult:
    """What one cell gave (so far): ``state`` is queued, running, done, failed or
    stopped (Stop ended it, or it never started)."""

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
