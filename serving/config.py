"""The decision service's settings, read from the environment when the app is created."""
from __future__ import annotations

import os

from model_registry import registry

DEFAULT_MODEL = f"{registry.MODEL_NAME}@{registry.CHAMPION}"


def load_config() -> dict:
    """Collect serving's Flask config from the environment."""
    return {
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI"),
        # The registered model and alias to serve and follow: name@alias.
        "SERVING_MODEL": os.environ.get("SERVING_MODEL") or DEFAULT_MODEL,
        "MODEL_POLL_SECONDS": float(os.environ.get("MODEL_POLL_SECONDS", "10")),
        "MAX_ROWS": int(os.environ.get("SERVING_MAX_ROWS", "100000")),
        # Versions kept loaded for replays of past decisions (each is a fitted pipeline in memory).
        "REPLAY_VERSIONS": int(os.environ.get("SERVING_REPLAY_VERSIONS", "4")),
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
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
