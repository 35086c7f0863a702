"""What a manager sees about the live model: version, metrics, recent ML decisions, drift.

The model's side comes from the decision service (``GET /v1/model``,
``POST /v1/drift``); the decisions from the ledger.
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.decision_service import DecisionService, ServiceUnavailable
from portal.models import CreditDecision

RECENT = 1000
BINS = 10


def recent_decisions(session: Session, limit: int = RECENT) -> dict:
    """Summarise the most recent ML decisions: approval rate, score distribution, and their inputs."""
    rows = session.execute(
        select(CreditDecision.score, CreditDecision.approved, CreditDecision.inputs)
        .where(CreditDecision.method == "ml").order_by(CreditDecision.created_at.desc()).limit(limit)
    ).all()
    return {
        "count": len(rows),
        "approval_rate": (sum(r.approved for r in rows) / len(rows)) if rows else None,
        "score_histogram": score_histogram([r.score for r in rows if r.score is not None]),
        "inputs": [(r.inputs or {}).get("features") or {} for r in rows],
    }


def score_histogram(scores: list[float]) -> list[dict]:
    """Return how many scores fall in each tenth of [0, 1]: ``[{"from", "to", "count"}, ...]``."""
    counts, edges = np.histogram(np.array(scores, dtype=float), bins=BINS, range=(0.0, 1.0))
    return [{"from": round(float(a), 2), "to": round(float(b), 2), "count": int(c)}
            for a, b, c in zip(edges[:-1], edges[1:], counts)]


def overview(session: Session, service: DecisionService) -> dict:
    """Everything the manager's model page shows; the parts serving cannot give say why."""
    recent = recent_decisions(session)
    inputs = recent.pop("inputs")
    info = {"serving": {"available": False}, "registry": {"available": False}, "recent": recent, "drift": []}
    try:
        described = service.model()
    except ServiceUnavailable as exc:
        info["serving"]["error"] = exc.message
        return info
    info["serving"] = {"available": True, **described.get("serving", {})}
    info["registry"] = described.get("registry") or info["registry"]
    if inputs and info["serving"].get("version"):
        try:
            info["drift"] = service.drift(inputs)
        except ServiceUnavailable as exc:  # drift is informative: its failure hides nothing else
            info["registry"]["drift_error"] = exc.message
    return info
