"""The ML credit method: the customer's ``year_percentage`` row, scored by the decision service.

The portal never loads the model: it sends the row's yearly paid percentages to
``serving/`` (``POST /v1/decisions``) with a short timeout; serving picks the
columns its model was trained on. When serving is down, has no model or answers
badly, the method is unavailable (503) and nothing is approved; the percentage
method keeps working.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from portal import decision_service
from portal.ledger import year_percentage
from portal.ledger.credit import Decision
from portal.ledger.errors import InvalidRequest


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


def decide_by_model(session: Session, customer_id: int, serving_url: str, timeout: float) -> Decision:
    """Build the ML method's decision for a customer (scored before any lock is taken)."""
    inputs = model_inputs(session, customer_id)
    session.rollback()  # end the read transaction: the decision is written in a fresh one
    answer = decision_service.score(serving_url, inputs["features"], inputs["decision_year"], timeout)
    return Decision("ml", answer["approved"], answer["threshold"], answer["score"], inputs,
                    answer["reasons"], answer["model_version"])
