"""What a manager sees about the live model: version, metrics, recent ML decisions, drift."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import CreditDecision

RECENT = 1000
BINS = 10


def serving_status(serving_url: str, timeout: float) -> dict:
    """Ask the decision service which version it serves."""
    try:
        response = requests.get(f"{serving_url.rstrip('/')}/version", timeout=timeout)
        response.raise_for_status()
        return {"available": True, **response.json()}
    except (requests.RequestException, ValueError) as exc:
        return {"available": False, "error": f"{type(exc).__name__}: the decision service did not answer"}


@lru_cache(maxsize=8)
def _reference(version: str, tracking_uri: str | None) -> dict:
    from model_registry import registry

    return registry.load_version(version, tracking_uri=tracking_uri).reference


def registry_entry(tracking_uri: str | None = None) -> dict:
    """Return the champion's registry entry (metrics, training date, threshold), or an error."""
    try:
        from model_registry import registry

        info = registry.describe(tracking_uri=tracking_uri)
    except Exception as exc:  # noqa: BLE001 - the page must render without a registry
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    champion = next((v for v in info["versions"] if v["version"] == info["champion"]), None)
    return {"available": champion is not None, "champion": champion, "history": info.get("history", [])}


def recent_decisions(session: Session, limit: int = RECENT) -> dict:
    """Summarise the most recent ML decisions: approval rate and score distribution."""
    rows = session.execute(
        select(CreditDecision.score, CreditDecision.approved, CreditDecision.inputs, CreditDecision.model_version)
        .where(CreditDecision.method == "ml").order_by(CreditDecision.created_at.desc()).limit(limit)
    ).all()
    scores = np.array([r.score for r in rows if r.score is not None], dtype=float)
    counts, edges = np.histogram(scores, bins=BINS, range=(0.0, 1.0))
    return {
        "count": len(rows),
        "approval_rate": (sum(r.approved for r in rows) / len(rows)) if rows else None,
        "score_histogram": [{"from": round(float(a), 2), "to": round(float(b), 2), "count": int(c)}
                            for a, b, c in zip(edges[:-1], edges[1:], counts)],
        "inputs": [r.inputs for r in rows],
    }


def drift(inputs: list[dict], version: str, tracking_uri: str | None = None) -> list[dict]:
    """Return the PSI table of recent decisions' features against the version's training data."""
    import pandas as pd

    from pipeline.monitor import NOISY_BELOW, decisions_features, psi_table

    reference = _reference(version, tracking_uri)
    current = decisions_features(pd.DataFrame({"inputs": inputs}), list(reference["distributions"]))
    table = psi_table(reference, current)
    if len(current) < NOISY_BELOW:  # a handful of decisions says nothing about a population
        table["band"] = f"too few (< {NOISY_BELOW})"
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def overview(session: Session, serving_url: str, timeout: float, tracking_uri: str | None = None) -> dict:
    """Everything the manager's model page shows."""
    recent = recent_decisions(session)
    inputs = recent.pop("inputs")
    entry = registry_entry(tracking_uri)
    table: list[dict] = []
    if entry["available"] and inputs:
        try:
            table = drift(inputs, entry["champion"]["version"], tracking_uri)
        except Exception as exc:  # noqa: BLE001 - drift is informative; its failure must not hide the rest
            entry["drift_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return {"serving": serving_status(serving_url, timeout), "registry": entry, "recent": recent, "drift": table}
