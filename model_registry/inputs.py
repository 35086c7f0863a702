"""What a version accepts as one row, and the matrix its fitted pipeline is given.

The rules serving applies to every row it scores, kept here so that the
servable check (``model_registry.servable``, called by serving at load and by
the pipeline's gate) applies the very same ones:

* a **numeric** feature takes a JSON number (not a boolean), finite, within the
  bounds the version's dataset spec records;
* a **categorical** feature takes a string, or null for "missing". The
  pipeline encodes a missing category as the string ``"missing"``
  (``pipeline.dataset.feature_matrix``, and ``pyfunc_model.py`` for stock
  MLflow), so null and ``"missing"`` are the same category; a string the model
  never saw is scored as the model's encoder treats unknown categories.

A model with numeric features only gets a float matrix (what the compiled fast
path reads); a model with categorical features gets an object matrix, numbers
as floats and categories as strings, exactly as the pipeline trained it.
"""
from __future__ import annotations

import math

import numpy as np

MISSING = "missing"  # how the pipeline encodes a missing category (pipeline.dataset.feature_matrix)


class BadInput(ValueError):
    """A row the model cannot score; the message says which row and why (400)."""


def _category(i: int, name: str, value: object) -> str:
    """Return a categorical value as the pipeline encodes it, or raise BadInput."""
    if value is None:
        return MISSING
    if not isinstance(value, str):
        raise BadInput(f"row {i}: {name} must be a category (a string) or null, got {value!r}")
    return value


def finite_number(i: int, name: str, value: object) -> float:
    """Return row `i`'s value of feature `name` as a finite float, or raise BadInput naming both."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"row {i}: {name} must be a number, got {value!r}"[:300])
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float's range
        value = math.inf
    if not math.isfinite(value):
        raise BadInput(f"row {i}: {name} must be a finite number, got {value!r}")
    return value


def encode(rows: list, features: tuple[str, ...], bounds: dict[str, tuple[float, float]],
           categorical: tuple[str, ...] = ()) -> np.ndarray:
    """Check each row (an object, or a list in feature order) and stack the model's input matrix."""
    matrix = []  # plain lists, then one numpy call: setting cells one by one costs more than checking them
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            missing = [f for f in features if f not in row]
            if missing:
                raise BadInput(f"row {i}: missing column(s) {', '.join(missing)}")
            values = [row[f] for f in features]
        elif isinstance(row, list):
            if len(row) != len(features):
                raise BadInput(f"row {i}: expected {len(features)} values in the order {', '.join(features)}")
            values = row
        else:
            raise BadInput(f"row {i}: a row must be an object or a list")
        checked = []
        for name, value in zip(features, values):
            if categorical and name in categorical:
                checked.append(_category(i, name, value))
                continue
            value = finite_number(i, name, value)
            low, high = bounds.get(name, (-math.inf, math.inf))
            if not low <= value <= high:
                raise BadInput(f"row {i}: {name}={value:g} is outside [{low:g}, {high:g}]")
            checked.append(value)
        matrix.append(checked)
    dtype = object if categorical else np.float64
    return np.array(matrix, dtype=dtype) if matrix else np.empty((0, len(features)), dtype=dtype)
