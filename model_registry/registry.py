"""The ``credit-approval`` registered model: versions, the ``champion`` alias, and its history.

Design overview
---------------
* The live version is the one carrying the alias ``champion`` (stages are
  deprecated in MLflow and never used). Serving loads
  ``models:/credit-approval@champion``.
* Each version's tag ``status`` says what it is: ``candidate`` (just
  registered), ``champion``, ``challenger`` (kept out by the gate, with
  ``gate_reasons``), ``former-champion`` or ``rolled-back``. Promotions carry
  ``promoted_by`` / ``promoted_at`` / ``promotion_reason``; rollbacks the
  same with ``rolled_back_*``.
* The registered model's tag ``champion_history`` lists the versions that held
  the alias, oldest first: a promotion pushes, a rollback pops, so two
  rollbacks in a row go two champions back.
"""
from __future__ import annotations

import getpass
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime

import mlflow
import numpy as np
from mlflow import MlflowClient

from model_registry import package, store

MODEL_NAME = "credit-approval"
CHAMPION = "champion"
HISTORY_TAG = "champion_history"
KEY_METRICS = ("test_auc", "test_ece", "test_brier", "baseline_auc", "bayes_auc", "test_approval_rate",
               "test_bad_rate_approved")


class RegistryError(RuntimeError):
    """A registry operation cannot be done (no such version, nothing to roll back to, ...)."""


@dataclass
class LoadedModel:
    """A registered version, ready to score: the fitted scikit-learn pipeline and what to know about it."""

    pipeline: object
    name: str
    version: str
    uri: str
    run_id: str | None
    threshold: float
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    reference: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    signature: list[dict] | None = None  # the MLmodel's input columns: [{"name", "type"}, ...]
    input_example: list[dict] | None = None  # the rows logged with the model

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Return the allowed range of each bounded numeric feature, as the version's dataset spec records it."""
        spec_bounds = (self.metadata.get("spec") or {}).get("bounds") or {}
        return {k: (float(v[0]), float(v[1])) for k, v in spec_bounds.items()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of a good outcome for rows of features in ``features`` order."""
        return self.pipeline.predict_proba(x)[:, 1]


def client(tracking_uri: str | None = None):
    """Return an MlflowClient on the configured store."""
    uri = store.configure(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who(who: str | None) -> str:
    if who:
        return who
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def champion_uri(name: str = MODEL_NAME, alias: str = CHAMPION) -> str:
    """Return the URI serving loads: ``models:/credit-approval@champion`` by default."""
    return f"models:/{name}@{alias}"


def register(model_uri: str, *, run_id: str | None = None, tags: dict | None = None, name: str = MODEL_NAME,
             tracking_uri: str | None = None) -> str:
    """Register a logged model (``models:/<model_id>``) as a new version of ``name``; return its number."""
    c = client(tracking_uri)
    try:
        c.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises RESOURCE_DOES_NOT_EXIST
        c.create_registered_model(name, description="Probability that a customer repays a credit "
                                  "(result = 1); approve at the version's threshold. Live version: alias champion.")
    tags = {"status": "candidate", **{k: str(v) for k, v in (tags or {}).items()}}
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    mv = c.create_model_version(name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
    return str(mv.version)


def champion_version(name: str = MODEL_NAME, tracking_uri: str | None = None, alias: str = CHAMPION) -> str | None:
    """Return the version holding the alias (champion by default), or None (cheap: poll it to notice a move)."""
    try:
        return str(client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except Exception:  # noqa: BLE001 - no model or no alias
        return None


def _history(c, name: str) -> list[str]:
    raw = c.get_registered_model(name).tags.get(HISTORY_TAG, "")
    return [v for v in raw.split(",") if v]


def _set_history(c, name: str, history: list[str]) -> None:
    c.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[-200:]))


def promote(version: str | int, *, who: str | None = None, why: str = "", name: str = MODEL_NAME,
            tracking_uri: str | None = None) -> dict:
    """Move the champion alias to a version, recording who, when and why; return what changed."""
    c = client(tracking_uri)
    version = str(version)
    try:
        c.get_model_version(name, version)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(f"{name} has no version {version}") from exc
    previous = champion_version(name, tracking_uri)
    if previous == version:
        return {"champion": version, "previous": previous, "changed": False}
    when, who = _now(), _who(who)
    c.set_registered_model_alias(name, CHAMPION, version)
    for key, value in {"status": "champion", "promoted_by": who, "promoted_at": when,
                       "promotion_reason": why or "promoted by hand"}.items():
        c.set_model_version_tag(name, version, key, value)
    if previous is not None:
        c.set_model_version_tag(name, previous, "status", "former-champion")
        c.set_model_version_tag(name, previous, "replaced_at", when)
    history = _history(c, name)
    if previous is not None and (not history or history[-1] != previous):
        history.append(previous)  # the alias was moved outside this module
    _set_history(c, name, history + [version])
    return {"champion": version, "previous": previous, "changed": True}


def mark_challenger(version: str | int, reasons: list[str], *, name: str = MODEL_NAME,
                    tracking_uri: str | None = None) -> None:
    """Record that the gate kept a version out, and why (version tags)."""
    c = client(tracking_uri)
    c.set_model_version_tag(name, str(version), "status", "challenger")
    c.set_model_version_tag(name, str(version), "gate_reasons", "; ".join(reasons)[:4900] or "-")
    c.set_model_version_tag(name, str(version), "gate_decided_at", _now())


def rollback(*, who: str | None = None, why: str = "", name: str = MODEL_NAME,
             tracking_uri: str | None = None) -> dict:
    """Give the champion alias back to the previous champion; return what changed."""
    c = client(tracking_uri)
    current = champion_version(name, tracking_uri)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    history = _history(c, name)
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise RegistryError(f"{name}: version {current} is the first champion; there is nothing to roll back to")
    previous = history[-1]
    when, who = _now(), _who(who)
    c.set_registered_model_alias(name, CHAMPION, previous)
    for key, value in {"status": "rolled-back", "rolled_back_by": who, "rolled_back_at": when,
                       "rolled_back_reason": why or "rolled back by hand"}.items():
        c.set_model_version_tag(name, current, key, value)
    for key, value in {"status": "champion", "promoted_by": who, "promoted_at": when,
                       "promotion_reason": f"rollback from version {current}" + (f": {why}" if why else "")}.items():
        c.set_model_version_tag(name, previous, key, value)
    _set_history(c, name, history)
    return {"champion": previous, "previous": current, "changed": True}


def describe(name: str = MODEL_NAME, tracking_uri: str | None = None) -> dict:
    """Return the registered model's versions (newest first) with aliases, status and key metrics."""
    c = client(tracking_uri)
    try:
        model = c.get_registered_model(name)
    except Exception:  # noqa: BLE001
        return {"name": name, "champion": None, "history": [], "versions": [],
                "tracking_uri": store.tracking_uri(tracking_uri)}
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = []
    for mv in sorted(c.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version), reverse=True):
        metrics = {}
        if mv.run_id:
            try:
                run_metrics = c.get_run(mv.run_id).data.metrics
                metrics = {k: run_metrics[k] for k in KEY_METRICS if k in run_metrics}
            except Exception:  # noqa: BLE001 - a deleted run leaves the version usable
                pass
        versions.append({
            "version": str(mv.version),
            "aliases": sorted(set(mv.aliases or []) | set(aliases.get(str(mv.version), []))),
            "status": mv.tags.get("status", ""),
            "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
            "run_id": mv.run_id,
            "kind": mv.tags.get("model_kind", ""),
            "threshold": mv.tags.get("threshold", ""),
            "data_rows": mv.tags.get("data_rows", ""),
            "metrics": metrics,
            "tags": dict(mv.tags),
        })
    champion = next((v["version"] for v in versions if CHAMPION in v["aliases"]), None)
    history = [v for v in model.tags.get(HISTORY_TAG, "").split(",") if v]
    return {"name": name, "champion": champion, "history": history, "versions": versions,
            "tracking_uri": store.tracking_uri(tracking_uri)}


def load_version(version: str | int, name: str = MODEL_NAME, tracking_uri: str | None = None) -> LoadedModel:
    """Download a version and return its fitted pipeline with its metadata and feature reference."""
    c = client(tracking_uri)
    mv = c.get_model_version(name, str(version))
    uri = f"models:/{name}/{mv.version}"
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        pipeline, metadata, reference = package.read_model_dir(path)
        signature, example = package.read_signature(path), package.read_input_example(path)
    return LoadedModel(
        pipeline=pipeline, name=name, version=str(mv.version), uri=uri, run_id=mv.run_id,
        threshold=float(metadata["threshold"]), features=list(metadata["features"]),
        numeric=list(metadata["numeric"]), categorical=list(metadata["categorical"]),
        reference=reference, metadata=metadata, signature=signature, input_example=example,
    )


def load_champion(name: str = MODEL_NAME, tracking_uri: str | None = None,
                  alias: str = CHAMPION) -> LoadedModel | None:
    """Resolve ``models:/<name>@<alias>`` (credit-approval@champion by default) and load it; None without it."""
    version = champion_version(name, tracking_uri, alias)
    if version is None:
        return None
    return load_version(version, name, tracking_uri)
