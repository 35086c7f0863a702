"""What one payment costs the database: its statements and round trips, counted in-process.

A portal app (``create_app``) on a throwaway ledger pays a storm customer
through Flask's test client, exactly as ``POST /api/customer/payment`` runs
under gunicorn (bearer token, Idempotency-Key, the answer with its summary).
SQLAlchemy's events count what reaches the database:

* statements: every ``cursor.execute`` (SELECT, INSERT, UPDATE; an executemany counts once);
* round trips: statements plus what the driver sends around them: ``BEGIN``
  (psycopg sends it before a transaction's first statement; SQLite's is a
  statement already), ``COMMIT``, ``ROLLBACK`` and the pool's ping of a
  connection it hands out (``portal.db`` pings only one that has been idle a while).

``batch_cpu`` measures what the group commit divides: this process's CPU per
payment when the API's batch writer (``write_payments``: the callers' logins,
then ``pay_many`` with every answer's summary) writes 1, 8 or 16 payments of
different customers together, as a busy portal process does, the median of many
batches. No HTTP and no other process in the figure: it moves with the code,
and far less than payments/s over HTTP with the machine's load.

``python -m bench.payment_path [--db postgres] [--payments 200] [--show]``
prints them for one payment (``--show`` lists the statements), the mean
in-process time per payment and the CPU per payment by batch size;
``bench.bench_ledger`` records them next to the payments/s figure.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.storm import create_customers  # noqa: E402
from bench.storm_client import STORM_PASSWORD, Schedule, StormConfig, plan_schedule  # noqa: E402
from portal import create_app  # noqa: E402
from portal.auth.sessions import token_claim  # noqa: E402
from portal.db import get_db  # noqa: E402
from portal.ledger.payments import Order  # noqa: E402
from testing.databases import PG_ADMIN_URL, throwaway_database  # noqa: E402
from testing.servers import PORTAL_SECRET_KEY  # noqa: E402

BEGIN, COMMIT, ROLLBACK, PING = "-- begin", "-- commit", "-- rollback", "-- ping (a pooled connection checked)"


class Counter:
    """Counts statements and round trips on an engine; `log` lists them in order."""

    def __init__(self, engine):
        self.postgres = engine.dialect.name == "postgresql"
        self.log: list[str] = []
        event.listen(engine, "before_cursor_execute", self._statement)
        for name, marker in (("begin", BEGIN), ("commit", COMMIT), ("rollback", ROLLBACK)):
            event.listen(engine, name, lambda _conn, marker=marker: self.log.append(marker))
        # The pool's pings go through the dialect's do_ping, below SQLAlchemy's statement events: wrapped here.
        ping = engine.dialect.do_ping
        engine.dialect.do_ping = lambda dbapi_conn: self.log.append(PING) or ping(dbapi_conn)

    def _statement(self, _conn, _cursor, statement, _params, _context, _many):
        self.log.append(" ".join(statement.split())[:160])

    @property
    def statements(self) -> list[str]:
        """The SQL the code ran: every statement but transaction control (SQLite's explicit BEGIN)."""
        return [s for s in self.log if not s.startswith(("--", "BEGIN"))]

    def figures(self) -> dict:
        """Return the counts of what was logged since `log` was last cleared."""
        # SQLite: BEGIN is a statement of the log's own and there is no server to ping.
        control = (BEGIN, PING) if self.postgres else ("BEGIN",)
        trips = len(self.statements) + sum(1 for s in self.log if s.startswith(control) or s in (COMMIT, ROLLBACK))
        return {"statements": len(self.statements), "round_trips": trips}


@contextmanager
def storm_app(kind: str, prefix: str, schedule: Schedule, admin_url: str) -> Iterator[tuple[Flask, dict[int, str]]]:
    """Yield a portal app on a throwaway ledger holding the schedule's customers, and each one's bearer token."""
    with throwaway_database(kind, prefix, migrated=True, admin_url=admin_url) as url:
        create_customers(url, schedule)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": PORTAL_SECRET_KEY, "RATELIMIT_ENABLED": False})
        client = app.test_client()
        try:
            yield app, {customer: client.post("/api/customer/login",
                                              json={"id": customer, "password": STORM_PASSWORD}).json["token"]
                        for customer in schedule.customer_ids}
        finally:
            app.extensions["ledger_db"].dispose()  # the pool's connections closed before the ledger is dropped


def measure(kind: str, payments: int = 200, admin_url: str = PG_ADMIN_URL) -> dict:
    """Pay storm customers `payments` times in-process; return statements and round trips per payment, and ms."""
    cfg = StormConfig(clients=1, payments=payments + 2, customers=10, dup_every=0, race_every=0, seed=7,
                      first_customer_id=700_001)
    schedule = plan_schedule(cfg)
    with storm_app(kind, "payment-path", schedule, admin_url) as (app, tokens):
        client = app.test_client()
        # Payments go round the customers, as in a storm.
        headers = {customer: {"Authorization": f"Bearer {token}"} for customer, token in tokens.items()}
        with app.app_context():
            counter = Counter(get_db().engine)
        rng = random.Random(1)
        periods = schedule.periods()

        def pay(n: int) -> None:
            year, month = rng.choice(periods)
            cents = rng.randint(1, cfg.max_amount_cents)
            body = {"year": year, "month": month, "amount": f"{cents // 100}.{cents % 100:02d}"}
            customer = schedule.customer_ids[n % len(schedule.customer_ids)]
            answer = client.post("/api/customer/payment", json=body,
                                 headers={**headers[customer], "Idempotency-Key": f"k{n}"})
            if answer.status_code != 200:
                raise RuntimeError(f"payment answered {answer.status_code}: {answer.text[:300]}")

        pay(0)  # warm up (first-use imports and caches)
        counter.log.clear()
        pay(1)
        one = {**counter.figures(), "log": list(counter.log)}
        counter.log.clear()
        started, cpu_started = time.perf_counter(), time.process_time()
        for n in range(2, payments + 2):
            pay(n)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        mean = counter.figures()
    return {"database": kind, "payments": payments, "ms_per_payment": round(1000 * seconds / payments, 3),
            "cpu_ms_per_payment": round(1000 * cpu_seconds / payments, 3),
            "statements_per_payment": round(mean["statements"] / payments, 2),
            "round_trips_per_payment": round(mean["round_trips"] / payments, 2), "one_payment": one}


def batch_cpu(kind: str, sizes: tuple[int, ...] = (1, 8, 16), batches: int = 60,
              admin_url: str = PG_ADMIN_URL) -> dict[int, float]:
    """Return this process's CPU ms per payment when the API's batch writer writes `size` payments together.

    Each batch pays `size` different storm customers (bearer logins, Idempotency-Keys, random
    months and amounts, as wrk pays them); the figure is the median batch's CPU over its size.
    """
    customers = 2 * max(sizes)
    cfg = StormConfig(clients=1, payments=sum(sizes) * (batches + 10), customers=customers, dup_every=0,
                      race_every=0, seed=7, first_customer_id=750_001)
    schedule = plan_schedule(cfg)
    with storm_app(kind, "payment-batches", schedule, admin_url) as (app, tokens):
        write = app.extensions["payment_batches"].write_batch  # write_payments: what a batch's writer runs
        rng = random.Random(3)
        periods = schedule.periods()
        figures, key = {}, 0
        with app.app_context():
            claims = {customer: token_claim(token) for customer, token in tokens.items()}
            for size in sizes:
                spent = []
                for n in range(batches + 10):  # the first 10: warm-up (caches, prepared statements)
                    items = []
                    for customer in rng.sample(schedule.customer_ids, size):
                        key += 1
                        year, month = rng.choice(periods)
                        items.append((claims[customer], Order(customer, year, month,
                                                              rng.randint(1, cfg.max_amount_cents), f"b{key}")))
                    session = get_db().sessions()
                    try:
                        started = time.process_time()
                        outcomes = write(session, items)
                        cpu = time.process_time() - started
                    finally:
                        session.close()
                    refused = [o for o in outcomes if isinstance(o, Exception)]
                    if refused:
                        raise RuntimeError(f"a batch refused {len(refused)} payments: {refused[0]!r}")
                    if n >= 10:
                        spent.append(cpu)
                figures[size] = round(1000 * statistics.median(spent) / size, 3)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print statements, round trips and in-process time per payment."""
    parser = argparse.ArgumentParser(prog="python -m bench.payment_path", description=main.__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--show", action="store_true", help="list one payment's statements")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)
    for kind in (["postgres", "sqlite"] if args.db == "both" else [args.db]):
        r = measure(kind, args.payments, args.pg_admin_url)
        print(f"{kind}: {r['statements_per_payment']} statements, {r['round_trips_per_payment']} round trips, "
              f"{r['ms_per_payment']} ms per payment in-process, {r['cpu_ms_per_payment']} ms of it this process's CPU "
              f"({r['payments']} payments)")
        if args.show:
            print("\n".join(f"    {line}" for line in r["one_payment"]["log"]))
        per_size = batch_cpu(kind, admin_url=args.pg_admin_url)
        print(f"{kind}: CPU ms per payment written in batches of " + ", ".join(
            f"{size}: {ms}" for size, ms in per_size.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
