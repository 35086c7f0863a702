"""The ML credit method: the customer's ``year_percentage`` row, scored by the decision service.

The portal never loads the model: it sends the row's yearly paid percentages to
``serving/`` (``POST /v1/decisions``); serving picks the columns its model was
trained on and answers a score. The portal judges that score with its own
threshold (``ML_THRESHOLD``), then its credit policy judges the amount. The
challenger's shadow score, when serving sends one, is judged with the same
threshold and stored beside the decision; it never decides. When
serving is down, has no model or answers badly, the method is unavailable (503)
and nothing is approved; the percentage method keeps working.
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from portal.decision_service import DecisionService
from portal.ledger import year_percentage
from portal.ledger.decision import Decision
from portal.ledger.errors import InvalidRequest

log = logging.getLogger("portal.ml")


def model_inputs(session: Session, customer_id: int) -> dict:
    """Return what the model will see: the features, the decision year and the yearly percentages; 422 if incomplete."""
    row = year_percentage.read_row(session, customer_id)
    yearly = year_percentage.yearly(row)
    missing = [y["year"] for y in yearly if y["percentage"] is None]
    if missing:
        raise InvalidRequest(
            "the ML method needs dues in each of the last five complete years "
            f"({', '.join(str(y['year']) for y in yearly)}); none in {', '.join(map(str, missing))}. "
            "Use the percentage method.", "method")
    return {"features": year_percentage.features(row), "decision_year": row["decision_year"],
            "yearly_percentages": yearly}


def decide_by_model(session: Session, customer_id: int, service: DecisionService, threshold: float) -> Decision:
    """Score a customer with the live model (before any lock is taken) and judge the score with our threshold."""
    inputs = model_inputs(session, customer_id)
    session.rollback()  # end the read transaction: the decision is written in a fresh one
    answer = service.score(inputs["features"], inputs["decision_year"])
    served = answer["served_threshold"]
    if served != threshold:  # the registered version records its own; the portal's number decides
        log.warning("decision service threshold %r differs from the portal's %r (model version %s); using %r",
                    served, threshold, answer["model_version"], threshold)
    shadow = answer.get("shadow")
    if shadow is not None:  # judged like the champion's score: the portal's threshold, so the two compare
        shadow = {**shadow, "approved": shadow["score"] >= threshold}
    return Decision("ml", answer["score"] >= threshold, threshold, answer["score"], inputs,
                    answer["reasons"], answer["model_version"], shadow)
