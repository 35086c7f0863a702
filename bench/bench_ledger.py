"""Ledger benchmarks, each against a baseline measured in the same run on the same machine.

* payments per second over HTTP, wrk as the client (``bench.pay_wrk``; the portal's gunicorn as ``make run`` runs
  it with Redis: 2 workers, gevent on PostgreSQL, 8 threads each on SQLite; 16 concurrent clients, one payment = one
  ``POST /api/customer/payment``) on PostgreSQL, against ``pgbench``'s
  TPC-B-like tps on the same server (``pgbench -c 8 -j 2 -T 10``, scale 1, a
  throwaway database), run before each of 3 rounds of 10 s of payments: the
  ratio is the rounds' median payments/s over the median tps; goal >= 0.3x. With it, what one payment costs
  (``bench.payment_path``: statements, round trips, in-process time), which
  explains a miss;
* the same on SQLite, against a TPC-B-like loop on SQLite itself (8 processes,
  Python's sqlite3, the ledger's pragmas: WAL, synchronous=NORMAL, BEGIN IMMEDIATE);
* dashboard summary latency (``GET /api/customer/summary/<id>``, p50/p99, one
  client, random customers) with 1,000 and with 100,000 customers; goal p50 <= 5 ms,
  growth (p50 at 100,000 / p50 at 1,000) <= 1.5x;
* demo seeding of 100,000 customers (simulate + Parquet files + import); goal
  <= 60 s; the baseline is 100 x the time for 1,000 (linear scaling).

Each prints the figure, the baseline and the ratio, and all are written to
``var/bench/ledger.json``. ``python -m bench.bench_ledger --help``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pay_wrk, payment_path  # noqa: E402
from bench.results import machine, percentile, rounds_text, write_json  # noqa: E402
from contracts import ledger_export  # noqa: E402
from pipeline.simulate import simulate  # noqa: E402
from portal.db import Database  # noqa: E402
from portal.demo import DEMO_CUSTOMER_PASSWORD, ensure_demo_users  # noqa: E402
from portal.importer import import_ledger  # noqa: E402
from testing.databases import PG_ADMIN_URL, throwaway_database  # noqa: E402
from testing.servers import portal, portal_workers  # noqa: E402

PGBENCH_ARGS = ["-c", "8", "-j", "2", "-T", "10"]


def entry(name: str, figure: float, unit: str, baseline: float | None, baseline_name: str,
          goal: str | None = None, met: bool | None = None, **details) -> dict:
    """Build, print and return one result: figure, baseline, ratio and goal."""
    ratio = round(figure / baseline, 3) if baseline else None
    line = f"{name}: {figure:,.2f} {unit}; baseline {baseline_name}: "
    line += f"{baseline:,.2f}" if baseline is not None else "n/a"
    line += f"; ratio {ratio:.3f}x" if ratio is not None else ""
    if goal:
        line += f"  [goal {goal}: {'met' if met else 'MISSED'}]"
    print(line, flush=True)
    return {"name": name, "figure": round(figure, 3), "unit": unit, "baseline": baseline and round(baseline, 3),
            "baseline_name": baseline_name, "ratio": ratio, "goal": goal, "met": met, **details}


# --------------------------------------------------------------------------- baselines

def pgbench_tps(admin_url: str, args: list[str] = PGBENCH_ARGS, scale: int = 1) -> dict:
    """Run pgbench's TPC-B-like test on a throwaway database of the same server; return its tps."""
    url = make_url(admin_url)
    conn_args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    with throwaway_database("postgres", "pgbench", admin_url=admin_url) as bench_url:
        name = make_url(bench_url).database
        subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), *conn_args, name], check=True, env=env,
                       capture_output=True, timeout=300)
        done = subprocess.run(["pgbench", *args, *conn_args, name], check=True, env=env, capture_output=True,
                              text=True, timeout=300)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if match is None:
        match = re.search(r"tps = ([0-9.]+)", done.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    return {"tps": float(match.group(1)), "latency_avg_ms": float(latency.group(1)) if latency else None,
            "command": f"pgbench -i -s {scale}; pgbench {' '.join(args)}", "scale": scale}


_TPCB = """
CREATE TABLE branches (bid INTEGER PRIMARY KEY, bbalance INTEGER, filler TEXT);
CREATE TABLE tellers (tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER, filler TEXT);
CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, filler TEXT);
CREATE TABLE history (tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TEXT, filler TEXT);
"""


def _sqlite_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _sqlite_tpcb_client(path: str, seconds: float, seed: int, counts) -> None:
    conn = _sqlite_connect(path)
    rng = random.Random(seed)
    done = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        aid, tid, delta = rng.randint(1, 100_000), rng.randint(1, 10), rng.randint(-5000, 5000)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET abalance = abalance + ? WHERE aid = ?", (delta, aid))
        conn.execute("SELECT abalance FROM accounts WHERE aid = ?", (aid,)).fetchone()
        conn.execute("UPDATE tellers SET tbalance = tbalance + ? WHERE tid = ?", (delta, tid))
        conn.execute("UPDATE branches SET bbalance = bbalance + ? WHERE bid = 1", (delta,))
        conn.execute("INSERT INTO history (tid, bid, aid, delta, mtime) VALUES (?, 1, ?, ?, CURRENT_TIMESTAMP)",
                     (tid, aid, delta))
        conn.execute("COMMIT")
        done += 1
    counts.put(done)
    conn.close()


def sqlite_tpcb_tps(clients: int = 8, seconds: float = 10.0) -> dict:
    """Run a TPC-B-like loop (pgbench's transaction) on SQLite with `clients` processes; return its tps."""
    folder = tempfile.mkdtemp(prefix="tpcb-sqlite-")
    path = os.path.join(folder, "tpcb.db")
    try:
        conn = _sqlite_connect(path)
        conn.executescript(_TPCB)
        conn.execute("BEGIN")
        conn.execute("INSERT INTO branches VALUES (1, 0, NULL)")
        conn.executemany("INSERT INTO tellers VALUES (?, 1, 0, NULL)", [(i,) for i in range(1, 11)])
        conn.executemany("INSERT INTO accounts VALUES (?, 1, 0, ?)", [(i, " " * 84) for i in range(1, 100_001)])
        conn.execute("COMMIT")
        conn.close()
        ctx = multiprocessing.get_context("spawn")
        counts = ctx.Queue()
        procs = [ctx.Process(target=_sqlite_tpcb_client, args=(path, seconds, i, counts)) for i in range(clients)]
        started = time.monotonic()
        for p in procs:
            p.start()
        total = sum(counts.get(timeout=seconds + 120) for _ in procs)
        for p in procs:
            p.join(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"tps": total / seconds, "transactions": total, "elapsed_with_startup": round(elapsed, 2),
            "command": f"{clients} processes x {seconds:.0f} s of BEGIN IMMEDIATE; 3 UPDATE, 1 SELECT, "
                       "1 INSERT; COMMIT (WAL, synchronous=NORMAL)"}


# --------------------------------------------------------------------------- payments per second

READ_SECONDS = 8  # the authenticated summary reads before the payments (PostgreSQL): the request path's floor


def payments_per_second(kind: str, admin_url: str, clients: int, seconds: int, customers: int,
                        workers: int, threads: int | None, group_commit: bool = True, rounds: int = 1,
                        before_round: Callable[[], dict] | None = None) -> dict:
    """Pay with wrk for `rounds` x `seconds` on a fresh ledger, then audit it; return the figures.

    `group_commit` False: the portal writes every payment in its own transaction (PAYMENT_BATCH_MAX=1).
    `before_round`: the baseline, run before each round (``pay_wrk.pay``).
    """
    with throwaway_database(kind, "bench", migrated=True, admin_url=admin_url) as url:
        result = pay_wrk.payments_per_second(
            url, clients, customers, seconds, workers, threads,
            read_seconds=READ_SECONDS if kind == "postgres" and group_commit else 0,
            env=None if group_commit else {"PAYMENT_BATCH_MAX": "1"}, rounds=rounds, before_round=before_round)
    if not result["ok"]:
        raise RuntimeError(f"the {kind} payment run failed its audit: {result['problems']}")
    return result


def where_the_time_goes(path: dict, storm: dict, baseline_tps: float, workers: int, threads: int | None,
                        clients: int) -> str:
    """Say, from the figures of this run, what one payment costs compared with a TPC-B transaction."""
    serving = portal_workers("postgresql://", workers, threads)
    cpu = storm.get("cpu_ms_per_payment") or {}
    total = sum(cpu.values())
    parts = ", ".join(f"{part} {ms:.1f}" for part, ms in cpu.items())
    budget = 1000 * (os.cpu_count() or 1) / (0.3 * baseline_tps)
    read = storm.get("summary_read")
    floor = ""
    if read:
        read_total = sum(read["cpu_ms_per_read"].values())
        floor = (f". The same portal's authenticated read of a customer's summary (the token's check, the login "
                 f"lookup and two reads, no write) took {read_total:.1f} ms of CPU per request on its own (portal "
                 f"{read['cpu_ms_per_read']['portal']:.1f}, database {read['cpu_ms_per_read']['database']:.1f}; "
                 f"{read['reads_per_second']:.0f} reads/s): "
                 + ("more than the whole budget of a payment, so the request path (Flask, the login's check, "
                    f"SQLAlchemy and psycopg on the same {os.cpu_count()} CPUs as PostgreSQL) sets the floor, not "
                    "the payment's ledger work" if read_total >= budget else
                    f"{100 * read_total / budget:.0f} % of a payment's budget before any ledger work")
                 + ". A payment shares its login lookup, its statements and its commit with the payments of its "
                   "batch (group commit), which is how its CPU per payment can come out below this read's")
    batch = path.get("batch_cpu_ms") or {}
    writer = ("" if not batch else
              ". The batch writer alone (the logins' check, the payments and their answers' summaries, "
              "in-process, no HTTP) used " + ", ".join(f"{ms:.2f} ms" for ms in batch.values())
              + " of CPU per payment in batches of " + ", ".join(map(str, batch))
              + ": the rest of a payment's portal CPU over HTTP is the request's path (gunicorn, Flask, the "
                "token, the body's and the answer's schemas)")
    return (f"one payment alone is one transaction of {path['statements_per_payment']} statements "
            f"({path['round_trips_per_payment']} round trips with BEGIN, COMMIT and any ping of an idle "
            f"pooled connection; "
            f"{path['ms_per_payment']} ms in-process, one at a time), where pgbench's TPC-B transaction is 5 "
            f"statements from a client written in C; payments a portal process receives together share one "
            f"transaction (group commit). Over HTTP it took {total:.1f} ms of CPU per payment "
            f"({parts}), while 0.3x pgbench leaves {budget:.1f} ms of the {os.cpu_count()} CPUs per payment for "
            f"everything: wrk's {clients} connections, {serving} and PostgreSQL share those cores "
            f"(load average {os.getloadavg()[0]:.1f} at the end, other work included){writer}{floor}. Rounds, "
            f"payments/s vs the baseline's tps just before: {rounds_text(storm['rounds'])}")


def bench_payments(kinds: list[str], admin_url: str, clients: int, seconds: int, customers: int,
                   workers: int, threads: int | None = None, rounds: int = 3) -> list[dict]:
    """Payments per second over HTTP vs the database's own TPC-B-like tps, and what one payment costs."""
    results = []
    for kind in kinds:
        path = payment_path.measure(kind, admin_url=admin_url)
        print(f"  ({kind}: one payment = {path['statements_per_payment']} statements, "
              f"{path['round_trips_per_payment']} round trips, {path['ms_per_payment']} ms in-process)", flush=True)
        path["batch_cpu_ms"] = batch = payment_path.batch_cpu(kind, admin_url=admin_url)
        results.append(entry(
            f"CPU per payment written in batches of 8, in-process ({kind})", batch[8], "ms", batch[1],
            "the same batch writer writing each payment alone, same run; this process's CPU, no HTTP",
            batch_cpu_ms=batch))
        # The baseline runs before each round of payments, alternating with them, and the ratio is
        # their medians': load from elsewhere on the machine while measuring weighs on both sides alike.
        measure = (lambda: pgbench_tps(admin_url)) if kind == "postgres" else sqlite_tpcb_tps
        storm = payments_per_second(kind, admin_url, clients, seconds, customers, workers, threads, rounds=rounds,
                                    before_round=measure)
        cpu = storm.get("cpu_ms_per_payment") or {}
        print(f"  ({kind}: CPU ms per payment over HTTP: "
              + ", ".join(f"{part} {ms:.2f}" for part, ms in cpu.items()) + ")", flush=True)
        if storm.get("summary_read"):
            print(f"  ({kind}: CPU ms per authenticated summary read over HTTP: "
                  + ", ".join(f"{part} {ms:.2f}" for part, ms in storm["summary_read"]["cpu_ms_per_read"].items())
                  + f"; {storm['summary_read']['reads_per_second']:.0f} reads/s)", flush=True)
        # The same storm with each payment in its own transaction: what the group commit gives, in this run.
        alone = payments_per_second(kind, admin_url, clients, seconds, customers, workers, threads,
                                    group_commit=False) if kind == "postgres" else None
        tps = [r["baseline"]["tps"] for r in storm["rounds"]]
        base = {**storm["rounds"][0]["baseline"], "tps": statistics.median(tps), "tps_by_round": tps}
        name = ("pgbench TPC-B-like tps, same server" if kind == "postgres"
                else "SQLite TPC-B-like tps, 8 processes, same pragmas") + (
                    f" (median of {rounds} runs, each before a round of payments)")
        met = (storm["payments_per_second"] / base["tps"] >= 0.3) if kind == "postgres" else None
        results.append(entry(
            f"payments/s over HTTP ({kind})", storm["payments_per_second"], "payments/s", base["tps"], name,
            goal=">= 0.3x" if kind == "postgres" else None, met=met,
            why=where_the_time_goes(path, storm, base["tps"], workers, threads, clients) if met is False else None,
            clients=clients, workers=workers, threads=threads, customers=customers,
            payments=storm["payments_accepted"], latency_ms=storm["latency_ms"],
            elapsed_seconds=storm["elapsed_seconds"], baseline_details=base,
            statements_per_payment=path["statements_per_payment"],
            round_trips_per_payment=path["round_trips_per_payment"], ms_per_payment_in_process=path["ms_per_payment"],
            cpu_ms_per_payment=storm.get("cpu_ms_per_payment"), one_payment=path["one_payment"]["log"]))
        if alone is not None:
            results.append(entry(
                f"payments/s over HTTP with group commit ({kind})", storm["payments_per_second"], "payments/s",
                alone["payments_per_second"], "the same portal writing each payment in its own transaction "
                "(PAYMENT_BATCH_MAX=1), same run", cpu_ms_per_payment=storm.get("cpu_ms_per_payment"),
                cpu_ms_per_payment_alone=alone.get("cpu_ms_per_payment"), latency_ms=storm["latency_ms"],
                latency_ms_alone=alone["latency_ms"], clients=clients, workers=workers, threads=threads))
    return results


# --------------------------------------------------------------------------- latency and seeding

def _get(port: int, path: str, headers: dict) -> tuple[int, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response.status, time.perf_counter() - started


def _manager_token(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/manager/login", body=json.dumps({"id": 1, "password": "manager123"}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"manager login answered {response.status}: {body[:300]!r}")
    return json.loads(body)["token"]


def summary_latency(urls: dict[int, str], requests_n: int = 2000, warmup: int = 300, seed: int = 3) -> dict:
    """Measure GET /api/customer/summary/<id> for random customers as the demo manager, one at a time.

    One portal per ledger runs at once and the requests alternate between them,
    so that load from elsewhere on the machine weighs on every ledger alike.
    """
    rng = random.Random(seed)
    servers, ids, headers = {}, {}, {}
    try:
        for n, url in urls.items():
            engine = create_engine(url)
            with engine.connect() as conn:
                ids[n] = [row[0] for row in conn.execute(text("SELECT id FROM customers"))]
            engine.dispose()
            servers[n] = portal(url, workers=2).start()
            headers[n] = {"Authorization": f"Bearer {_manager_token(servers[n].port)}"}
        latencies: dict[int, list[float]] = {n: [] for n in urls}
        statuses = set()
        for i in range(warmup + requests_n):
            for n in urls:
                status, seconds = _get(servers[n].port, f"/api/customer/summary/{rng.choice(ids[n])}", headers[n])
                statuses.add(status)
                if i >= warmup:
                    latencies[n].append(seconds)
    finally:
        for server in servers.values():
            server.cleanup()
    if statuses != {200}:
        raise RuntimeError(f"summary answered {statuses}")
    return {n: {"customers": len(ids[n]), "requests": requests_n,
                "p50_ms": round(1000 * percentile(v, 0.5), 3), "p90_ms": round(1000 * percentile(v, 0.9), 3),
                "p99_ms": round(1000 * percentile(v, 0.99), 3)} for n, v in latencies.items()}


def seed_demo(db: Database, customers: int, seed: int, out_dir: str) -> dict:
    """Seed the demo ledger as `make data` does (simulate, write the export, import it, demo logins); time it."""
    started = time.perf_counter()
    data = simulate(customers, seed)
    simulated = time.perf_counter()
    folder = ledger_export.write(data, out_dir)
    written = time.perf_counter()
    counts = import_ledger(db, data, demo_password=DEMO_CUSTOMER_PASSWORD, progress=False)
    ensure_demo_users(db)
    return {**counts, "files": str(folder), "simulate_seconds": round(simulated - started, 3),
            "files_seconds": round(written - simulated, 3), "import_seconds": counts["seconds"],
            "seconds": round(time.perf_counter() - started, 3)}


@contextmanager
def seeded(kind: str, admin_url: str, customers: int):
    """Create a fresh ledger, seed `customers` demo customers and time it; yield (url, stats)."""
    with throwaway_database(kind, "bench", migrated=True, admin_url=admin_url) as url, \
            tempfile.TemporaryDirectory(prefix="seed-files-") as files:
        db = Database(url)
        try:
            started = time.perf_counter()
            stats = seed_demo(db, customers, 42, files)
            stats["wall_seconds"] = round(time.perf_counter() - started, 3)
        finally:
            db.dispose()
        yield url, stats


def bench_latency_and_seeding(kinds: list[str], admin_url: str, small: int, large: int) -> list[dict]:
    """Summary latency at `small` and `large` customers, and the time to seed each."""
    results = []
    for kind in kinds:
        with seeded(kind, admin_url, small) as (small_url, small_seed), \
                seeded(kind, admin_url, large) as (large_url, large_seed):
            print(f"  ({kind}: seeded {small:,} customers in {small_seed['wall_seconds']} s, "
                  f"{large:,} in {large_seed['wall_seconds']} s)", flush=True)
            latency = summary_latency({small: small_url, large: large_url})
        lo, hi = latency[small], latency[large]
        growth = hi["p50_ms"] / lo["p50_ms"]
        met = hi["p50_ms"] <= 5 and growth <= 1.5
        why = None if met or growth > 1.5 else (
            f"the p50 with {small:,} customers is the same ({growth:.2f}x): the time is the request, not the "
            "ledger's size - a new connection per request, the token's check and login lookup, and the reads"
            + ("; on PostgreSQL each read is a round trip, where SQLite reads "
               "in-process" if kind == "postgres" else ""))
        results.append(entry(
            f"summary p50 with {large:,} customers ({kind})", hi["p50_ms"], "ms", lo["p50_ms"],
            f"p50 with {small:,} customers", goal="p50 <= 5 ms and growth <= 1.5x",
            met=met, why=why, small=lo, large=hi))
        results.append(entry(
            f"summary p99 with {large:,} customers ({kind})", hi["p99_ms"], "ms", lo["p99_ms"],
            f"p99 with {small:,} customers", small=lo, large=hi))
        seconds = large_seed["wall_seconds"]
        results.append(entry(
            f"seeding {large:,} demo customers ({kind})", seconds, "s",
            small_seed["wall_seconds"] * large / small, f"{large // small} x seeding {small:,}",
            goal="<= 60 s", met=seconds <= 60, breakdown=large_seed, small_breakdown=small_seed))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the ledger benchmarks and write var/bench/ledger.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ledger", description=main.__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--only", choices=["payments", "latency", "all"], default="all",
                        help="latency includes the seeding figures")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10, help="how long wrk pays in each round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of payments, each after a run of the baseline; the ratio is their medians'")
    parser.add_argument("--customers", type=int, default=100, help="customers paid in the payments run")
    # As `make run` serves the portal with Redis (deploy/portal_gunicorn.py chooses the worker class by engine).
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker where the portal runs gthread "
                        "workers (SQLite); 0: one")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)
    kinds = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    started = time.monotonic()
    load = os.getloadavg()
    info = machine()
    print(f"ledger benchmarks on {info['cpus']} CPU(s) ({info['cpu']}), {info['memory']}, "
          f"load average {load[0]:.2f}", flush=True)
    results = []
    for kind in kinds:  # one failure is recorded and the others still run
        try:
            if args.only in ("payments", "all"):
                results += bench_payments([kind], args.pg_admin_url, args.clients, args.seconds, args.customers,
                                          args.workers, args.threads or None, args.rounds)
            if args.only in ("latency", "all"):
                results += bench_latency_and_seeding([kind], args.pg_admin_url, args.small, args.large)
        except Exception as exc:  # noqa: BLE001 - reported in the output and the JSON
            print(f"{kind}: FAILED: {exc!r}", flush=True)
            results.append({"name": f"{kind} benchmarks", "error": repr(exc)[:3000]})
    path = write_json("ledger", {"machine": info, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
                                 "seconds": round(time.monotonic() - started, 1), "results": results})
    print(f"wrote {path} ({time.monotonic() - started:.0f} s)")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
