"""The portal's gunicorn worker model (deploy/portal_gunicorn.py): gevent on PostgreSQL, gthread threads on SQLite.

Under gevent a worker is one thread: if psycopg waited on the server without
yielding to gevent's loop, one request waiting on a lock would stop every other
request of that worker. The test below holds a customer's row lock from outside,
sends a payment that waits on it, and reads through the same single worker
meanwhile.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from deploy.portal_gunicorn import worker_class_for
from portal.db import Database
from testing import servers
from testing.people import add_customer

YEAR = date.today().year - 1


@pytest.mark.parametrize(("url", "worker"), [
    ("postgresql+psycopg://postgres@127.0.0.1/ledger", "gevent"),
    ("postgresql://postgres@127.0.0.1/ledger", "gevent"),
    ("postgres://postgres@127.0.0.1/ledger", "gevent"),
    ("sqlite:////srv/credit.db", "gthread"),
    ("", "gthread"),  # DATABASE_URL unset: the SQLite ledger under VAR_DIR
])
def test_the_worker_class_follows_the_engine(url, worker):
    assert worker_class_for(url) == worker


@pytest.mark.slow
@pytest.mark.postgres
def test_a_payment_waiting_on_a_lock_leaves_the_worker_answering(postgres_url):
    db = Database(postgres_url)
    for cid in (101, 102):
        add_customer(db, cid, {(YEAR, m): 10_000 for m in range(1, 13)}, password="customer123")
    db.dispose()
    url = make_url(postgres_url)
    with servers.portal(postgres_url, workers=1) as server:
        assert "Using worker: gevent" in server.log_tail()
        tokens = {cid: requests.post(f"{server.url}/api/customer/login", json={"id": cid, "password": "customer123"},
                                     timeout=30).json()["token"] for cid in (101, 102)}
        with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, dbname=url.database) as holder, \
                ThreadPoolExecutor(1) as pool:
            holder.execute("SELECT id FROM customers WHERE id = 101 FOR UPDATE")  # held until the rollback below
            paying = pool.submit(requests.post, f"{server.url}/api/customer/payment", timeout=60,
                                 json={"year": YEAR, "month": 1, "amount": "25.00"},
                                 headers={"Authorization": f"Bearer {tokens[101]}"})
            deadline = time.monotonic() + 10
            while not holder.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                                     "WHERE NOT l.granted AND a.datname = current_database()").fetchone()[0]:
                assert time.monotonic() < deadline, "the payment never reached the customer's lock"
                time.sleep(0.05)
            # The worker's one thread has a request waiting on PostgreSQL: another one still gets its answer.
            read = requests.get(f"{server.url}/api/customer/summary/102", timeout=10,
                                headers={"Authorization": f"Bearer {tokens[102]}"})
            assert read.status_code == 200 and read.json()["total_paid"] == "0.00"
            assert not paying.done()
            holder.rollback()
            paid = paying.result()
    assert paid.status_code == 200, paid.text
    assert paid.json()["summary"]["total_paid"] == "25.00"
