"""The champion and the challenger on the same live requests: what the manager's shadow page shows.

Every ML decision made while serving scored a challenger in the shadow stores
the challenger's version and score (``credit_decisions.shadow_*``). Both
models are judged here the same way, by the score check alone: a score at or
above the decision's threshold is an approval (the credit policy's limit check,
which can still refuse, is the same for both and left out). The report covers
the most recent decisions of one (champion version, challenger version) pair,
the newest by default; serving's own view of the shadow (which version it
scores now, or why it cannot) comes from ``GET /v1/model``.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.decision_service import DecisionService, ServiceUnavailable
from portal.model_overview import score_histogram
from portal.models import CreditDecision

RECENT = 1000
DISAGREEMENTS = 50

SHADOWED = (CreditDecision.method == "ml") & CreditDecision.shadow_score.is_not(None)


def pairs(session: Session) -> list[dict]:
    """Return the (champion, challenger) version pairs with shadow scores, the most recently seen first."""
    rows = session.execute(
        select(CreditDecision.model_version, CreditDecision.shadow_version, func.count(), func.max(CreditDecision.id))
        .where(SHADOWED).group_by(CreditDecision.model_version, CreditDecision.shadow_version)
        .order_by(func.max(CreditDecision.id).desc())
    ).all()
    return [{"champion": c, "challenger": s, "decisions": n} for c, s, n, _ in rows]


def _side(scores: list[float], approved: list[bool]) -> dict:
    return {"approval_rate": sum(approved) / len(approved) if approved else None,
            "score_histogram": score_histogram(scores)}


def compare(session: Session, champion: str | None = None, challenger: str | None = None,
            limit: int = RECENT) -> dict:
    """Compare champion and challenger on their latest shared decisions (the newest pair unless one is named)."""
    known = pairs(session)
    chosen = next((p for p in known if (champion is None or p["champion"] == champion)
                   and (challenger is None or p["challenger"] == challenger)), None)
    report = {"pairs": known, "champion_version": None, "challenger_version": None, "count": 0,
              "agreement_rate": None, "disagreement_count": 0, "champion": _side([], []),
              "challenger": _side([], []), "disagreements": []}
    if chosen is None:
        return report
    rows = session.scalars(
        select(CreditDecision).where(SHADOWED, CreditDecision.model_version == chosen["champion"],
                                     CreditDecision.shadow_version == chosen["challenger"])
        .order_by(CreditDecision.created_at.desc(), CreditDecision.id.desc()).limit(limit)
    ).all()
    judged = [(r, r.score >= r.threshold, r.shadow_score >= r.threshold) for r in rows]  # ML: always a score
    differ = [(r, a, b) for r, a, b in judged if a != b]
    report.update(
        champion_version=chosen["champion"], challenger_version=chosen["challenger"], count=len(rows),
        agreement_rate=1 - len(differ) / len(rows), disagreement_count=len(differ),
        champion=_side([r.score for r in rows], [a for _, a, _ in judged]),
        challenger=_side([r.shadow_score for r in rows], [b for _, _, b in judged]),
        disagreements=[{"request_id": r.request_id, "customer_id": r.customer_id, "created_at": r.created_at,
                        "threshold": r.threshold, "champion_score": r.score, "challenger_score": r.shadow_score,
                        "champion_approved": a, "challenger_approved": b, "approved": r.approved}
                       for r, a, b in differ[:DISAGREEMENTS]])
    return report


def shadow_page(session: Session, service: DecisionService, champion: str | None = None,
                challenger: str | None = None) -> dict:
    """Return the comparison and what serving says about its shadow now (or why it cannot say)."""
    report = compare(session, champion, challenger)
    try:
        served = service.model().get("serving") or {}
        report["serving"] = {"available": True, "champion": served.get("version"),
                             **(served.get("shadow") or {"enabled": False})}
    except ServiceUnavailable as exc:
        report["serving"] = {"available": False, "error": exc.message}
    return report
