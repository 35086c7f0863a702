"""The decision service's settings, read from the environment when the app is created."""
from __future__ import annotations

import os

from model_registry import registry

DEFAULT_MODEL = f"{registry.MODEL_NAME}@{registry.CHAMPION}"
MAX_ROWS = 1000
MAX_ROW_BYTES = 4096


def load_config() -> dict:
    """Collect serving's Flask config from the environment."""
    max_rows = int(os.environ.get("SERVING_MAX_ROWS", str(MAX_ROWS)))
    return {
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI"),
        # The registered model and alias to serve and follow: name@alias.
        "SERVING_MODEL": os.environ.get("SERVING_MODEL") or DEFAULT_MODEL,
        "MODEL_POLL_SECONDS": float(os.environ.get("MODEL_POLL_SECONDS", "10")),
        # Rows one request may score: 1,000 keep a /v1/decisions request (score and reasons, about 45-120 us a
        # row on the demo champions) near 100 ms of work; more is a 413 (docs/serving.md, "Limits").
        "MAX_ROWS": max_rows,
        # Versions kept loaded for replays of past decisions (each is a fitted pipeline in memory).
        "REPLAY_VERSIONS": int(os.environ.get("SERVING_REPLAY_VERSIONS", "4")),
        # A body that big cannot hold only the rows allowed (a generous 4 KB a row): 413 before it is parsed.
        "MAX_CONTENT_LENGTH": max_rows * MAX_ROW_BYTES + 64 * 1024,
        # When set, scoring calls must carry it as a bearer token, and answers are signed with it.
        "SERVING_TOKEN": os.environ.get("SERVING_TOKEN") or None,
        "WATCH": True,
        # Also score every /v1/decisions request with <name>@challenger, in the shadow: auto (when it exists) | off.
        "SERVING_SHADOW": os.environ.get("SERVING_SHADOW") or "auto",
    }


def model_ref(value: str) -> tuple[str, str]:
    """Split SERVING_MODEL (``name@alias``) into the registered model's name and alias; raise ValueError."""
    name, at, alias = value.strip().rpartition("@")
    if not at or not name or not alias:
        raise ValueError(f"SERVING_MODEL must be name@alias (e.g. {DEFAULT_MODEL}), got {value!r}")
    return name, alias
