"""Credit requests: checking a request and recording every decision.

Both methods (``portal.ledger.percentage``, ``portal.ml``) end in
``record_decision``, the one place that applies the credit policy
(``portal.ledger.policy``: eligibility, score, limit), stores the decision and,
on approval, adds the credit to the chosen month's due (``portal.credit_requests``
runs them). Bank credit the customer holds settles the new due in the same
transaction (``portal.ledger.bank_credit.settle``).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db import write_transaction
from portal.ledger import bank_credit, idempotency, policy
from portal.ledger.decision import Decision
from portal.ledger.errors import InvalidRequest
from portal.ledger.locks import lock_customer
from portal.mail import outbox
from portal.models import CreditDecision, Customer, Due
from portal.money import format_cents

# How far ahead a credit may be booked.
MAX_YEARS_AHEAD = 5


def check_credit_request(year: int, month: int, amount_cents: int, max_cents: int, today: date) -> None:
    """Refuse an amount out of bounds or a month in the past (nothing is written)."""
    if amount_cents <= 0:
        raise InvalidRequest("amount must be positive", "amount")
    if amount_cents > max_cents:
        raise InvalidRequest(f"amount must be at most {format_cents(max_cents)}", "amount")
    if not 1 <= month <= 12:
        raise InvalidRequest("month must be between 1 and 12", "month")
    if year > today.year + MAX_YEARS_AHEAD:
        raise InvalidRequest(f"year must be at most {today.year + MAX_YEARS_AHEAD}", "year")
    if (year, month) < (today.year, today.month):
        field_name = "year" if year < today.year else "month"
        raise InvalidRequest("credit can only be booked on this month or a later one", field_name)


def request_hash(year: int, month: int, amount_cents: int, method: str) -> str:
    """Return the fingerprint of a credit request, to tell a retry from a reused Idempotency-Key."""
    return idempotency.fingerprint(kind="credit", year=year, month=month, amount_cents=amount_cents, method=method)


def previous_decision(session: Session, customer_id: int, key: str, fingerprint: str) -> CreditDecision | None:
    """Return the decision already made for this Idempotency-Key, or None; 409 if the key meant another request."""
    answer = idempotency.first_answer(session, "credit", customer_id, key, fingerprint)
    if answer is None:
        return None
    return session.scalars(select(CreditDecision).where(CreditDecision.request_id == answer["request_id"])).one()


def shadow_columns(shadow: dict | None) -> dict:
    """Return the challenger's shadow view as the decision's columns (all None without one)."""
    shadow = shadow or {}
    return {"shadow_version": shadow.get("version"), "shadow_score": shadow.get("score"),
            "shadow_approved": shadow.get("approved")}


def record_decision(session: Session, customer_id: int, year: int, month: int, amount_cents: int,
                    decide: Callable[[Customer], Decision], rule: policy.LimitRule, today: date,
                    once: tuple[str, str] | None = None) -> CreditDecision:
    """Decide under the customer's lock with the credit policy, store the decision, and on approval add the due.

    `decide` sees the locked customer row, so a rule over the running totals
    cannot race a payment, and the limit check sees every credit approved
    before it. (The ML method scores before taking the lock - a network call
    must not hold it - and passes a decision already made.)
    """
    with write_transaction(session):
        customer = lock_customer(session, customer_id)
        if once is not None:  # (key, fingerprint): a retry gets the first decision, nothing added twice
            previous = previous_decision(session, customer_id, *once)
            if previous is not None:
                return previous
        headroom = policy.headrooms(session, [customer], today, rule)[customer_id]
        verdict = policy.apply(decide(customer), customer, headroom, amount_cents)
        decision = verdict.decision
        if decision.approved:
            due = session.get(Due, (customer_id, year, month))
            if due is None:
                due = Due(customer_id=customer_id, year=year, month=month, due_cents=0,
                          paid_cents=0, opening_paid_cents=0)
                session.add(due)
            due.due_cents += amount_cents
            customer.total_due_cents += amount_cents
        row = CreditDecision(
            request_id=str(uuid.uuid4()), customer_id=customer_id, year=year, month=month,
            amount_cents=amount_cents, method=decision.method, approved=decision.approved,
            score=decision.score, threshold=decision.threshold, inputs=decision.inputs,
            reasons=decision.reasons, model_version=decision.model_version,
            limit_cents=headroom.limit_cents, exposure_cents=headroom.exposure_cents,
            checks=[c.to_record() for c in verdict.checks],
            **shadow_columns(decision.shadow),
        )
        session.add(row)
        if decision.approved:  # a new due: bank credit the customer holds pays it at once
            session.flush()
            bank_credit.settle(session, customer, credit_decision_id=row.id)
        outbox.enqueue(session, customer, outbox.decision_kind(row),
                       outbox.decision_context(row, headroom.available_cents))
        if once is not None:
            idempotency.remember(session, "credit", customer_id, *once, {"request_id": row.request_id})
    return row
