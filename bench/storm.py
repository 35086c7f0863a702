"""Payment storm: many HTTP clients paying a few customers at once, then the ledger audited to the cent.

Design overview
---------------
* A real portal runs under gunicorn with several worker processes on a free
  loopback port (``testing.servers.portal``); nothing here talks to anything
  but 127.0.0.1.
* ``N`` client threads (``bench.storm_client``), each with its own
  ``requests`` session, send ``P`` payments each to a small set of customers
  (random customer, month and amount), every one with an ``Idempotency-Key``;
  some are sent again after their answer, some twice at once, and every
  failed request is retried with the same key.
* Afterwards ``testing.audit.audit_storm`` reads the ledger and checks, to the cent:

  - every accepted key is exactly one payment row, with the amount and
    customer sent, and the ``payment_id`` the client was told;
  - no payment row exists that the clients did not send;
  - every payment adds up: ``sum(allocations) + to_bank_credit == amount``
    (nothing half-written);
  - sum of allocations + bank credit == sum of accepted payments, per customer;
  - no month is paid beyond its due, and each month's ``paid`` is its opening
    balance plus its allocations; each customer's running totals match;
  - the allocations equal a serial replay of the allocation rule over each
    customer's payments in id order (the per-customer lock held: no two
    payments saw the same "still owed");
  - every replay returned the first answer, and at most one answer per key
    says it was not a replay.

Here: ``run_storm`` (one storm, end to end), ``prepare`` and ``finish`` (its
start and its audit, shared with ``bench.crash``) and the command line. Run
``python -m bench.storm --help``; the full size is 16 clients x 500 payments
on 10 customers, on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/storm.py` as well as `python -m bench.storm`
    sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter  # noqa: E402
from bench.results import machine, percentile, write_json  # noqa: E402
from bench.storm_client import (  # noqa: E402
    STORM_PASSWORD,
    Outcome,
    Schedule,
    Storm,
    StormConfig,
    login_all,
    plan_schedule,
)
from portal.auth.passwords import hash_password  # noqa: E402
from portal.db import Database  # noqa: E402
from portal.models import Customer, Due  # noqa: E402
from testing.audit import audit_storm  # noqa: E402
from testing.databases import PG_ADMIN_URL, throwaway_database  # noqa: E402
from testing.servers import Gunicorn, portal  # noqa: E402


def create_customers(database_url: str, schedule: Schedule, password: str = STORM_PASSWORD) -> None:
    """Insert the storm's customers and their dues (nothing paid yet)."""
    db = Database(database_url)
    try:
        hashed = hash_password(password)
        with db.sessions.begin() as s:
            for cid in schedule.customer_ids:
                s.add(Customer(id=cid, name=f"Storm {cid}", email=f"storm{cid}@example.com", age=40,
                               password_hash=hashed, total_due_cents=schedule.due_cents * schedule.months,
                               total_paid_cents=0, bank_credit_cents=0))
            s.flush()
            for cid in schedule.customer_ids:
                for year, month in schedule.periods():
                    s.add(Due(customer_id=cid, year=year, month=month, due_cents=schedule.due_cents,
                              paid_cents=0, opening_paid_cents=0))
    finally:
        db.dispose()


def prepare(database_url: str, cfg: StormConfig, server: Gunicorn) -> Storm:
    """Create the storm's customers and log them in on the running `server`; return the storm, not run yet.

    The database must be migrated and must not hold the storm's customer ids yet.
    """
    schedule = plan_schedule(cfg)
    create_customers(database_url, schedule)
    return Storm(server.url, schedule, cfg, login_all(server.url, schedule.customer_ids))


def summarize(cfg: StormConfig, out: Outcome, report: dict, **extra) -> dict:
    """Collect a storm's figures as a JSON-able dict."""
    return {
        "config": asdict(cfg),
        **extra,
        "elapsed_seconds": round(out.elapsed, 3),
        "payments_per_second": round(len(out.accepted) / out.elapsed, 1) if out.elapsed else None,
        "requests_sent": out.requests_sent,
        "replays_sent": out.replays_sent,
        "conn_failures": out.conn_failures,
        "timeouts": out.timeouts,
        "http_5xx": out.http_5xx,
        "rejected_4xx": len(out.rejected),
        "rejected_examples": out.rejected[:5],
        "status_counts": {str(k): v for k, v in sorted(out.status_counts.items())},
        "latency_ms": {"p50": round(1000 * percentile(out.latencies, 0.5), 2),
                       "p99": round(1000 * percentile(out.latencies, 0.99), 2),
                       "mean": round(1000 * statistics.fmean(out.latencies), 2) if out.latencies else 0.0},
        "stopped_early": out.stopped_early,
        "client_errors": out.client_errors,
        **report,
    }


def finish(database_url: str, storm: Storm, server: Gunicorn, client_problems: list[str], **extra) -> dict:
    """Audit the ledger after a storm and return its figures; `client_problems` (what the clients saw) fail it too.

    gunicorn's folder is deleted when all is well; otherwise the figures name its log and quote its end.
    """
    report = audit_storm(database_url, storm.schedule.customer_ids, storm.out)
    result = summarize(storm.cfg, storm.out, report, workers=server.workers,
                       database=make_url(database_url).get_backend_name(), **extra)
    if client_problems:
        result["ok"] = False
        result["problems"] = result["problems"] + client_problems
    if result["ok"]:
        server.cleanup()
    else:
        result["gunicorn_log"] = str(server.log_path)
        result["gunicorn_log_tail"] = server.log_tail()
    return result


def run_storm(database_url: str, cfg: StormConfig, workers: int = 3, workdir: Path | None = None,
              threads: int | None = None) -> dict:
    """Start a portal on the migrated ledger at `database_url`, run a storm against it, audit; return the figures.

    `threads`: threads per worker where the portal runs gthread workers (SQLite; `make run` runs 8); None: one.
    """
    server = portal(database_url, workers=workers, threads=threads, workdir=workdir).start()
    try:
        storm = prepare(database_url, cfg, server)
        meter = CpuMeter.of_ledger(server.worker_pids(), database_url).start()
        out = storm.run()
        cpu = meter.stop()  # before the stop: the workers and their connections are still there to read
    finally:
        server.stop()
    problems = []
    if out.http_5xx or out.rejected or out.unresolved or out.stopped_early or out.client_errors:
        problems = [f"clients saw {out.http_5xx} 5xx, {len(out.rejected)} 4xx, {len(out.unresolved)} unanswered"
                    + (", and stopped early" if out.stopped_early else ""), *out.client_errors]
    paid = len(out.accepted) or 1
    return finish(database_url, storm, server, problems, cpu_seconds=cpu,
                  cpu_ms_per_payment={part: round(1000 * seconds / paid, 2) for part, seconds in cpu.items()})


def print_storm(result: dict) -> None:
    """Print a storm's figures on a few lines."""
    print(f"  {result['database']}: {result['payments_accepted']} payments accepted in {result['elapsed_seconds']} s "
          f"= {result['payments_per_second']}/s with {result['config']['clients']} clients, "
          f"{result['workers']} workers; "
          f"latency p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms")
    print(f"    requests {result['requests_sent']} (replays {result['replays_sent']}, "
          f"{result['replays_matching_first_answer']}/{result['replays_answered']} answered replays = first answer); "
          f"conn failures {result['conn_failures']}, timeouts {result['timeouts']}, 5xx {result['http_5xx']}, "
          f"4xx {result['rejected_4xx']}")
    print(f"    ledger: {result['payments_in_ledger']} payments, accepted {result['accepted_cents']} cents = "
          f"allocated {result['allocated_cents']} + bank credit {result['bank_credit_cents']}; "
          f"{result['months_fully_paid']}/{result['months']} months fully paid")
    print("    invariants: " + ("OK" if result["ok"] else "FAILED\n      " + "\n      ".join(result["problems"])))


def main(argv: list[str] | None = None) -> int:
    """Run the storm on SQLite and/or PostgreSQL and print the audit."""
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=main.__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--payments", type=int, default=500, help="payments per client")
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--dup-every", type=int, default=7)
    parser.add_argument("--race-every", type=int, default=11)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)
    cfg = StormConfig(clients=args.clients, payments=args.payments, customers=args.customers,
                      dup_every=args.dup_every, race_every=args.race_every, seed=args.seed)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = {}
    print(f"payment storm: {cfg.clients} clients x {cfg.payments} payments on {cfg.customers} customers")
    for kind in kinds:
        with throwaway_database(kind, "bench", migrated=True, admin_url=args.pg_admin_url) as url:
            results[kind] = run_storm(url, cfg, workers=args.workers)
        print_storm(results[kind])
    path = write_json("storm", {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results})
    print(f"wrote {path}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
