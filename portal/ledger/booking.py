"""Booking allocations: the allocation rows and the months' paid amounts, written (or undone) together.

Payments and bank credit applications both book through here, under the
customer's lock, so ``paid = opening paid + live allocations`` holds for every
month whoever moved the money.
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from contracts import allocation as rule
from portal.models import Allocation, Customer, Due


def owed_months(session: Session, customer_id: int, also: tuple[int, int] | None = None) -> list[rule.Outstanding]:
    """Return the customer's months that still owe money, oldest first (and the month `also`, owed or not)."""
    owed = Due.paid_cents < Due.due_cents
    if also is not None:
        owed = or_(owed, and_(Due.year == also[0], Due.month == also[1]))
    rows = session.execute(
        select(Due.year, Due.month, Due.due_cents, Due.paid_cents)
        .where(Due.customer_id == customer_id, owed)
        .order_by(Due.year, Due.month)
    ).all()
    return [rule.Outstanding(r.year, r.month, r.due_cents - r.paid_cents) for r in rows]


# Adds to a month's paid amount in the statement itself: no read of the months first.
_ADD_PAID = (update(Due.__table__)
             .where(Due.customer_id == bindparam("c"), Due.year == bindparam("y"), Due.month == bindparam("m"))
             .values(paid_cents=Due.paid_cents + bindparam("amount")))


def book(session: Session, customer: Customer, allocations: list[rule.Allocation], *,
         payment_id: int | None = None, bank_credit_entry_id: int | None = None) -> int:
    """Write allocation rows from one source and add them to the months and the running total; return the sum."""
    if not allocations:
        return 0
    session.flush()  # the months' pending changes reach the database before it adds to them
    session.execute(insert(Allocation), [
        {"payment_id": payment_id, "bank_credit_entry_id": bank_credit_entry_id, "customer_id": customer.id,
         "year": a.year, "month": a.month, "amount_cents": a.amount_cents} for a in allocations])
    session.execute(_ADD_PAID, [{"c": customer.id, "y": a.year, "m": a.month, "amount": a.amount_cents}
                                for a in allocations])
    for a in allocations:  # a month loaded in this session reads its new paid amount from the database
        loaded = session.identity_map.get(session.identity_key(Due, (customer.id, a.year, a.month)))
        if loaded is not None:
            session.expire(loaded, ["paid_cents"])
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
