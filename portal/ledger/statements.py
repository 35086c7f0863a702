"""What a customer sees: summary, the monthly table, payments and the whole history (read-only)."""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.orm import Session

from portal.db import OneOrMany, core
from portal.ledger.errors import NotFound
from portal.models import Allocation, BankCreditEntry, Customer, Due, Payment, PaymentReversal

_dues = Due.__table__.c


def _paid_by_year_query(customers_match):
    """Build the query of what customers paid towards each year, `customers_match` selecting the customers."""
    return (select(_dues.customer_id, _dues.year, func.sum(_dues.paid_cents)).where(customers_match)
            .group_by(_dues.customer_id, _dues.year).order_by(_dues.customer_id, _dues.year))


# Built once: every summary reads one customer's, a group commit's answers read their customers' at once.
_PAID_BY_YEAR = OneOrMany(_paid_by_year_query, _dues.customer_id)
# Built once: every summary the session cannot answer from a customer it already holds reads it.
_CUSTOMER_ROW = select(Customer.__table__).where(Customer.__table__.c.id == bindparam("id"))


@dataclass
class Summary:
    """A customer's details and running totals."""

    customer: Customer | Row  # the session's loaded customer, else the customer's row (the same attributes)
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
    # A customer the session holds (a payment's locked row) answers without a statement. Any other is
    # read as a plain row: a summary only reads it, and the ORM's load of the same row took a fifth of
    # a summary request's CPU.
    c = session.identity_map.get(session.identity_key(Customer, customer_id))
    if c is None:
        c = core(session).execute(_CUSTOMER_ROW, {"id": customer_id}).first()
    if c is None:
        raise NotFound("no such customer", "customer_id")
    return Summary(c, c.total_due_cents, c.total_paid_cents,
                   c.total_due_cents - c.total_paid_cents, c.bank_credit_cents)


def years(session: Session, customer_id: int) -> list[int]:
    """Return the years present in the customer's schedule, oldest first."""
    return list(session.scalars(
        select(Due.year).where(Due.customer_id == customer_id).distinct().order_by(Due.year)
    ))


def paid_by_year_many(session: Session, customer_ids: list[int]) -> dict[int, dict[int, int]]:
    """Return, per customer, what they paid towards each year of their schedule, oldest year first (one query)."""
    paid: dict[int, dict[int, int]] = {cid: {} for cid in customer_ids}
    rows = _PAID_BY_YEAR.execute(session, customer_ids)
    for cid, year, cents in rows:
        paid[cid][year] = int(cents or 0)
    return paid


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


@dataclass
class HistoryEntry:
    """One line of the whole history: a payment, an imported month, or a movement of bank credit.

    ``kind`` is ``payment``, ``imported`` (what the import says was paid towards
    a month, dated by that month), or a bank credit entry's kind (``applied``,
    ``unapplied``, ``refund``).
    """

    kind: str
    when: datetime
    amount_cents: int
    year: int | None = None
    month: int | None = None
    allocations: list[Allocation] = field(default_factory=list)
    payment: Payment | None = None
    reversal: PaymentReversal | None = None
    entry: BankCreditEntry | None = None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite: naive UTC


def history(session: Session, customer_id: int, limit: int | None = None) -> list[HistoryEntry]:
    """Return the newest `limit` lines (all when None) of payments, imported months and bank credit moves."""
    get_customer(session, customer_id)
    lines = [HistoryEntry("payment", _aware(e.payment.created_at), e.payment.amount_cents, e.payment.year,
                          e.payment.month, e.allocations, e.payment, e.reversal)
             for e in payment_history(session, customer_id, limit=limit or 10**9)]
    entries = session.scalars(select(BankCreditEntry).where(BankCreditEntry.customer_id == customer_id)
                              .order_by(BankCreditEntry.id.desc()).limit(limit)).all()
    allocated: dict[int, list[Allocation]] = {e.id: [] for e in entries}
    if entries:
        for a in session.scalars(select(Allocation).where(Allocation.bank_credit_entry_id.in_(allocated))
                                 .order_by(Allocation.year, Allocation.month)):
            allocated[a.bank_credit_entry_id].append(a)
    lines += [HistoryEntry(e.kind, _aware(e.created_at), e.amount_cents, allocations=allocated[e.id], entry=e)
              for e in entries]
    imported = session.execute(
        select(Due.year, Due.month, Due.opening_paid_cents)
        .where(Due.customer_id == customer_id, Due.opening_paid_cents > 0)
        .order_by(Due.year.desc(), Due.month.desc()).limit(limit)
    ).all()
    # An imported month is dated by its last day: what was paid towards it, by the end of it.
    lines += [HistoryEntry("imported", datetime(r.year, r.month, calendar.monthrange(r.year, r.month)[1],
                                                tzinfo=UTC), r.opening_paid_cents, r.year, r.month)
              for r in imported]
    lines.sort(key=lambda line: line.when, reverse=True)
    return lines[:limit] if limit is not None else lines
