"""Local runners for tabular classification and regression: scikit-learn models in the
Hub's layout, loaded with joblib. Each returns what InferenceClient returns (``list[str]``
or ``list[float]``, one prediction per row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.errors import InputValidationError
from backends.local.tasks import base as r


@dataclass
class Estimator:
    model: Any
    columns: list[str] | None


def load_tabular(location: str, device: str) -> Estimator:
    """A scikit-learn model in the Hub's layout (``sklearn_model.joblib``, or one
    ``*.joblib``/``*.pkl``, plus ``config.json`` → ``sklearn.columns``).

    Unpickling runs code from the file: only models the user points at (a directory or a
    Hub id they typed) are ever loaded, never one picked for them."""
    import joblib

    root = Path(location)
    preferred = root / "sklearn_model.joblib"
    candidates = (
        [preferred]
        if preferred.is_file()
        else sorted([*root.glob("*.joblib"), *root.glob("*.pkl")])
    )
    if len(candidates) != 1:
        raise InputValidationError(
            f"{root.name} holds {len(candidates)} scikit-learn model files (*.joblib, *.pkl); "
            "one is needed.",
            field="model",
            hint="Point at a directory with sklearn_model.joblib (the Hub's layout).",
        )
    columns = None
    config = root / "config.json"
    if config.is_file():
        columns = (json.loads(config.read_text()).get("sklearn") or {}).get("columns")
    model = joblib.load(candidates[0])
    if not hasattr(model, "predict"):
        raise InputValidationError(
            f"{candidates[0].name} is not a scikit-learn estimator (no predict).", field="model"
        )
    return Estimator(model, list(columns) if columns else None)


def _frame(estimator: Estimator, inputs) -> Any:
    import pandas

    cells = r.table(inputs)
    columns = estimator.columns or list(cells)
    missing = [name for name in columns if name not in cells]
    if missing:
        raise InputValidationError(
            f"The table lacks the column(s) the model needs: {', '.join(missing)}.",
            field="table",
            hint=f"The model reads: {', '.join(columns)}.",
        )
    frame = pandas.DataFrame({name: cells[name] for name in columns})
    for name in columns:
        # Cells arrive as strings; a column whose filled cells are all numbers is numeric.
        filled = frame[name].str.strip().replace("", None).dropna()
        numbers = pandas.to_numeric(filled, errors="coerce")
        if len(filled) and not numbers.isna().any():
            frame[name] = pandas.to_numeric(frame[name].str.strip().replace("", None))
    return frame


def tabular_classification(estimator: Estimator, inputs, params) -> list[str]:
    return [str(label) for label in estimator.model.predict(_frame(estimator, inputs))]


def tabular_regression(estimator: Estimator, inputs, params) -> list[float]:
    return [float(value) for value in estimator.model.predict(_frame(estimator, inputs))]
