"""Replay a stored credit decision: the same inputs, the same rule or model version, the same answer.

The rule is replayed here; a model version by the decision service (``POST /v1/replay``).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.decision_service import DecisionService
from portal.ledger.errors import InvalidRequest, NotFound
from portal.ledger.percentage import decide_by_percentage
from portal.models import CreditDecision
from portal.money import parse_amount

# Scores are floats from the same pipeline and inputs: equal to the last bits in practice.
TOLERANCE = 1e-9


def replay(session: Session, request_id: str, service: DecisionService) -> dict:
    """Recompute a stored decision and say whether it matches what was decided then."""
    stored = session.scalars(select(CreditDecision).where(CreditDecision.request_id == request_id)).one_or_none()
    if stored is None:
        raise NotFound("no such decision", "request_id")
    if stored.method == "percentage":
        inputs = stored.inputs
        if "percentage_paid" not in inputs:
            raise InvalidRequest("this decision had nothing to score (no history)", "request_id")
        again = decide_by_percentage(parse_amount(inputs["total_paid"]), parse_amount(inputs["total_due"]),
                                     stored.threshold)
        score = again.score
    else:  # the decision service scores the stored inputs with the version that decided
        score = service.replay(stored.model_version, stored.inputs["features"])
    approved = score is not None and score >= stored.threshold
    return {"request_id": request_id, "method": stored.method, "model_version": stored.model_version,
            "stored_score": stored.score, "replayed_score": score, "threshold": stored.threshold,
            "stored_approved": stored.approved, "replayed_approved": approved,
            "match": approved == stored.approved and abs((score or 0) - (stored.score or 0)) <= TOLERANCE}
