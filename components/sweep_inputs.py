"""The Sweep's inputs (plain Python, no gradio): the targets' labels and backends, the
raw widget / API values read into the grid's cells (``sweep_grid.expand``), and the rows
back as CSV text for the ``/sweep`` call that Show code gives.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pandas as pd

from backends import Backend
from backends.errors import BackendError
from components import connection as connection_panel
from components.connection import DEFAULT, LOCAL, Connection, backend_for
from components.sweep_grid import Cell, SweepError, expand, parse_values, rows_from_table

TOKEN_LIMIT = 4096


def target_label(connection: Connection | None) -> str:
    """The ``target`` column's text: "local", the default endpoint or what was typed."""
    if connection is None or connection.mode == LOCAL:
        return "local"
    if connection.mode == DEFAULT:
        default = connection_panel.default_endpoint()
        return f"default: {default.url}" if default is not None else "default"
    endpoint = connection.endpoint.strip() or "(no endpoint)"
    return endpoint + (f" · {connection.model.strip()}" if connection.model.strip() else "")


def unique(labels: list[str]) -> list[str]:
    """Labels made distinct ("local", "local (2)") so each target keeps its own rows."""
    out: list[str] = []
    for label in labels:
        name, n = label, 1
        while name in out:
            n += 1
            name = f"{label} ({n})"
        out.append(name)
    return out


def plan(
    template: str,
    rows: list[dict],
    connections: list[Connection],
    *,
    temperature: Any,
    max_tokens: Any,
    top_p: Any,
    seed: int | None,
    system_prompt: str,
) -> list[Cell]:
    """The sweep's cells (``sweep_grid.expand``) from the raw parameter lists."""
    return expand(
        template,
        rows,
        unique([target_label(c) for c in connections]),
        temperatures=parse_values(temperature, "temperature", float, 0, 2),
        max_tokens=parse_values(max_tokens, "max_tokens", int, 1, TOKEN_LIMIT),
        top_ps=parse_values(top_p, "top_p", float, 0.01, 1),
        seed=seed,
        system_prompt=system_prompt,
    )


def api_targets(connections: list[Connection]) -> str:
    """The ``/sweep`` API's ``targets`` for these connections: one per line, "local",
    "default" (the operator's endpoint) or the endpoint typed."""
    names = {LOCAL: "local", DEFAULT: "default"}
    return "\n".join(names.get(c.mode) or c.endpoint.strip() for c in connections)


def backends_for(connections: list[Connection], local: Backend) -> list[Backend | BackendError]:
    """Each target's backend, or the reason it has none (filled into its cells)."""
    out: list[Backend | BackendError] = []
    for connection in connections:
        try:
            out.append(backend_for(connection, local))
        except BackendError as exc:
            out.append(exc)
    return out


def optional_number(value: Any, name: str, *, minimum: float) -> float | None:
    """A number box where empty (or 0 for the latency limit, -1 for the seed) means off."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SweepError(f"`{name}` must be a number (got {str(value)[:40]!r}).") from None
    if not math.isfinite(number):
        raise SweepError(f"`{name}` must be a finite number.")
    return number if number >= minimum else None


def sweep_seed(value: Any) -> int | None:
    number = optional_number(value, "seed", minimum=0)
    if number is not None and (not number.is_integer() or number > 2**63 - 1):
        raise SweepError("`seed` must be a whole number from 0 (or -1 for random).")
    return None if number is None else int(number)


def rows_of_grid(value: Any) -> list[dict]:
    """The variables grid's rows (blank ones left out), by column name."""
    grid = pd.DataFrame(value if value is not None else {}).fillna("")
    return rows_from_table([str(c) for c in grid.columns], grid.astype(str).values.tolist())


def rows_csv_text(cells: list[Cell]) -> str:
    """The sweep's rows as CSV text (the ``/sweep`` API's ``rows_csv``)."""
    rows: dict[int, dict] = {}
    for cell in cells:
        rows.setdefault(cell.row, cell.variables)
    names = list(dict.fromkeys(n for row in rows.values() for n in row))
    if not names:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([[row.get(n, "") for n in names] for row in rows.values()])
    return out.getvalue()
