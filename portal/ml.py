"""The ML credit method: the customer's `year_percentage` row, scored by the decision service.

The portal never loads the model itself for live decisions: it asks `serving/`
(`POST /v1/decisions`) with a short timeout. When serving is down, has no
model or answers badly, the method is unavailable (503) and nothing is
approved; the percentage method keeps working.
"""
from __future__ import annotations

import math

import requests
from sqlalchemy import text
from sqlalchemy.orm import Session

from pipeline.features import FEATURES, feature_years
from portal.ledger.credit import Decision
from portal.ledger.errors import InvalidRequest, LedgerError


class MLUnavailable(LedgerError):
    """The ML method cannot answer now (no decision service, no model, bad answer); nothing approved."""

    status = 503


def customer_features(session: Session, customer_id: int) -> tuple[dict[str, float], int]:
    """Return the customer's features from the `year_percentage` view and the decision year."""
    row = session.execute(text("SELECT * FROM year_percentage WHERE customer_id = :id"),
                          {"id": customer_id}).mappings().first()
    if row is None:
        raise InvalidRequest("no such customer", "customer_id")
    decision_year = int(row["decision_year"])
    missing = [year for name, year in zip(FEATURES, feature_years(decision_year)) if row[name] is None]
    if missing:
        raise InvalidRequest(
            "the ML method needs dues in each of the last five complete years "
            f"({', '.join(map(str, feature_years(decision_year)))}); none in {', '.join(map(str, missing))}. "
            "Use the percentage method.", "method")
    return {name: float(row[name]) for name in FEATURES}, decision_year


def score(serving_url: str, features: dict[str, float], decision_year: int, timeout: float) -> dict:
    """Ask the decision service for one decision; raise MLUnavailable on any failure."""
    try:
        response = requests.post(f"{serving_url.rstrip('/')}/v1/decisions", timeout=timeout,
                                 json={"rows": [features], "decision_year": decision_year})
    except requests.RequestException as exc:
        raise MLUnavailable(f"ML method unavailable: the decision service did not answer ({type(exc).__name__})",
                            "method") from exc
    if response.status_code != 200:
        raise MLUnavailable(f"ML method unavailable: the decision service answered {response.status_code}", "method")
    try:
        body = response.json()
        decision = body["decisions"][0]
        value, threshold = float(decision["score"]), float(decision["threshold"])
        approved, version, reasons = decision["approved"], str(decision["model_version"]), decision["reasons"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise MLUnavailable("ML method unavailable: the decision service answered badly", "method") from exc
    valid = (math.isfinite(value) and 0.0 <= value <= 1.0 and 0.0 < threshold <= 1.0 and isinstance(approved, bool)
             and approved == (value >= threshold) and isinstance(reasons, list))
    if not valid:
        raise MLUnavailable("ML method unavailable: the decision service answered badly", "method")
    return {"score": value, "threshold": threshold, "approved": approved, "model_version": version,
            "reasons": reasons}


def decide_by_model(session: Session, customer_id: int, serving_url: str, timeout: float) -> Decision:
    """Build the ML method's decision for a customer (scored before any lock is taken)."""
    features, decision_year = customer_features(session, customer_id)
    session.rollback()  # end the read transaction: the decision is written in a fresh one
    answer = score(serving_url, features, decision_year, timeout)
    years = feature_years(decision_year)
    inputs = {
        "features": features,
        "decision_year": decision_year,
        "yearly_percentages": [{"year": y, "percentage": round(features[f], 2)} for f, y in zip(FEATURES, years)],
    }
    return Decision("ml", answer["approved"], answer["threshold"], answer["score"], inputs,
                    answer["reasons"], answer["model_version"])
