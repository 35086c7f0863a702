"""Booking allocations: the allocation rows and the months' paid amounts, written (or undone) together.

Payments and bank credit applications both book through here, under the
customer's lock, so ``paid = opening paid + live allocations`` holds for every
month whoever moved the money. The statements are built once and run as Core
statements (``portal.db.core``): this is every payment's path.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, or_, select, tuple_, update
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
# Many customers' owed months and the months their payments chose (owed or not), in one read.
_PAYMENT_MONTHS = (select(_dues.customer_id, _dues.year, _dues.month, _dues.due_cents, _dues.paid_cents)
                   .where(_dues.customer_id.in_(bindparam("cs", expanding=True)),
                          or_(_OWED, tuple_(_dues.customer_id, _dues.year, _dues.month)
                              .in_(bindparam("chosen", expanding=True))))
                   .order_by(_dues.customer_id, _dues.year, _dues.month))
_INSERT_ALLOCATIONS = insert(Allocation.__table__)
# Adds to a month's paid amount in the statement itself: no read of the months first.
_ADD_PAID = (update(Due.__table__)
             .where(_dues.customer_id == bindparam("c"), _dues.year == bindparam("y"), _dues.month == bindparam("m"))
             .values(paid_cents=_dues.paid_cents + bindparam("amount")))
_ADD_TO_TOTALS = (update(Customer.__table__).where(_customers.id == bindparam("c"))
                  .values(total_paid_cents=_customers.total_paid_cents + bindparam("paid"),
                          bank_credit_cents=_customers.bank_credit_cents + bindparam("bank")))


def owed_months(session: Session, customer_id: int) -> list[rule.Outstanding]:
    """Return the customer's months that still owe money, oldest first."""
    rows = core(session).execute(_OWED_MONTHS, {"c": customer_id})
    return [rule.Outstanding(year, month, due - paid) for year, month, due, paid in rows]


def payment_months(session: Session, chosen: list[tuple[int, int, int]]) -> dict[int, list[rule.Outstanding]]:
    """Return, per customer, the months still owed and the months chosen (customer, year, month), oldest first."""
    months: dict[int, list[rule.Outstanding]] = {c: [] for c, _, _ in chosen}
    rows = core(session).execute(_PAYMENT_MONTHS, {"cs": list(months), "chosen": list(set(chosen))})
    for customer_id, year, month, due, paid in rows:
        months[customer_id].append(rule.Outstanding(year, month, due - paid))
    return months


@dataclass(frozen=True)
class Entry:
    """One source's allocations to book for a customer (a payment's, with its excess as bank credit)."""

    customer: Customer
    allocations: list[rule.Allocation]
    payment_id: int | None = None
    bank_credit_entry_id: int | None = None
    bank_credit_cents: int = 0  # added to the customer's bank credit with the allocations


def book(session: Session, customer: Customer, allocations: list[rule.Allocation], *,
         payment_id: int | None = None, bank_credit_entry_id: int | None = None) -> int:
    """Write allocation rows from one source and add them to the months and the running total; return the sum."""
    book_many(session, [Entry(customer, allocations, payment_id, bank_credit_entry_id)])
    return sum(a.amount_cents for a in allocations)


def book_many(session: Session, entries: list[Entry]) -> None:
    """Book many sources at once: one insert of their rows, one update per month and per customer, in batches.

    Entries of one customer add up: the months and totals take their sums. The loaded
    customers read their new totals afterwards without a statement.
    """
    rows = [{"payment_id": e.payment_id, "bank_credit_entry_id": e.bank_credit_entry_id,
             "customer_id": e.customer.id, "year": a.year, "month": a.month, "amount_cents": a.amount_cents}
            for e in entries for a in e.allocations]
    months: dict[tuple[int, int, int], int] = defaultdict(int)
    totals: dict[int, list] = {}  # customer id: [customer, paid, bank credit]
    for e in entries:
        for a in e.allocations:
            months[e.customer.id, a.year, a.month] += a.amount_cents
        total = totals.setdefault(e.customer.id, [e.customer, 0, 0])
        total[1] += sum(a.amount_cents for a in e.allocations)
        total[2] += e.bank_credit_cents
    totals = {cid: t for cid, t in totals.items() if t[1] or t[2]}
    if not totals:
        return
    connection = core(session)  # the months' pending changes reach the database before it adds to them
    if rows:
        connection.execute(_INSERT_ALLOCATIONS, rows)
        connection.execute(_ADD_PAID, [{"c": c, "y": y, "m": m, "amount": cents}
                                       for (c, y, m), cents in months.items()])
    for c, y, m in months:  # a month loaded in this session reads its new paid amount from the database
        loaded = session.identity_map.get(session.identity_key(Due, (c, y, m)))
        if loaded is not None:
            session.expire(loaded, ["paid_cents"])
    connection.execute(_ADD_TO_TOTALS, [{"c": cid, "paid": paid, "bank": bank}
                                        for cid, (_, paid, bank) in totals.items()])
    for customer, paid, bank in totals.values():
        # The rows are locked and flushed (core), so the loaded values are the stored ones: add there too,
        # as committed state, so that the ORM neither writes them again nor reads them back.
        set_committed_value(customer, "total_paid_cents", customer.total_paid_cents + paid)
        set_committed_value(customer, "bank_credit_cents", customer.bank_credit_cents + bank)


def unbook(session: Session, customer: Customer, allocations: list[Allocation]) -> int:
    """Take allocation rows' amounts back out of their months and the running total (the rows stay); return the sum."""
    for a in allocations:
        due = session.get(Due, (a.customer_id, a.year, a.month))
        due.paid_cents -= a.amount_cents
    total = sum(a.amount_cents for a in allocations)
    customer.total_paid_cents -= total
    return total
