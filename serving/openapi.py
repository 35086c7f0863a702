"""The decision service's OpenAPI document: `serving/openapi.yaml`, with the live version's rows filled in.

The YAML file is the one source: every route, body, answer and error. What a
row holds depends on the version being served, so `GET /openapi.json` replaces
the generic row schemas (`Value`, `Row`, `RowValues`, `Columns`, `DriftRow`) with
the live version's features, types and bounds, the rows' `columns` of
`dataframe_split` with its signature, and sets the row limit (`SERVING_MAX_ROWS`).
Nothing here runs on a scoring request: requests are checked by
`model_registry.inputs` and `serving.protocol`, as before.
"""
from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path

import yaml

from serving.holder import Live

PATH = Path(__file__).with_name("openapi.yaml")
REF = "#/components/schemas/"


@cache
def source() -> dict:
    """Return the document as written in serving/openapi.yaml (read once per process)."""
    return yaml.safe_load(PATH.read_text(encoding="utf-8"))


def _value(live: Live, name: str) -> dict:
    """Return the JSON Schema of one feature's value: a category (or null), or a finite number within bounds."""
    if name in live.categorical:
        return {"type": ["string", "null"]}
    schema = {"type": "number"}
    low, high = live.bounds.get(name, (-math.inf, math.inf))
    if math.isfinite(low):
        schema["minimum"] = low
    if math.isfinite(high):
        schema["maximum"] = high
    return schema


def row_schemas(live: Live, max_rows: int) -> dict:
    """Return the row schemas of a loaded version (they replace the generic ones of the YAML file)."""
    values = {name: _value(live, name) for name in live.features}
    n = len(live.features)
    numeric = list(live.model.reference.get("distributions", {}))
    columns = {name: {"anyOf": [value, {"type": "array", "minItems": 1, "maxItems": max_rows, "items": value}]}
               for name, value in values.items()}
    return {
        "Row": {"type": "object", "required": list(live.features), "properties": values},
        "RowValues": {"type": "array", "minItems": n, "maxItems": n, "prefixItems": list(values.values())},
        "Columns": {"type": "object", "required": list(live.features), "properties": columns},
        "DriftRow": {"type": "object", "properties": {name: {"type": ["number", "null"]} for name in numeric}},
    }


def document(live: Live | None, max_rows: int) -> dict:
    """Return the document for the version being served (the generic row schemas while none is loaded)."""
    doc = copy.deepcopy(source())
    schemas = doc["components"]["schemas"]
    for limited in (schemas["Rows"], schemas["Records"], schemas["DataframeSplit"]["properties"]["data"]):
        limited["maxItems"] = max_rows
    if live is not None:
        for name, schema in row_schemas(live, max_rows).items():
            schemas[name] = {"description": schemas[name]["description"], **schema}
        schemas["DataframeSplit"]["properties"]["columns"] = {"const": list(live.features)}
    return doc
