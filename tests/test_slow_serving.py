"""A hanging decision service cannot stall the portal: threads wait, the circuit opens, other pages answer.

The portal runs as `make run` serves it (gunicorn, 2 workers: 8 threads each on
SQLite, gevent on PostgreSQL, deploy/portal_gunicorn.py), on both engines; the
decision service is a stand-in that never answers in time. No timing is
asserted beyond generous client timeouts: the p99 figure is in bench/bench_breaker.py.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import requests

from portal.db import Database
from testing import servers
from testing.people import add_customer
from testing.stubs import hanging_service

pytestmark = pytest.mark.slow
YEARS = range(date.today().year - 5, date.today().year)


@pytest.fixture
def hanging():
    with hanging_service() as server:
        yield server


@pytest.fixture
def portal(db_url, hanging):
    db = Database(db_url)
    for cid in range(101, 109):
        add_customer(db, cid, {(y, m): 10_000 for y in YEARS for m in range(1, 13)}, password="customer123")
    db.dispose()
    env = {"SERVING_URL": f"http://127.0.0.1:{hanging.server_port}", "SERVING_TIMEOUT": "2",
           "SERVING_BREAKER_FAILURES": "2", "SERVING_BREAKER_SECONDS": "300"}
    with servers.portal(db_url, env, workers=2, threads=8, ready_path="/") as server:
        yield server.url


def ml_request(url: str, token: str) -> requests.Response:
    body = {"year": date.today().year + 1, "month": 1, "amount": "10.00", "method": "ml"}
    return requests.post(f"{url}/api/customer/credit-request", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def test_a_hanging_service_opens_the_circuit_and_stalls_nothing(portal, hanging):
    tokens = [requests.post(f"{portal}/api/customer/login", json={"id": cid, "password": "customer123"},
                            timeout=30).json()["token"] for cid in range(101, 109)]
    with ThreadPoolExecutor(8) as pool:
        waiting = [pool.submit(ml_request, portal, t) for t in tokens]
        time.sleep(0.5)  # the eight requests now wait on the decision service
        for path in ("/", "/api/openapi.json", "/customer/login"):
            assert requests.get(portal + path, timeout=5).status_code == 200  # answered while they wait
        first = [f.result() for f in waiting]
    assert all(r.status_code == 503 and "ML method unavailable" in r.json()["error"] for r in first)
    assert hanging.calls <= 8
    # Each worker opens its circuit after two failures (a worker that got none of the eight fails twice more).
    assert all(ml_request(portal, t).status_code == 503 for t in tokens)
    asked = hanging.calls
    # Both circuits are open now: eight more requests are answered at once and none reaches serving.
    again = [ml_request(portal, t) for t in tokens]
    assert all(r.status_code == 503 and "failing" in r.json()["error"] for r in again)
    assert hanging.calls == asked
    percentage = requests.post(f"{portal}/api/customer/credit-request", timeout=30,
                               headers={"Authorization": f"Bearer {tokens[0]}"},
                               json={"year": date.today().year + 1, "month": 1, "amount": "10.00",
                                     "method": "percentage"})
    assert percentage.status_code == 200  # the percentage method does not need the decision service
