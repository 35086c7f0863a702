"""Enqueue an email in the caller's transaction: the event and its email are committed together or not at all.

The kinds and the context each one's templates read (amounts in minor units):

* ``payment_received`` - payment_id, year, month, amount_cents, allocations [{year, month,
  amount_cents}], to_bank_credit_cents, balance_cents, bank_credit_cents
* ``credit_approved`` / ``credit_rejected`` - request_id, year, month, amount_cents, method,
  score, threshold, reasons [the decision's reason objects: code, text, ...], and
  decision {approved, score, threshold, amount, credit_limit, exposure, available_credit}: what
  the ``reason`` filter needs to say each reason in the customer's language
* ``password_reset`` - (nothing: the email says a manager set a new password)
* ``bank_credit_refunded`` - amount_cents, bank_credit_cents (what is left), reason
"""
from __future__ import annotations

import uuid
from email.utils import parseaddr

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from portal import audit
from portal.config import mail_from
from portal.db import core, write_transaction
from portal.models import Customer, OutboxMessage, utcnow

_INSERT = insert(OutboxMessage.__table__)
KINDS = ("payment_received", "credit_approved", "credit_rejected", "password_reset", "bank_credit_refunded")


def message_domain() -> str:
    """Return the domain of Message-IDs: the sender address's domain."""
    return parseaddr(mail_from())[1].rpartition("@")[2] or "localhost"


def enqueue(session: Session, customer: Customer, kind: str, context: dict | None = None) -> OutboxMessage | None:
    """Write an email about `kind` to `customer` in the caller's transaction and return it; None without an address.

    One prebuilt insert (every payment writes one); the message returned holds what was
    written, outside the session.
    """
    written = enqueue_many(session, [(customer, kind, context)])
    return OutboxMessage(**written[0]) if written else None


def enqueue_many(session: Session, emails: list[tuple[Customer, str, dict | None]]) -> list[dict]:
    """Write emails (customer, kind, context) in one statement, in the caller's transaction; none without an address.

    Returns the rows written (a payment batch's writer drops them: no ORM object is built for it).
    """
    now = utcnow()
    domain = message_domain()
    rows = []
    for customer, kind, context in emails:
        if kind not in KINDS:
            raise ValueError(f"unknown email kind {kind!r}")
        if customer.email:
            # Random and short: the email package folds a long Message-ID header onto a second line.
            rows.append({"message_id": f"<{uuid.uuid4().hex}@{domain}>", "kind": kind,
                         "customer_id": customer.id, "recipient": customer.email, "recipient_name": customer.name,
                         "language": customer.language or "en", "context": context or {}, "status": "pending",
                         "attempts": 0, "next_attempt_at": now, "created_at": now})
    if rows:
        core(session).execute(_INSERT, rows)
    return rows


def payment_context(payment, balance_cents: int, bank_credit_cents: int) -> dict:
    """Return a payment_received email's context from a payment result and the customer's totals after it."""
    context = payment.to_record()  # the payment and its allocations, as stored for replays
    del context["customer_id"]  # the email goes to that customer already
    return {**context, "balance_cents": balance_cents, "bank_credit_cents": bank_credit_cents}


def decision_context(decision, available_cents: int | None = None) -> dict:
    """Return a credit_approved or credit_rejected email's context from a stored decision and its headroom."""
    return {"request_id": decision.request_id, "year": decision.year, "month": decision.month,
            "amount_cents": decision.amount_cents, "method": decision.method, "score": decision.score,
            "threshold": decision.threshold, "reasons": list(decision.reasons or []),
            "decision": {"approved": decision.approved, "score": decision.score, "threshold": decision.threshold,
                         "amount": decision.amount_cents,
                         "credit_limit": decision.limit_cents, "exposure": decision.exposure_cents,
                         "available_credit": available_cents}}


def refund_context(amount_cents: int, customer: Customer, reason: str | None = None) -> dict:
    """Return a bank_credit_refunded email's context: what was refunded and what bank credit is left."""
    return {"amount_cents": amount_cents, "bank_credit_cents": customer.bank_credit_cents, "reason": reason}


def decision_kind(decision) -> str:
    """Return the email kind of a credit decision."""
    return "credit_approved" if decision.approved else "credit_rejected"


def status_counts(session: Session) -> dict[str, int]:
    """Return how many messages are pending, sent and failed."""
    rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    return {"pending": 0, "sent": 0, "failed": 0, **{status: count for status, count in rows}}


def failed(session: Session, page: int = 1, per_page: int = 20) -> tuple[list[OutboxMessage], int]:
    """Return a page of the messages the sender gave up on (newest first) and how many there are."""
    where = OutboxMessage.status == "failed"
    total = session.scalar(select(func.count()).select_from(OutboxMessage).where(where)) or 0
    rows = session.scalars(select(OutboxMessage).where(where).order_by(OutboxMessage.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def retry(session: Session, message_id: int, *, by: int) -> bool:
    """Put a failed message back in the queue with fresh attempts (a manager's action, audited); False if none."""
    with write_transaction(session):
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.status != "failed":
            return False
        audit.record(session, by, "mail.retry", "mail", message_id,
                     old={"attempts": message.attempts, "last_error": message.last_error}, new={"status": "pending"})
        message.status, message.attempts, message.next_attempt_at = "pending", 0, utcnow()
    return True
