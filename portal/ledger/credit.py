"""Credit requests: the percentage rule and recording every decision.

Both methods (percentage here, ML in ``portal.ml``) end in ``record_decision``,
the one place that stores a decision and, on approval, adds the credit to the
chosen month's due.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db import write_transaction
from portal.ledger.errors import Conflict, InvalidRequest
from portal.ledger.locks import lock_customer
from portal.ledger.payments import request_fingerprint
from portal.models import CreditDecision, Customer, Due, IdempotencyRecord
from portal.money import format_cents

# How far ahead a credit may be booked.
MAX_YEARS_AHEAD = 5


@dataclass
class Decision:
    """A method's verdict before it is stored."""

    method: str
    approved: bool
    threshold: float
    score: float | None
    inputs: dict
    reasons: list[dict] = field(default_factory=list)
    model_version: str | None = None


def percentage_paid(total_paid_cents: int, total_due_cents: int) -> float | None:
    """Return paid / due x 100, or None when nothing was ever due."""
    if total_due_cents <= 0:
        return None
    return 100.0 * total_paid_cents / total_due_cents


def decide_by_percentage(total_paid_cents: int, total_due_cents: int, threshold: float) -> Decision:
    """Apply the percentage rule: approve when paid / due x 100 >= threshold."""
    pct = percentage_paid(total_paid_cents, total_due_cents)
    inputs = {"total_paid": format_cents(total_paid_cents), "total_due": format_cents(total_due_cents)}
    if pct is None:
        reason = {"code": "no_history", "text": "Nothing has been due yet, so there is no payment record to judge"}
        return Decision("percentage", False, threshold, None, inputs, [reason])
    approved = pct >= threshold
    inputs["percentage_paid"] = round(pct, 2)
    text = f"Paid {pct:.0f}% of all dues" + ("" if approved else f"; {threshold:.0f}% needed")
    return Decision("percentage", approved, threshold, round(pct, 2), inputs,
                    [{"code": "paid_percentage", "text": text}])


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


# Credit requests share the idempotency table with payments, in a namespace of their own.
KEY_PREFIX = "credit:"


def idempotency(key: str | None, year: int, month: int, amount_cents: int, method: str) -> tuple[str, str] | None:
    """Return (key, fingerprint of the request) for an Idempotency-Key, or None without one."""
    if key is None:
        return None
    fingerprint = request_fingerprint(kind="credit", year=year, month=month, amount_cents=amount_cents,
                                      method=method)
    return key, fingerprint


def previous_decision(session: Session, customer_id: int, key: str, fingerprint: str) -> CreditDecision | None:
    """Return the decision already made for this Idempotency-Key, or None; 409 if the key meant another request."""
    record = session.get(IdempotencyRecord, (customer_id, KEY_PREFIX + key))
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise Conflict("Idempotency-Key was already used for a different request", "Idempotency-Key")
    return session.scalars(select(CreditDecision).where(
        CreditDecision.request_id == record.response["request_id"])).one()


def record_decision(session: Session, customer_id: int, year: int, month: int,
                    amount_cents: int, decide: Callable[[Customer], Decision],
                    once: tuple[str, str] | None = None) -> CreditDecision:
    """Decide under the customer's lock, store the decision, and on approval add the due.

    `decide` sees the locked customer row, so a rule over the running totals
    cannot race a payment. (The ML method scores before taking the lock - a
    network call must not hold it - and passes a decision already made.)
    """
    with write_transaction(session):
        customer = lock_customer(session, customer_id)
        if once is not None:  # (key, fingerprint): a retry gets the first decision, nothing added twice
            previous = previous_decision(session, customer_id, *once)
            if previous is not None:
                return previous
        decision = decide(customer)
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
        )
        session.add(row)
        if once is not None:
            session.add(IdempotencyRecord(customer_id=customer_id, key=KEY_PREFIX + once[0],
                                          request_hash=once[1], response={"request_id": row.request_id}))
    return row


def request_by_percentage(session: Session, customer_id: int, year: int, month: int,
                          amount_cents: int, threshold: float, max_cents: int,
                          today: date | None = None, idempotency_key: str | None = None) -> CreditDecision:
    """Decide a credit request by the percentage method and record it (once per Idempotency-Key)."""
    check_credit_request(year, month, amount_cents, max_cents, today or date.today())
    return record_decision(
        session, customer_id, year, month, amount_cents,
        lambda c: decide_by_percentage(c.total_paid_cents, c.total_due_cents, threshold),
        idempotency(idempotency_key, year, month, amount_cents, "percentage"),
    )
