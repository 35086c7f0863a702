"""Booking allocations: the allocation rows and the months' paid amounts, written (or undone) together.

Payments and bank credit applications both book through here, under the
customer's lock, so ``paid = opening paid + live allocations`` holds for every
month whoever moved the money. The statements are built once and run as Core
statements (``portal.db.core``): this is every payment's path.
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from contracts import allocation as rule
from portal.db import core
from portal.models import Allocation, Customer, Due

_dues, _customers = Due.__table__.c, Customer.__table__.c
_MONTHS = (select(_dues.year, _dues.month, _dues.due_cents, _dues.paid_cents)
           .where(_dues.customer_id == bindparam("c")).order_by(_dues.year, _dues.month))
_OWED = _dues.paid_cents < _dues.due_cents
_OWED_MONTHS = _MONTHS.where(_OWED)
_OWED_MONTHS_AND_ONE = _MONTHS.where(or_(_OWED, and_(_dues.year == bindparam("y"), _dues.month == bindparam("m"))))
_INSERT_ALLOCATIONS = insert(Allocation.__table__)
# Adds to a month's paid amount in the statement itself: no read of the months first.
_ADD_PAID = (update(Due.__table__)
             .where(_dues.customer_id == bindparam("c"), _dues.year == bindparam("y"), _dues.month == bindparam("m"))
             .values(paid_cents=_dues.paid_cents + bindparam("amount")))
_ADD_TO_TOTALS = (update(Customer.__table__).where(_customers.id == bindparam("c"))
                  .values(total_paid_cents=_customers.total_paid_cents + bindparam("paid"),
                          bank_credit_cents=_customers.bank_credit_cents + bindparam("bank")))


def owed_months(session: Session, customer_id: int, also: tuple[int, int] | None = None) -> list[rule.Outstanding]:
    """Return the customer's months that still owe money, oldest first (and the month `also`, owed or not)."""
    if also is None:
        rows = core(session).execute(_OWED_MONTHS, {"c": customer_id})
    else:
        rows = core(session).execute(_OWED_MONTHS_AND_ONE, {"c": customer_id, "y": also[0], "m": also[1]})
    return [rule.Outstanding(year, month, due - paid) for year, month, due, paid in rows]


def add_to_totals(session: Session, customer: Customer, paid_cents: int = 0, bank_credit_cents: int = 0) -> None:
    """Add to a locked customer's running totals in one statement; the loaded row reads the new values."""
    core(session).execute(_ADD_TO_TOTALS, {"c": customer.id, "paid": paid_cents, "bank": bank_credit_cents})
    # The row is locked and flushed (core), so the loaded values are the stored ones: add there too,
    # as committed state, so that the ORM neither writes them again nor reads them back.
    set_committed_value(customer, "total_paid_cents", customer.total_paid_cents + paid_cents)
    set_committed_value(customer, "bank_credit_cents", customer.bank_credit_cents + bank_credit_cents)


def book(session: Session, customer: Customer, allocations: list[rule.Allocation], *,
         payment_id: int | None = None, bank_credit_entry_id: int | None = None) -> int:
    """Write allocation rows from one source and add them to the months and the running total; return the sum."""
    if not allocations:
        return 0
    connection = core(session)  # the months' pending changes reach the database before it adds to them
    connection.execute(_INSERT_ALLOCATIONS, [
        {"payment_id": payment_id, "bank_credit_entry_id": bank_credit_entry_id, "customer_id": customer.id,
         "year": a.year, "month": a.month, "amount_cents": a.amount_cents} for a in allocations])
    connection.execute(_ADD_PAID, [{"c": customer.id, "y": a.year, "m": a.month, "amount": a.amount_cents}
                                   for a in allocations])
    for a in allocations:  # a month loaded in this session reads its new paid amount from the database
        loaded = session.identity_map.get(session.identity_key(Due, (customer.id, a.year, a.month)))
        if loaded is not None:
            session.expire(loaded, ["paid_cents"])
    total = sum(a.amount_cents for a in allocations)
    add_to_totals(session, customer, paid_cents=total)
    return total


def unbook(session: Session, customer: Customer, allocations: list[Allocation]) -> int:
    """Take allocation rows' amounts back out of their months and the running total (the rows stay); return the sum."""
    for a in allocations:
        due = session.get(Due, (a.customer_id, a.year, a.month))
        due.paid_cents -= a.amount_cents
    total = sum(a.amount_cents for a in allocations)
    customer.total_paid_cents -= total
    return total
