"""A credit request by either method, through the same steps: check, replay, score, then the policy."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flask import Flask
from sqlalchemy.orm import Session

from portal import ml
from portal.decision_service import DecisionService
from portal.ledger import credit
from portal.ledger.decision import Decision
from portal.ledger.errors import InvalidRequest
from portal.ledger.percentage import decide_by_percentage
from portal.ledger.policy import LimitRule
from portal.models import CreditDecision, Customer


@dataclass(frozen=True)
class CreditSettings:
    """The portal settings a credit request needs."""

    percentage_threshold: float
    ml_threshold: float
    max_credit_cents: int
    limit: LimitRule
    service: DecisionService | None = None

    @classmethod
    def from_app(cls, app: Flask) -> CreditSettings:
        """Take the settings from the app's config, and its client of the decision service."""
        config = app.config
        return cls(percentage_threshold=config["PERCENTAGE_THRESHOLD"], ml_threshold=config["ML_THRESHOLD"],
                   max_credit_cents=config["MAX_CREDIT_CENTS"],
                   limit=LimitRule.from_config(config),
                   service=app.extensions.get("decision_service"))


Decide = Callable[[Customer], Decision]


def by_percentage(_session: Session, _customer_id: int, settings: CreditSettings) -> Decide:
    """Score under the customer's lock, from the running totals (so a payment cannot race it)."""
    return lambda customer: decide_by_percentage(customer.total_paid_cents, customer.total_due_cents,
                                                 settings.percentage_threshold)


def by_model(session: Session, customer_id: int, settings: CreditSettings) -> Decide:
    """Score now, before the lock (a network call must not hold it)."""
    if settings.service is None:
        raise InvalidRequest("the ML method is not configured here", "method")
    decision = ml.decide_by_model(session, customer_id, settings.service, settings.ml_threshold)
    return lambda _customer: decision


METHODS: dict[str, Callable[[Session, int, CreditSettings], Decide]] = {"percentage": by_percentage, "ml": by_model}


def request_credit(session: Session, customer_id: int, year: int, month: int, amount_cents: int, method: str,
                   settings: CreditSettings, *, today: date | None = None,
                   idempotency_key: str | None = None) -> CreditDecision:
    """Decide a credit request by `method` and the credit policy, store it and return it (once per key)."""
    today = today or date.today()
    credit.check_credit_request(year, month, amount_cents, settings.max_credit_cents, today)
    if method not in METHODS:
        raise InvalidRequest(f"method must be one of {', '.join(METHODS)}", "method")
    once = None
    if idempotency_key is not None:
        once = (idempotency_key, credit.request_hash(year, month, amount_cents, method))
        previous = credit.previous_decision(session, customer_id, *once)
        if previous is not None:  # a retry: the first decision, no second call to the model
            return previous
    decide = METHODS[method](session, customer_id, settings)
    return credit.record_decision(session, customer_id, year, month, amount_cents, decide, settings.limit, today,
                                  once)
