"""Turn request bodies into the model's input matrix in its feature order, or a clear 400.

`POST /invocations` accepts MLflow's scoring formats: `dataframe_split`
(with `columns`), `dataframe_records` (objects), `instances` and `inputs`
(rows as objects or as lists in the signature's order, or columns as
`{feature: [values]}`, a single value standing for every row). What a row may
hold is `model_registry.inputs`' rules, the same ones the servable check applies.
"""
from __future__ import annotations

import numpy as np

from model_registry.inputs import BadInput, encode

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
SPLIT_KEYS = {"columns", "data", "index"}

__all__ = ["FORMATS", "BadInput", "NotJson", "TooManyRows", "rows_from_mlflow", "to_matrix"]


class NotJson(BadInput):
    """A body that is not JSON at all (415)."""


class TooManyRows(BadInput):
    """More rows than one request may score (413)."""


def _split(value: object) -> list[dict]:
    """Return the rows of a ``dataframe_split`` value, which needs ``columns`` and ``data``."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise BadInput("dataframe_split needs 'columns' and 'data'")
    if set(value) - SPLIT_KEYS:
        raise BadInput(f"dataframe_split may only have the keys {', '.join(sorted(SPLIT_KEYS))}")
    columns = value.get("columns")
    if not isinstance(columns, list):
        raise BadInput("dataframe_split needs 'columns', a list of the feature names")
    if len(set(map(str, columns))) != len(columns):
        raise BadInput("dataframe_split 'columns' names a column twice")
    if not isinstance(value.get("index", []), list):
        raise BadInput("dataframe_split 'index', when given, must be a list")
    rows = []
    for row in value["data"]:
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadInput(f"every row of dataframe_split must have {len(columns)} values")
        rows.append(dict(zip(columns, row)))
    return rows


def _columns(value: dict, features: tuple[str, ...]) -> list[dict]:
    """Return the rows of column-oriented input ``{feature: [values]}``; a single value stands for every row.

    Other keys are ignored, as extra columns are in every format: they neither add nor remove rows.
    """
    columns = {k: v for k, v in value.items() if k in features}
    lengths = {len(v) for v in columns.values() if isinstance(v, list)}
    if len(lengths) > 1:
        raise BadInput("column-oriented input needs lists of one length")
    n = lengths.pop() if lengths else 1
    return [{k: v[i] if isinstance(v, list) else v for k, v in columns.items()} for i in range(n)]


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
        return _split(value)
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
            raise BadInput("dataframe_records must be a list of objects {feature: value}")
        return value
    if isinstance(value, dict):  # instances or inputs, column-oriented
        return _columns(value, features)
    if not isinstance(value, list):
        raise BadInput(f"{key} must be a list of rows")
    return value


def to_matrix(rows: list, features: tuple[str, ...], bounds: dict[str, tuple[float, float]],
              max_rows: int, categorical: tuple[str, ...] = ()) -> np.ndarray:
    """Check the rows against the signature (names, types, no NaN, in range) and stack them."""
    if not rows:
        raise BadInput("no rows to score")
    if len(rows) > max_rows:
        raise TooManyRows(f"at most {max_rows} rows per request (SERVING_MAX_ROWS); send more in several requests")
    return encode(rows, features, bounds, categorical)
