"""The manager's view over all customers: search, sort, page, overdue months."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.orm import Session

from portal.inputs import is_digits
from portal.ledger.percentage import PAID_PCT_SQL
from portal.models import CreditDecision, Customer, Due

_BALANCE = Customer.total_due_cents - Customer.total_paid_cents
SORTS = {"id": Customer.id, "name": Customer.name, "balance": _BALANCE,
         "paid_pct": PAID_PCT_SQL, "bank_credit": Customer.bank_credit_cents}


@dataclass
class Page:
    """One page of rows and the total count."""

    total: int
    page: int
    per_page: int
    rows: list


def overdue_months(session: Session, customer_ids: list[int], today: date) -> dict[int, int]:
    """Count, per customer, the months before this one that still owe money."""
    if not customer_ids:
        return {}
    rows = session.execute(
        select(Due.customer_id, func.count())
        .where(Due.customer_id.in_(customer_ids), Due.paid_cents < Due.due_cents,
               tuple_(Due.year, Due.month) < tuple_(today.year, today.month))
        .group_by(Due.customer_id)
    ).all()
    counts = {cid: 0 for cid in customer_ids}
    counts.update({cid: n for cid, n in rows})
    return counts


def portfolio(session: Session, q: str | None, sort: str, descending: bool, page: int,
              per_page: int, today: date | None = None) -> Page:
    """Return customers matching `q` (id or part of the name), sorted and paged, with overdue counts."""
    query = select(Customer)
    if q:
        q = q.strip()
        name_match = Customer.name.ilike(f"%{q.replace('%', '').replace('_', '')}%")
        query = query.where(or_(Customer.id == int(q), name_match) if is_digits(q) else name_match)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    key = SORTS[sort]
    order = [key.desc().nulls_last() if descending else key.asc().nulls_first(), Customer.id.asc()]
    rows = session.scalars(query.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
    overdue = overdue_months(session, [c.id for c in rows], today or date.today())
    return Page(total, page, per_page, [(c, overdue[c.id]) for c in rows])


def decisions(session: Session, page: int, per_page: int, customer_id: int | None = None,
              method: str | None = None) -> Page:
    """Return credit decisions, newest first, optionally for one customer or method."""
    query = select(CreditDecision)
    if customer_id is not None:
        query = query.where(CreditDecision.customer_id == customer_id)
    if method is not None:
        query = query.where(CreditDecision.method == method)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(CreditDecision.created_at.desc(), CreditDecision.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return Page(total, page, per_page, rows)
