"""The registered models and their versions as the workbench shows them, all read through ``model_registry``.

A version: its number, aliases, status, candidate kind, threshold, data
fingerprint (rows, SHA-256, decision years, history), key metrics with their
95 % intervals, and the gate's verdict with its reasons (what the pipeline
logged on the version's run). A model adds the champion, the version a
rollback would give the alias back to, and the audit log of the alias's moves.
"""
from __future__ import annotations

from functools import lru_cache

import model_registry
from model_registry import evidence, registry

# The metrics the version list shows, each with its 95 % interval.
LIST_METRICS = ("test_auc", "test_ece", "test_brier", "test_approval_rate", "test_bad_rate_approved")
NO_PROMOTE = "--no-promote"
FINGERPRINT_TAGS = {"rows": "data_rows", "sha256": "data_sha256", "decision_years": "data_decision_years",
                    "history_years": "data_history_years", "source": "data_source"}


def with_interval(metrics: dict, key: str) -> dict | None:
    """Return ``{"value", "low", "high"}`` for a metric (low/high None when it has no interval), or None."""
    if key not in metrics:
        return None
    return {"value": metrics[key], "low": metrics.get(f"{key}_low"), "high": metrics.get(f"{key}_high")}


@lru_cache(maxsize=512)
def _run(run_id: str | None, tracking_uri: str) -> dict:
    # A run's gate tags and metrics are written once, when the run is logged: safe to keep.
    return evidence.run_summary(run_id, tracking_uri)


def version_entry(described: dict, tracking_uri: str) -> dict:
    """Return one version of ``model_registry.describe`` as the workbench lists it."""
    tags = described["tags"]
    run = _run(described["run_id"], tracking_uri)
    verdict = {"decision": run["decision"], "reasons": run["reasons"], "note": ""}
    # The version's own tag is written when the gate has decided, the servable check included.
    kept = tags.get("gate_reasons", "")
    if kept.startswith(NO_PROMOTE):
        verdict["note"] = "registered without promotion (--no-promote)"
    elif kept and kept != "-":
        verdict.update(decision="challenger", reasons=kept.split("; "))
    return {
        "version": described["version"], "aliases": described["aliases"], "status": described["status"],
        "kind": described["kind"], "threshold": described["threshold"], "created": described["created"],
        "run_id": described["run_id"], "description": described["description"],
        "data": {k: tags.get(tag) or None for k, tag in FINGERPRINT_TAGS.items()},
        "metrics": {k: with_interval(run["metrics"] or described["metrics"], k) for k in LIST_METRICS},
        "gate": verdict,
    }


def model(name: str, tracking_uri: str) -> dict:
    """Return a registered model: its versions (newest first), champion, rollback target and audit log."""
    info = model_registry.describe(name, tracking_uri)
    return {"name": name, "champion": info["champion"],
            "rollback_to": registry.previous_champion(info["history"], info["champion"]),
            "versions": [version_entry(v, tracking_uri) for v in info["versions"]],
            "history": [{k: e[k] for k in ("event", "from_version", "to_version", "who", "when", "why", "deleted")}
                        for e in reversed(info["events"])],
            "unaudited_move": info.get("unaudited_move")}


def version(name: str, number: str, tracking_uri: str) -> dict:
    """Return one version with the text of its gate evidence (what a promotion records); RegistryError if none."""
    info = model(name, tracking_uri)
    found = next((v for v in info["versions"] if v["version"] == str(number)), None)
    if found is None:
        raise model_registry.RegistryError(f"{name} has no version {number}")
    found = {**found, "gate_text": evidence.version_evidence(found["version"], name, tracking_uri)["gate_text"]}
    return {"model": {k: info[k] for k in ("name", "champion", "rollback_to")}, "version": found}
