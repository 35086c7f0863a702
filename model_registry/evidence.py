"""What the pipeline logged with each registered version, read back for the workbench.

The registered models and their versions come from ``registry.describe``; this
module adds, per version, what the version's training run holds: the gate's
verdict (run tags ``gate_decision`` and ``gate_reasons``) and its evidence
(``evaluation/gate.txt``, one PASS/FAIL line per check), the held-out rows'
outcomes and scores (``evaluation/holdout_scores.csv``, logged since the
workbench exists: older versions have none) and the feature reference
(``feature_reference.json``: the near-cut-off profile reasons are written
against). A version's artifacts never change, so callers may cache them.
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pandas as pd

from model_registry import registry

GATE_TEXT = "evaluation/gate.txt"
HOLDOUT_SCORES = "evaluation/holdout_scores.csv"
FEATURE_REFERENCE = "feature_reference.json"


def model_names(tracking_uri: str | None = None) -> list[str]:
    """Return the names of every registered model, credit-approval first, then alphabetically."""
    found = {m.name for m in registry.client(tracking_uri).search_registered_models(max_results=1000)}
    return sorted(found, key=lambda n: (n != registry.MODEL_NAME, n))


def run_summary(run_id: str | None, tracking_uri: str | None = None) -> dict:
    """Return a version's run: the gate's verdict (``decision``: promote, challenger or ''), reasons, metrics."""
    if not run_id:
        return {"decision": "", "reasons": [], "metrics": {}}
    try:
        data = registry.client(tracking_uri).get_run(run_id).data
    except Exception:  # noqa: BLE001 - a deleted run leaves the version listed without its verdict
        return {"decision": "", "reasons": [], "metrics": {}}
    reasons = data.tags.get("gate_reasons", "")
    return {"decision": data.tags.get("gate_decision", ""),
            "reasons": [r.strip() for r in reasons.split("; ") if r.strip() and r.strip() != "-"],
            "metrics": dict(data.metrics)}


def _artifact(run_id: str, path: str, tracking_uri: str | None) -> str | None:
    """Return the text of one run artifact, or None when the run has none by that name."""
    c = registry.client(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = c.download_artifacts(run_id, path, tmp)
        except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            return None
        return Path(local).read_text()


def version_evidence(version: str, name: str = registry.MODEL_NAME, tracking_uri: str | None = None) -> dict:
    """Return a version's run id, every metric of its run, gate evidence text, held-out scores and feature reference.

    The held-out scores are a DataFrame (``outcome``, ``score``, ``rule``) or None for a version logged before them.
    """
    try:
        mv = registry.client(tracking_uri).get_model_version(name, str(version))
    except Exception as exc:  # noqa: BLE001 - MLflow raises RESOURCE_DOES_NOT_EXIST
        raise registry.RegistryError(f"{name} has no version {version}") from exc
    run_id = mv.run_id
    if not run_id:
        return {"run_id": None, "gate_text": "", "holdout": None, "reference": {}, "metrics": {}}
    metrics = run_summary(run_id, tracking_uri)["metrics"]
    scores = _artifact(run_id, HOLDOUT_SCORES, tracking_uri)
    reference = _artifact(run_id, FEATURE_REFERENCE, tracking_uri)
    return {"run_id": run_id, "gate_text": _artifact(run_id, GATE_TEXT, tracking_uri) or "",
            "holdout": None if scores is None else pd.read_csv(io.StringIO(scores)),
            "reference": json.loads(reference) if reference else {}, "metrics": metrics}
