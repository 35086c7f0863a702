"""The per-customer lock that serialises writes to one customer's money."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.ledger.errors import NotFound
from portal.models import Customer


def lock_customer(session: Session, customer_id: int) -> Customer:
    """Lock and return a customer row for the rest of the transaction.

    PostgreSQL: ``SELECT ... FOR UPDATE`` makes a second writer wait for this
    one's commit. SQLite has no row locks; there the transaction is already
    ``BEGIN IMMEDIATE`` (see ``portal.db.write_transaction``), a database-wide
    write lock, and SQLAlchemy leaves ``FOR UPDATE`` out.
    """
    return lock_customer_reading(session, customer_id)[0]


def lock_customer_reading(session: Session, customer_id: int, entity=None, onclause=None) -> tuple[Customer, object]:
    """Lock a customer row as `lock_customer` does and read one more row in the same statement.

    `entity` is outer-joined on `onclause` (None when no row matches) and is not
    locked itself: ``FOR UPDATE OF customers``. Return (customer, that row).
    """
    query = select(Customer).where(Customer.id == customer_id)
    if entity is not None:
        query = query.add_columns(entity).outerjoin(entity, onclause)
    row = session.execute(query.with_for_update(of=Customer)).one_or_none()
    if row is None:
        raise NotFound("no such customer", "customer_id")
    return row[0], (row[1] if entity is not None else None)
