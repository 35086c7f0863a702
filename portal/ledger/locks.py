"""The per-customer lock that serialises writes to one customer's money."""
from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.ledger.errors import NotFound
from portal.models import Customer

_LOCK = select(Customer).where(Customer.id == bindparam("id")).with_for_update()  # built once: every write's first


def lock_customer(session: Session, customer_id: int) -> Customer:
    """Lock and return a customer row for the rest of the transaction.

    PostgreSQL: ``SELECT ... FOR UPDATE`` makes a second writer wait for this
    one's commit. SQLite has no row locks; there the transaction is already
    ``BEGIN IMMEDIATE`` (see ``portal.db.write_transaction``), a database-wide
    write lock, and SQLAlchemy leaves ``FOR UPDATE`` out.
    """
    customer = session.scalars(_LOCK, {"id": customer_id}).one_or_none()
    if customer is None:
        raise NotFound("no such customer", "customer_id")
    return customer
