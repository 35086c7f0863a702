"""Booking allocations: the allocation rows and the months' paid amounts, written (or undone) together.

Payments and bank credit applications both book through here, under the
customer's lock, so ``paid = opening paid + live allocations`` holds for every
month whoever moved the money.
"""
from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from contracts import allocation as rule
from portal.models import Allocation, Customer, Due


def owed_months(session: Session, customer_id: int) -> list[rule.Outstanding]:
    """Return the customer's months that still owe money, oldest first."""
    rows = session.execute(
        select(Due.year, Due.month, Due.due_cents, Due.paid_cents)
        .where(Due.customer_id == customer_id, Due.paid_cents < Due.due_cents)
        .order_by(Due.year, Due.month)
    ).all()
    return [rule.Outstanding(r.year, r.month, r.due_cents - r.paid_cents) for r in rows]


def book(session: Session, customer: Customer, allocations: list[rule.Allocation], *,
         payment_id: int | None = None, bank_credit_entry_id: int | None = None) -> int:
    """Write allocation rows from one source and add them to the months and the running total; return the sum."""
    if not allocations:
        return 0
    years = {a.year for a in allocations}
    paid = {(r.year, r.month): r.paid_cents for r in session.execute(
        select(Due.year, Due.month, Due.paid_cents).where(Due.customer_id == customer.id, Due.year.in_(years)))}
    session.execute(insert(Allocation), [
        {"payment_id": payment_id, "bank_credit_entry_id": bank_credit_entry_id, "customer_id": customer.id,
         "year": a.year, "month": a.month, "amount_cents": a.amount_cents} for a in allocations])
    # Absolute new values are safe: the customer's lock is held until commit.
    session.execute(update(Due), [
        {"customer_id": customer.id, "year": a.year, "month": a.month,
         "paid_cents": paid[(a.year, a.month)] + a.amount_cents} for a in allocations])
    total = sum(a.amount_cents for a in allocations)
    customer.total_paid_cents += total
    return total


def unbook(session: Session, customer: Customer, allocations: list[Allocation]) -> int:
    """Take allocation rows' amounts back out of their months and the running total (the rows stay); return the sum."""
    for a in allocations:
        due = session.get(Due, (a.customer_id, a.year, a.month))
        due.paid_cents -= a.amount_cents
    total = sum(a.amount_cents for a in allocations)
    customer.total_paid_cents -= total
    return total
