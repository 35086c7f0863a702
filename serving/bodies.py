"""The content types of `POST /invocations`, as MLflow's scoring server reads them: JSON, CSV and Parquet.

MLflow's server (``mlflow/pyfunc/scoring_server``) takes ``application/json``,
``text/csv`` (a header row, then one row per line, parsed by pandas with the
signature's column types) and ``application/vnd.apache.parquet``; a charset
other than UTF-8, any other content-type parameter, or any other type is a 415
with a plain-text message. The same here. CSV and Parquet become rows of
``{column: value}`` (an empty cell is null) for the same row rules as JSON.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from serving.protocol import BadInput

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = (CSV, JSON, PARQUET)


class UnsupportedMediaType(Exception):
    """A content type MLflow's scoring server does not read either (415, plain text)."""


def media_type(header: str | None) -> str:
    """Return the body's media type, or raise UnsupportedMediaType as MLflow's server would."""
    if header == JSON:  # what nearly every client sends: no parsing
        return JSON
    parts = [part.strip() for part in (header or "").split(";")]
    mime = parts[0].lower()
    parameters = {key.strip().lower(): value.strip() for key, _, value in (p.partition("=") for p in parts[1:])}
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        raise UnsupportedMediaType("The scoring server only supports UTF-8")
    unexpected = sorted(set(parameters) - {"charset"})
    if unexpected:
        raise UnsupportedMediaType(f"Unrecognized content type parameters: {', '.join(unexpected)}.")
    if mime not in CONTENT_TYPES:
        raise UnsupportedMediaType(f"This predictor only supports the following content types: "
                                   f"Types: {list(CONTENT_TYPES)}. Got '{header or ''}'.")
    return mime


def _frame(data: bytes, mime: str, features: tuple[str, ...], categorical: tuple[str, ...]) -> pd.DataFrame:
    """Parse a CSV or Parquet body into a DataFrame (CSV columns typed by the signature, as MLflow does)."""
    try:
        if mime == CSV:
            dtypes = {name: object if name in categorical else np.float64 for name in features}
            return pd.read_csv(io.StringIO(data.decode("utf-8")), dtype=dtypes)
        return pd.read_parquet(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        kind = "CSV (a header row, then one row per line)" if mime == CSV else "Parquet"
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"the body is not valid {kind}: {detail}") from exc


def frame_rows(data: bytes, mime: str, features: tuple[str, ...], categorical: tuple[str, ...] = ()) -> list[dict]:
    """Return the rows of a CSV or Parquet body as ``{column: value}``, an empty cell as None."""
    frame = _frame(data, mime, features, categorical)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")
