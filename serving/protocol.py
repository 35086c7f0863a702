"""Turn request bodies into a float matrix in the model's feature order, or a clear 400.

`POST /invocations` accepts MLflow's scoring formats: `dataframe_split`,
`dataframe_records`, `instances` and `inputs` (rows as lists or as objects).
"""
from __future__ import annotations

import math

import numpy as np

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class BadInput(ValueError):
    """A request the model cannot score; the message says why (400)."""


class NotJson(BadInput):
    """A body that is not JSON at all (415)."""


def rows_from_mlflow(body: object, features: tuple[str, ...]) -> list:
    """Return the list of rows (dicts or lists) in an MLflow scoring payload."""
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object with one of the keys " + ", ".join(FORMATS))
    present = [k for k in FORMATS if k in body]
    if len(present) != 1:
        raise BadInput("the body must have exactly one of the keys " + ", ".join(FORMATS))
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise BadInput("dataframe_split needs 'columns' and 'data'")
        columns = value.get("columns")
        if columns is None:
            return value["data"]
        if not isinstance(columns, list):
            raise BadInput("dataframe_split 'columns' must be a list")
        rows = []
        for row in value["data"]:
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadInput(f"every row of dataframe_split must have {len(columns)} values")
            rows.append(dict(zip(columns, row)))
        return rows
    if isinstance(value, dict) and key == "inputs":  # column-oriented {"feature": [values]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise BadInput("column-oriented inputs need a list of equal length per column")
        n = lengths.pop()
        return [{k: v[i] for k, v in value.items()} for i in range(n)]
    if not isinstance(value, list):
        raise BadInput(f"{key} must be a list of rows")
    return value


def to_matrix(rows: list, features: tuple[str, ...], bounds: dict[str, tuple[float, float]],
              max_rows: int = 100_000) -> np.ndarray:
    """Check each row against the signature (names, numbers, no NaN, in range) and stack them."""
    if not rows:
        raise BadInput("no rows to score")
    if len(rows) > max_rows:
        raise BadInput(f"at most {max_rows} rows per request")
    x = np.empty((len(rows), len(features)), dtype=np.float64)
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
        for j, (name, value) in enumerate(zip(features, values)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadInput(f"row {i}: {name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise BadInput(f"row {i}: {name} must be a finite number, got {value!r}")
            low, high = bounds.get(name, (-math.inf, math.inf))
            if not low <= value <= high:
                raise BadInput(f"row {i}: {name}={value:g} is outside [{low:g}, {high:g}]")
            x[i, j] = value
    return x
