"""Where the MLflow tracking and registry store lives, and the experiment runs go to.

``MLFLOW_TRACKING_URI`` names the store; the default is ``sqlite:///var/mlflow.db``
in the repository (``VAR_DIR`` moves ``var/``). For a local SQLite store the
artifacts go next to it, in ``mlartifacts/`` (``var/mlartifacts`` by default),
for another database store in ``var/mlartifacts``; ``MLFLOW_ARTIFACT_ROOT``
overrides both. A tracking server (http[s]://) keeps its own artifact root.
Nothing here runs at import time.
"""
from __future__ import annotations

import os
from pathlib import Path

import mlflow

from contracts.settings import var_dir

EXPERIMENT = "credit-approval"


def tracking_uri(uri: str | None = None) -> str:
    """Return the tracking/registry URI: the argument, MLFLOW_TRACKING_URI, or var/mlflow.db."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{var_dir() / 'mlflow.db'}"


def artifact_root(uri: str) -> str | None:
    """Return the artifact location for new experiments.

    MLFLOW_ARTIFACT_ROOT if set; next to a SQLite store; ``var/mlartifacts`` for
    another database store; None (the server decides) for a tracking server.
    """
    if os.environ.get("MLFLOW_ARTIFACT_ROOT"):
        return os.environ["MLFLOW_ARTIFACT_ROOT"]
    if uri.startswith("sqlite:///"):
        db_path = Path(uri.removeprefix("sqlite:///"))
        return (db_path.parent / "mlartifacts").resolve().as_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    return (var_dir() / "mlartifacts").resolve().as_uri()


def configure(uri: str | None = None) -> str:
    """Point MLflow's fluent API at the store (tracking and registry); return the URI."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(uri: str, name: str = EXPERIMENT) -> str:
    """Create the experiment if needed (artifacts under var/ for a local store); return its id."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(uri)
        location = f"{root.rstrip('/')}/{name}" if root else None
        return mlflow.create_experiment(name, artifact_location=location)
    return experiment.experiment_id
