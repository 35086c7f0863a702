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

``python -m bench.payment_path [--db postgres] [--payments 200] [--show]``
prints them for one payment (``--show`` lists the statements) and the mean
in-process time per payment; ``bench.bench_ledger`` records them next to the
payments/s figure.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.storm import create_customers  # noqa: E402
from bench.storm_client import STORM_PASSWORD, StormConfig, plan_schedule  # noqa: E402
from portal import create_app  # noqa: E402
from portal.db import get_db  # noqa: E402
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


def measure(kind: str, payments: int = 200, admin_url: str = PG_ADMIN_URL) -> dict:
    """Pay storm customers `payments` times in-process; return statements and round trips per payment, and ms."""
    cfg = StormConfig(clients=1, payments=payments + 2, customers=10, dup_every=0, race_every=0, seed=7,
                      first_customer_id=700_001)
    schedule = plan_schedule(cfg)
    with throwaway_database(kind, "payment-path", migrated=True, admin_url=admin_url) as url:
        create_customers(url, schedule)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": PORTAL_SECRET_KEY, "RATELIMIT_ENABLED": False})
        client = app.test_client()
        headers = {}
        for customer in schedule.customer_ids:  # payments go round the customers, as in a storm
            login = client.post("/api/customer/login", json={"id": customer, "password": STORM_PASSWORD})
            headers[customer] = {"Authorization": f"Bearer {login.json['token']}"}
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
        with app.app_context():
            get_db().dispose()
    return {"database": kind, "payments": payments, "ms_per_payment": round(1000 * seconds / payments, 3),
            "cpu_ms_per_payment": round(1000 * cpu_seconds / payments, 3),
            "statements_per_payment": round(mean["statements"] / payments, 2),
            "round_trips_per_payment": round(mean["round_trips"] / payments, 2), "one_payment": one}


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
