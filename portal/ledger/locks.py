"""The per-customer lock that serialises writes to one customer's money."""
from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.ledger.errors import NotFound
from portal.models import Customer

# Built once: every write's first. Many customers are locked in id order, so two writers that lock
# overlapping sets wait for each other instead of deadlocking.
_LOCK = (select(Customer).where(Customer.id.in_(bindparam("ids", expanding=True))).order_by(Customer.id)
         .with_for_update())


def lock_customer(session: Session, customer_id: int) -> Customer:
    """Lock and return a customer row for the rest of the transaction.

    PostgreSQL: ``SELECT ... FOR UPDATE`` makes a second writer wait for this
    one's commit. SQLite has no row locks; there the transaction is already
    ``BEGIN IMMEDIATE`` (see ``portal.db.write_transaction``), a database-wide
    write lock, and SQLAlchemy leaves ``FOR UPDATE`` out.
    """
    customer = lock_customers(session, [customer_id]).get(customer_id)
    if customer is None:
        raise NotFound("no such customer", "customer_id")
    return customer


def lock_customers(session: Session, customer_ids: list[int]) -> dict[int, Customer]:
    """Lock and return the customers that exist among `customer_ids`, in one statement (see `lock_customer`)."""
    return {c.id: c for c in session.scalars(_LOCK, {"ids": sorted(set(customer_ids))})}
