"""Accounts: creating customers and resetting their passwords (manager actions)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.auth.passwords import hash_password
from portal.db import write_transaction
from portal.ledger.errors import Conflict, NotFound
from portal.models import MAX_ID, Customer


def create_customer(session: Session, name: str, password: str, customer_id: int | None = None,
                    email: str | None = None, age: int | None = None, phone: str | None = None) -> Customer:
    """Create a customer with no dues yet; the id is the next free one unless given."""
    password_hash = hash_password(password)  # slow on purpose: do it before taking the lock
    with write_transaction(session):
        if customer_id is None:
            customer_id = (session.scalar(select(func.max(Customer.id))) or 100) + 1
            if customer_id > MAX_ID:
                raise Conflict("no id is free after the largest one; give the new customer an id", "id")
        elif session.get(Customer, customer_id) is not None:
            raise Conflict(f"customer {customer_id} already exists", "id")
        customer = Customer(id=customer_id, name=name.strip(), email=email, age=age, phone=phone,
                            password_hash=password_hash, total_due_cents=0, total_paid_cents=0,
                            bank_credit_cents=0)
        session.add(customer)
    return customer


def reset_password(session: Session, customer_id: int, password: str) -> None:
    """Set a customer's new password."""
    password_hash = hash_password(password)
    with write_transaction(session):
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound("no such customer", "customer_id")
        customer.password_hash = password_hash
