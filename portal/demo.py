"""The demo logins: manager 1 and customer 101, with the passwords the README gives (never in production)."""
from __future__ import annotations

from portal.auth.passwords import hash_password
from portal.config import is_production
from portal.db import Database, write_transaction
from portal.models import Customer, Manager

DEMO_MANAGER_ID, DEMO_MANAGER_PASSWORD = 1, "manager123"
DEMO_CUSTOMER_ID, DEMO_CUSTOMER_PASSWORD = 101, "customer123"


class DemoRefused(RuntimeError):
    """Demo logins and demo passwords are never created in production."""


def refuse_in_production() -> None:
    """Raise DemoRefused when the environment declares production (APP_ENV=production)."""
    if is_production():
        raise DemoRefused("refusing to create demo logins or demo passwords in production (APP_ENV=production)")


def ensure_demo_users(db: Database) -> dict:
    """Make sure the demo manager 1 and customer 101 exist and can log in (idempotent).

    A missing user is created and a NULL password is set to the demo one; a
    password someone has already set is left alone. Refused in production.
    """
    refuse_in_production()
    done = {"manager_created": False, "manager_password_set": False,
            "customer_created": False, "customer_password_set": False}
    with db.sessions() as session, write_transaction(session):
        manager = session.get(Manager, DEMO_MANAGER_ID)
        if manager is None:
            session.add(Manager(id=DEMO_MANAGER_ID, name="Demo Manager", email="manager@example.com",
                                password_hash=hash_password(DEMO_MANAGER_PASSWORD)))
            done["manager_created"] = done["manager_password_set"] = True
        elif manager.password_hash is None:
            manager.password_hash = hash_password(DEMO_MANAGER_PASSWORD)
            done["manager_password_set"] = True
        customer = session.get(Customer, DEMO_CUSTOMER_ID)
        if customer is None:
            session.add(Customer(id=DEMO_CUSTOMER_ID, name="Demo Customer", email="customer@example.com",
                                 password_hash=hash_password(DEMO_CUSTOMER_PASSWORD),
                                 total_due_cents=0, total_paid_cents=0, bank_credit_cents=0))
            done["customer_created"] = done["customer_password_set"] = True
        elif customer.password_hash is None:
            customer.password_hash = hash_password(DEMO_CUSTOMER_PASSWORD)
            done["customer_password_set"] = True
    return done
