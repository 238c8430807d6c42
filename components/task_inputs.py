"""From the task tabs' widget values to InferenceClient's arguments: uploads checked
(``backends.media``) before anything is sent, parameters left out when unset, tables in
InferenceClient's ``{column: [cell, …]}`` shape. Plain Python, no gradio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from backends.errors import InputValidationError
from backends.media import (
    MAX_TABLE_COLUMNS,
    check_audio,
    check_image,
    check_table,
    read_csv,
)
from backends.tasks import TaskSpec, validate_parameters

DEFAULT_CHOICE = "default"  # a choice / bool widget's "leave it to the server"


def split_labels(text: str | None) -> list[str]:
    """Comma- or newline-separated labels, trimmed, empty ones dropped."""
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def split_lines(text: str | None) -> list[str]:
    """One sentence per non-empty line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _check_width(columns: int) -> None:
    """``check_table``'s column limit, before pandas converts every cell: 100 000
    columns took half a minute only to be refused."""
    if columns > MAX_TABLE_COLUMNS:
        raise InputValidationError(
            f"The table has {columns} columns; the limit is {MAX_TABLE_COLUMNS}."
        )


def table_from_frame(value: Any) -> dict[str, list[str]]:
    """A ``gr.Dataframe`` value (pandas, or the API's ``{headers, data}``) as
    InferenceClient's ``{column: [cell, …]}``, blank rows dropped, checked."""
    if isinstance(value, dict) and "headers" in value:
        if isinstance(value["headers"], list):
            _check_width(len(value["headers"]))
        value = pd.DataFrame(value.get("data") or [], columns=value["headers"])
    frame = pd.DataFrame(value if value is not None else {})
    _check_width(frame.shape[1])
    frame = frame.fillna("").astype(str)
    # An editable grid keeps a blank row to type into; it is not data.
    frame = frame[frame.apply(lambda row: any(cell.strip() for cell in row), axis=1)]
    return check_table({str(name): frame[name].tolist() for name in frame.columns})


def load_csv(path: str | None) -> pd.DataFrame | None:
    """An uploaded CSV as the table grid's value (``None`` when the upload was cleared).
    Raises ``InputValidationError`` naming the problem and the limit."""
    if not path:
        return None
    return pd.DataFrame(read_csv(path))


def collect_inputs(spec: TaskSpec, values: Sequence[Any]) -> dict[str, Any]:
    """Widget values (in ``spec.inputs`` order) as InferenceClient inputs; uploads are
    checked first (``backends.media``) so a bad file gets a message naming the limits.
    Raises ``InputValidationError``."""
    inputs: dict[str, Any] = {}
    for item, value in zip(spec.inputs, values, strict=True):
        what = item.label.lower()
        if item.kind in ("image", "audio"):
            if not value:
                raise InputValidationError(
                    f"No {what} yet.",
                    field=item.name,
                    hint=f"Upload {item.kind} or pick an example.",
                )
            inputs[item.name] = check_image(value) if item.kind == "image" else check_audio(value)
        elif item.kind == "table":
            inputs[item.name] = table_from_frame(value)
        elif item.kind in ("labels", "sentences"):
            parts = split_labels(value) if item.kind == "labels" else split_lines(value)
            if not parts:
                how = "comma-separated" if item.kind == "labels" else "one per line"
                raise InputValidationError(
                    f"{item.label}: none given.", field=item.name, hint=f"Type them {how}."
                )
            inputs[item.name] = parts
        else:
            text = value or ""
            if not text.strip():
                if item.optional:
                    continue
                raise InputValidationError(
                    f"{item.label} is empty.", field=item.name, hint=f"Type the {what} first."
                )
            inputs[item.name] = text
    return inputs


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputValidationError(
            f"`{name}` must be a number (got {value!r}).",
            field=name,
            hint="Type a number, or leave it empty for the server's default.",
        ) from None


def collect_parameters(spec: TaskSpec, values: Sequence[Any]) -> dict[str, Any]:
    """The parameters that were set, in InferenceClient's types; unset ones ("default",
    empty) are left out so the server's defaults apply. Raises ``InputValidationError``
    naming the field and its bounds."""
    given: dict[str, Any] = {}
    for param, value in zip(spec.params, values, strict=True):
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == DEFAULT_CHOICE or value == "":
            continue
        if param.kind == "bool":
            value = value if isinstance(value, bool) else str(value).lower() == "true"
        elif param.kind in ("int", "float"):
            value = _number(param.name, value)
            if param.kind == "int" and value.is_integer():
                value = int(value)
        elif param.kind == "labels":
            value = split_labels(value) if isinstance(value, str) else list(value)
        given[param.name] = value
    return validate_parameters(spec.name, given)
