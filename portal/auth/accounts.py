"""Accounts - the manager actions on people: create customers and managers, reset passwords, edit contact
details, deactivate and reactivate. Each is one transaction with its audit row (and its email, if any).

A deactivated account cannot log in (``sessions.authenticate`` answers it like a wrong
password) and its live logins end in the same transaction; its records stay, and
reactivation gives the login back. A manager cannot deactivate themself, and the last
active manager cannot be deactivated: the active managers are locked first (PostgreSQL
``FOR UPDATE``; SQLite's write transaction is database-wide), so two managers deactivating
each other at once cannot leave nobody.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import audit
from portal.auth.passwords import hash_password
from portal.auth.sessions import ROLES, revoke_logins
from portal.db import write_transaction
from portal.ledger.errors import Conflict, NotFound
from portal.mail import outbox
from portal.models import MAX_ID, Customer, Manager

CONTACT_FIELDS = ("name", "email", "phone")


def _next_id(session: Session, model, first: int) -> int:
    next_id = (session.scalar(select(func.max(model.id))) or first) + 1
    if next_id > MAX_ID:
        raise Conflict("no id is free after the largest one; give the new account an id", "id")
    return next_id


def _contact(person) -> dict:
    return {name: getattr(person, name) for name in CONTACT_FIELDS}


def create_customer(session: Session, name: str, password: str, customer_id: int | None = None,
                    email: str | None = None, age: int | None = None, phone: str | None = None, *,
                    by: int) -> Customer:
    """Create a customer with no dues yet; the id is the next free one unless given."""
    password_hash = hash_password(password)  # slow on purpose: do it before taking the lock
    with write_transaction(session):
        if customer_id is None:
            customer_id = _next_id(session, Customer, 100)
        elif session.get(Customer, customer_id) is not None:
            raise Conflict(f"customer {customer_id} already exists", "id")
        customer = Customer(id=customer_id, name=name.strip(), email=email, age=age, phone=phone,
                            password_hash=password_hash, total_due_cents=0, total_paid_cents=0,
                            bank_credit_cents=0, active=True, language="en")
        session.add(customer)
        audit.record(session, by, "customer.create", "customer", customer_id, new={**_contact(customer), "age": age})
    return customer


def create_manager(session: Session, name: str, password: str, manager_id: int | None = None,
                   email: str | None = None, phone: str | None = None, *, by: int) -> Manager:
    """Create a manager account; the id is the next free manager id unless given."""
    password_hash = hash_password(password)
    with write_transaction(session):
        if manager_id is None:
            manager_id = _next_id(session, Manager, 0)
        elif session.get(Manager, manager_id) is not None:
            raise Conflict(f"manager {manager_id} already exists", "id")
        manager = Manager(id=manager_id, name=name.strip(), email=email, phone=phone, password_hash=password_hash,
                          active=True)
        session.add(manager)
        audit.record(session, by, "manager.create", "manager", manager_id, new=_contact(manager))
    return manager


def reset_password(session: Session, customer_id: int, password: str, *, by: int) -> int:
    """Set a customer's new password, end their logins, tell them by email; return how many logins ended."""
    password_hash = hash_password(password)
    with write_transaction(session):
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound("no such customer", "customer_id")
        customer.password_hash = password_hash
        ended = revoke_logins(session, "customer", customer_id)
        audit.record(session, by, "customer.password_reset", "customer", customer_id, new={"logins_ended": ended})
        outbox.enqueue(session, customer, "password_reset")
    return ended


def update_contact(session: Session, customer_id: int, changes: dict, *, by: int) -> dict:
    """Change a customer's name, email or phone; audit the old and new values; return what changed."""
    unknown = set(changes) - set(CONTACT_FIELDS)
    if unknown:
        raise ValueError(f"not contact fields: {sorted(unknown)}")
    with write_transaction(session):
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound("no such customer", "customer_id")
        old = {k: getattr(customer, k) for k, v in changes.items() if getattr(customer, k) != v}
        new = {k: changes[k] for k in old}
        for name, value in new.items():
            setattr(customer, name, value)
        if new:
            audit.record(session, by, "customer.contact", "customer", customer_id, old=old, new=new)
    return new


def set_active(session: Session, role: str, user_id: int, active: bool, *, by: int) -> bool:
    """Deactivate (ending their logins) or reactivate a customer or manager; tell whether anything changed."""
    with write_transaction(session):
        if role == "manager" and not active:
            _check_manager_may_go(session, user_id, by)
        person = session.get(ROLES[role], user_id)
        if person is None:
            raise NotFound(f"no such {role}", "id")
        if person.active == active:
            return False
        person.active = active
        new = {"active": active}
        if not active:
            new["logins_ended"] = revoke_logins(session, role, user_id)
        audit.record(session, by, f"{role}.{'reactivate' if active else 'deactivate'}", role, user_id,
                     old={"active": not active}, new=new)
    return True


def _check_manager_may_go(session: Session, manager_id: int, by: int) -> None:
    """Refuse a manager's own deactivation, the last active manager's, and any by a manager no longer active."""
    if manager_id == by:
        raise Conflict("you cannot deactivate your own account", "id")
    active = set(session.scalars(select(Manager.id).where(Manager.active.is_(True)).with_for_update()).all())
    if manager_id in active and len(active) <= 1:
        raise Conflict("the last active manager cannot be deactivated", "id")
    if by not in active:
        raise Conflict("your account is no longer active", "id")
