"""What a customer sees: summary, the monthly table and payment history (read-only)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.ledger.errors import NotFound
from portal.models import Allocation, Customer, Due, Payment, PaymentReversal


@dataclass
class Summary:
    """A customer's details and running totals."""

    customer: Customer
    total_credit_cents: int
    total_paid_cents: int
    balance_cents: int
    bank_credit_cents: int


@dataclass
class MonthRow:
    """One month of the schedule."""

    year: int
    month: int
    amount_to_pay_cents: int
    amount_paid_cents: int

    @property
    def needtopay_cents(self) -> int:
        """Return what the month still owes."""
        return self.amount_to_pay_cents - self.amount_paid_cents


def get_customer(session: Session, customer_id: int) -> Customer:
    """Return a customer or raise NotFound."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("no such customer", "customer_id")
    return customer


def summary(session: Session, customer_id: int) -> Summary:
    """Return the customer's totals; O(1) thanks to the running totals on the row."""
    c = get_customer(session, customer_id)
    return Summary(c, c.total_due_cents, c.total_paid_cents,
                   c.total_due_cents - c.total_paid_cents, c.bank_credit_cents)


def years(session: Session, customer_id: int) -> list[int]:
    """Return the years present in the customer's schedule, oldest first."""
    return list(session.scalars(
        select(Due.year).where(Due.customer_id == customer_id).distinct().order_by(Due.year)
    ))


def months(session: Session, customer_id: int, year: int | None = None) -> list[MonthRow]:
    """Return the monthly table for one year, or for every year when `year` is None."""
    get_customer(session, customer_id)
    query = select(Due).where(Due.customer_id == customer_id)
    if year is not None:
        query = query.where(Due.year == year)
    rows = session.scalars(query.order_by(Due.year, Due.month)).all()
    if year is not None and not rows:
        raise NotFound(f"no dues in {year}", "year")
    return [MonthRow(d.year, d.month, d.due_cents, d.paid_cents) for d in rows]


def oldest_unpaid(session: Session, customer_id: int) -> tuple[int, int] | None:
    """Return the oldest (year, month) that still owes money, if any."""
    row = session.execute(
        select(Due.year, Due.month).where(Due.customer_id == customer_id, Due.paid_cents < Due.due_cents)
        .order_by(Due.year, Due.month).limit(1)
    ).first()
    return (row.year, row.month) if row else None


@dataclass
class PaymentEntry:
    """A payment in the history, with where it went and whether it was reversed."""

    payment: Payment
    allocations: list[Allocation]
    reversal: PaymentReversal | None


def payment_history(session: Session, customer_id: int, limit: int = 100, offset: int = 0) -> list[PaymentEntry]:
    """Return the customer's payments, newest first, with allocations and reversals."""
    get_customer(session, customer_id)
    payments = session.scalars(
        select(Payment).where(Payment.customer_id == customer_id)
        .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit).offset(offset)
    ).all()
    ids = [p.id for p in payments]
    allocations: dict[int, list[Allocation]] = {i: [] for i in ids}
    reversals: dict[int, PaymentReversal] = {}
    if ids:
        for a in session.scalars(select(Allocation).where(Allocation.payment_id.in_(ids)).order_by(Allocation.id)):
            allocations[a.payment_id].append(a)
        for r in session.scalars(select(PaymentReversal).where(PaymentReversal.payment_id.in_(ids))):
            reversals[r.payment_id] = r
    return [PaymentEntry(p, allocations[p.id], reversals.get(p.id)) for p in payments]
