"""Credit requests by either method: the one entry point used by the API and the pages."""
from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy.orm import Session

from portal import ml
from portal.ledger import credit
from portal.ledger.errors import LedgerError
from portal.ml import MLUnavailable  # noqa: F401 - re-exported for callers
from portal.models import CreditDecision


def request_credit(session: Session, customer_id: int, year: int, month: int, amount_cents: int,
                   method: str, today: date | None = None, idempotency_key: str | None = None) -> CreditDecision:
    """Decide a credit request by `method`, store the decision and return it (once per Idempotency-Key)."""
    cfg = current_app.config
    today = today or date.today()
    if method == "percentage":
        return credit.request_by_percentage(session, customer_id, year, month, amount_cents,
                                            threshold=cfg["PERCENTAGE_THRESHOLD"],
                                            max_cents=cfg["MAX_CREDIT_CENTS"], today=today,
                                            idempotency_key=idempotency_key)
    if method == "ml":
        credit.check_credit_request(year, month, amount_cents, cfg["MAX_CREDIT_CENTS"], today)
        once = credit.idempotency(idempotency_key, year, month, amount_cents, "ml")
        if once is not None:
            previous = credit.previous_decision(session, customer_id, *once)
            if previous is not None:  # a retry: no second call to the model
                return previous
        decision = ml.decide_by_model(session, customer_id, cfg["SERVING_URL"], cfg["SERVING_TIMEOUT"])
        return credit.record_decision(session, customer_id, year, month, amount_cents, lambda _c: decision, once)
    raise LedgerError(f"unknown method {method!r}", "method")
