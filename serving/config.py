"""The decision service's settings, read from the environment when the app is created."""
from __future__ import annotations

import os


def load_config() -> dict:
    """Collect serving's Flask config from the environment."""
    return {
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI"),
        "MODEL_POLL_SECONDS": float(os.environ.get("MODEL_POLL_SECONDS", "10")),
        "MAX_ROWS": int(os.environ.get("SERVING_MAX_ROWS", "100000")),
        # Versions kept loaded for replays of past decisions (each is a fitted pipeline in memory).
        "REPLAY_VERSIONS": int(os.environ.get("SERVING_REPLAY_VERSIONS", "4")),
        "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
        # When set, scoring calls must carry it as a bearer token, and answers are signed with it.
        "SERVING_TOKEN": os.environ.get("SERVING_TOKEN") or None,
        "WATCH": True,
    }
