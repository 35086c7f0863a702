"""Paying dues, previewing a payment and reversing payments: each one locked transaction, used by every caller."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from contracts import allocation as rule
from portal import audit
from portal.db import core, write_transaction
from portal.ledger import bank_credit, booking, idempotency
from portal.ledger.errors import Conflict, InvalidRequest, NotFound
from portal.ledger.locks import lock_customer
from portal.mail import outbox
from portal.models import Allocation, Due, Payment, PaymentReversal, utcnow
from portal.money import format_cents

_INSERT_PAYMENT = insert(Payment.__table__).returning(Payment.__table__.c.id)


@dataclass
class PaymentResult:
    """Where one payment went."""

    payment_id: int
    customer_id: int
    year: int
    month: int
    amount_cents: int
    allocations: list[rule.Allocation]
    to_bank_credit_cents: int
    replayed: bool = False
    reversed_at: datetime | None = None  # a replay of a payment a manager has reversed since
    summary: Any = None  # what `pay`'s `summarize` read at the end of the transaction


    def to_record(self) -> dict:
        """Return a JSON-able form, as stored for idempotent replays."""
        return {"payment_id": self.payment_id, "customer_id": self.customer_id, "year": self.year,
                "month": self.month, "amount_cents": self.amount_cents,
                "allocations": [{"year": a.year, "month": a.month, "amount_cents": a.amount_cents}
                                for a in self.allocations],
                "to_bank_credit_cents": self.to_bank_credit_cents}

    @classmethod
    def from_record(cls, data: dict, reversal: PaymentReversal | None = None) -> PaymentResult:
        """Rebuild a result stored by `to_record`, marked as a replay (and as reversed, if it was)."""
        allocations = [rule.Allocation(**a) for a in data["allocations"]]
        return cls(**{**data, "allocations": allocations, "replayed": True,
                      "reversed_at": reversal.created_at if reversal else None})


@dataclass
class Plan:
    """Where a payment would go now: the allocation rule over the customer's months, nothing written."""

    year: int
    month: int
    amount_cents: int
    month_owed_cents: int  # what the chosen month still owes (0: already paid)
    allocations: list[rule.Allocation]
    to_bank_credit_cents: int


def preview(session: Session, customer_id: int, year: int, month: int, amount_cents: int) -> Plan:
    """Say where a payment would go now, writing nothing (`pay` runs the same under the customer's lock)."""
    if amount_cents <= 0:
        raise InvalidRequest("amount must be positive", "amount")
    months = booking.owed_months(session, customer_id, also=(year, month))  # one read: the chosen month too
    chosen = next((m for m in months if (m.year, m.month) == (year, month)), None)
    if chosen is None:
        known_year = session.scalar(select(Due.year).where(Due.customer_id == customer_id, Due.year == year)
                                    .limit(1))
        raise InvalidRequest(f"{year}-{month:02d} is not in the customer's schedule",
                             "year" if known_year is None else "month")
    owed_now = chosen.owed_cents
    # The chosen month, then every month that still owes: the rule visits them in its order.
    months = [chosen, *(m for m in months if m is not chosen and m.owed_cents > 0)]
    allocations, to_bank = rule.allocate(amount_cents, (year, month), months)
    return Plan(year, month, amount_cents, owed_now, allocations, to_bank)


def pay(session: Session, customer_id: int, year: int, month: int, amount_cents: int,
        idempotency_key: str | None = None, source: str = "api", max_cents: int | None = None,
        summarize: Callable[[Session, int], Any] | None = None) -> PaymentResult:
    """Record a payment and allocate it by the allocation rule, exactly once per key.

    `summarize(session, customer_id)`, if given, runs last in the same transaction
    (a replay's too) and its value becomes ``result.summary``: an answer built from
    what the transaction holds, with no second transaction to read it again.
    """
    if amount_cents <= 0:
        raise InvalidRequest("amount must be positive", "amount")
    if max_cents is not None and amount_cents > max_cents:
        raise InvalidRequest(f"amount must be at most {format_cents(max_cents)}", "amount")
    request_hash = idempotency.fingerprint(year=year, month=month, amount_cents=amount_cents)
    with write_transaction(session):
        customer = lock_customer(session, customer_id)
        if idempotency_key is not None:
            # A statement of its own, after the lock: one joined to the locking SELECT would keep the
            # snapshot it took before waiting (PostgreSQL rechecks only the locked row) and miss the
            # answer a racing twin with the same key committed meanwhile.
            previous = idempotency.first_answer(session, "payment", customer_id, idempotency_key, request_hash)
            if previous is not None:  # the first answer, and whether the payment was reversed since
                reversal = session.scalars(select(PaymentReversal).where(
                    PaymentReversal.payment_id == previous["payment_id"])).one_or_none()
                replay = PaymentResult.from_record(previous, reversal)
                replay.summary = summarize(session, customer_id) if summarize else None
                return replay

        where = preview(session, customer_id, year, month, amount_cents)
        allocations, to_bank = where.allocations, where.to_bank_credit_cents
        payment_id = core(session).execute(_INSERT_PAYMENT, {
            "customer_id": customer_id, "year": year, "month": month, "amount_cents": amount_cents,
            "to_bank_credit_cents": to_bank, "source": source, "idempotency_key": idempotency_key,
            "created_at": utcnow()}).scalar_one()
        booking.book(session, customer, allocations, payment_id=payment_id)
        if to_bank:
            booking.add_to_totals(session, customer, bank_credit_cents=to_bank)

        result = PaymentResult(payment_id, customer_id, year, month, amount_cents, allocations, to_bank)
        outbox.enqueue(session, customer, "payment_received", outbox.payment_context(result, customer))
        if idempotency_key is not None:
            idempotency.remember(session, "payment", customer_id, idempotency_key, request_hash, result.to_record())
        if summarize is not None:
            session.flush()  # the summary reads the months and totals just written
            result.summary = summarize(session, customer_id)
    return result


def reverse_payment(session: Session, payment_id: int, manager_id: int, reason: str) -> PaymentReversal:
    """Undo a payment's allocations and bank credit with a reversal row (never an edit).

    The months it paid are owed again and its bank credit is taken away. If that
    bank credit had already paid dues, those applications are undone too, newest
    first (``bank_credit.take_back``). Bank credit the customer still holds then
    settles what is owed, oldest first, so nothing is owed while bank credit remains.
    """
    if not reason or not reason.strip():
        raise InvalidRequest("a reason is required", "reason")
    with write_transaction(session):
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise NotFound("no such payment", "payment_id")
        customer = lock_customer(session, payment.customer_id)
        already = session.scalars(
            select(PaymentReversal).where(PaymentReversal.payment_id == payment_id)
        ).one_or_none()
        if already is not None:
            raise Conflict("payment is already reversed", "payment_id")
        reversal = PaymentReversal(payment_id=payment_id, manager_id=manager_id,
                                   reason=reason.strip()[:500], created_at=utcnow())
        session.add(reversal)
        session.flush()
        booking.unbook(session, customer, list(session.scalars(
            select(Allocation).where(Allocation.payment_id == payment_id))))
        bank_credit.take_back(session, customer, payment.to_bank_credit_cents, reversal.id)
        bank_credit.settle(session, customer, payment_reversal_id=reversal.id)
        audit.record(session, manager_id, "payment.reverse", "payment", payment_id, new={"reason": reversal.reason})
    return reversal
