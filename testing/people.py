"""Customers and managers written straight through the ORM, for tests and benchmarks."""
from __future__ import annotations

from portal.auth.passwords import hash_password
from portal.models import Customer, Due, Manager

_HASHES: dict[str, str] = {}


def _hash(password: str) -> str:
    # argon2 is slow on purpose; hashing each test password once keeps tests fast.
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


def add_customer(db, customer_id: int, dues: dict[tuple[int, int], int] | None = None,
                 paid: dict[tuple[int, int], int] | None = None, password: str = "secret-pw",
                 name: str | None = None, bank_credit: int = 0, age: int = 35) -> None:
    """Create a customer whose schedule is `dues` {(year, month): cents}, with opening `paid` and `bank_credit`."""
    dues = dues if dues is not None else {(2024, m): 10_000 for m in range(1, 13)}
    paid = paid or {}
    with db.sessions.begin() as s:
        s.add(Customer(id=customer_id, name=name or f"Customer {customer_id}", email=f"c{customer_id}@example.com",
                       age=age, phone="555-0100", password_hash=_hash(password),
                       total_due_cents=sum(dues.values()), total_paid_cents=sum(paid.values()),
                       bank_credit_cents=bank_credit, opening_bank_credit_cents=bank_credit))
        s.flush()
        for (year, month), cents in sorted(dues.items()):
            p = paid.get((year, month), 0)
            s.add(Due(customer_id=customer_id, year=year, month=month, due_cents=cents,
                      paid_cents=p, opening_paid_cents=p))


def add_manager(db, manager_id: int = 1, password: str = "manager-pw") -> None:
    """Create a manager."""
    with db.sessions.begin() as s:
        s.add(Manager(id=manager_id, name=f"Manager {manager_id}", email="m@example.com",
                      password_hash=_hash(password)))
