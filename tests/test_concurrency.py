"""Concurrent payments: every accepted payment counts exactly once (SQLite and PostgreSQL)."""
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from portal.ledger import payments
from portal.models import Customer, Payment
from testing.audit import check_invariants
from testing.people import add_customer

THREADS = 8
PAYMENTS_PER_THREAD = 25
CUSTOMERS = [101, 102, 103]


def test_eight_threads_paying_the_same_customers(db):
    for cid in CUSTOMERS:
        add_customer(db, cid, {(2024, m): 5_000 for m in range(1, 13)})
    barrier = threading.Barrier(THREADS)
    accepted: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        for i in range(PAYMENTS_PER_THREAD):
            cid = rng.choice(CUSTOMERS)
            amount = rng.randint(1, 9_000)
            key = f"t{n}-{i}"
            with db.sessions() as s:
                first = payments.pay(s, cid, 2024, rng.randint(1, 12), amount, idempotency_key=key)
            with db.sessions() as s:  # a client retry with the same key
                again = payments.pay(s, cid, first.year, first.month, amount, idempotency_key=key)
            assert again.replayed and again.payment_id == first.payment_id
            with lock:
                accepted.append(amount)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))

    assert len(accepted) == THREADS * PAYMENTS_PER_THREAD
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == len(accepted)
        paid, bank = s.execute(select(func.sum(Customer.total_paid_cents), func.sum(Customer.bank_credit_cents))).one()
    assert paid + bank == sum(accepted)
    check_invariants(db)
