"""Payments per second over HTTP with wrk as the client (C, as pgbench is), then the ledger audited.

wrk (2 threads, `clients` connections) sends ``POST /api/customer/payment`` for
`seconds`: each request a new Idempotency-Key, the customers in turn, a random
month of their schedule and a random amount (the Lua script is written here).
The portal runs under gunicorn as ``make run`` runs it. Afterwards the ledger
must hold what wrk was answered: every sum to the cent, the allocations a serial
replay of the allocation rule, and one payment per 2xx answer (plus at most one
per connection still in flight when wrk stopped, each round). In rounds, each
with keys of its own, a baseline can run before each one (``pay``'s
``before_round``), so that the machine's swings weigh on the payments and their
baseline alike. ``bench.bench_ledger`` and ``bench.bench_cluster`` use it for
their payments/s figures; the storm (``bench.storm``), with replays, races and
its per-answer audit, stays the correctness run.

Before paying, ``read_seconds`` of ``GET /api/customer/summary/<id>`` by the same
customers (bearer token, login lookup, two reads, no write) measure what the
portal's request path costs on its own: the floor under any payment.
"""
from __future__ import annotations

import json
import resource
from collections.abc import Callable

from bench.cpu import CpuMeter
from bench.storm import create_customers
from bench.storm_client import Schedule, StormConfig, login_all, plan_schedule
from bench.wrk import run_script
from portal.db import Database
from testing.audit import LedgerRows, allocations_replay_serially, ledger_problems, no_reversals, read_ledger
from testing.servers import portal

# Both scripts: wrk runs 2 threads (bench.wrk.run_script); thread tid takes every other customer in turn.
CUSTOMERS_IN_TURN = """
local tokens = %(tokens)s
local threads, counter = 0, 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function next_customer()
  counter = counter + 1
  return (counter * 2 + tid) %% #tokens + 1
end
"""

LUA = CUSTOMERS_IN_TURN + """
local periods = %(periods)s
local max_cents = %(max_cents)d
local round = %(round)d
function init(args)
  math.randomseed(7 + tid + 100 * round)
end
function request()
  local token = tokens[next_customer()]
  local period = periods[math.random(#periods)]
  local cents = math.random(1, max_cents)
  local body = string.format('{"year": %%d, "month": %%d, "amount": "%%d.%%02d"}',
                             period[1], period[2], math.floor(cents / 100), cents %% 100)
  return wrk.format("POST", "/api/customer/payment", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token, ["Idempotency-Key"] = "r" .. round .. "w" .. tid .. "-" .. counter}, body)
end
"""

READ_LUA = CUSTOMERS_IN_TURN + """
local ids = %(ids)s
function request()
  local i = next_customer()
  return wrk.format("GET", "/api/customer/summary/" .. ids[i], {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


def lua_list(items) -> str:
    """Write a Python list of strings, integers or int pairs as a Lua table."""
    return "{" + ", ".join(json.dumps(i) if isinstance(i, (str, int)) else f"{{{i[0]}, {i[1]}}}" for i in items) + "}"


def customer_tokens(base_url: str, database_url: str, schedule: Schedule) -> str:
    """Create the schedule's customers in the ledger, log each in through the portal; return their tokens in Lua."""
    create_customers(database_url, schedule)
    tokens = login_all(base_url, schedule.customer_ids)
    return lua_list(tokens[c] for c in schedule.customer_ids)


def payment_script(token_list: str, schedule: Schedule, max_cents: int, round_number: int) -> str:
    """Write wrk's payment script for one round: keys and amounts of its own (the same keys again would be replays)."""
    return LUA % {"tokens": token_list, "periods": lua_list(schedule.periods()), "max_cents": max_cents,
                  "round": round_number}


def audit_ledger(database_url: str, customer_ids: list[int]) -> tuple[LedgerRows, list[str]]:
    """Read the customers' ledger; return it and what is wrong (a reversal, a sum off by a cent, the rule broken)."""
    db = Database(database_url)
    try:
        rows = read_ledger(db, customer_ids)
    finally:
        db.dispose()
    return rows, [*no_reversals(rows), *ledger_problems(rows), *allocations_replay_serially(rows)]


def children_seconds() -> float:
    """Return the CPU seconds of this process's waited-for children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def payments_per_second(database_url: str, clients: int = 16, customers: int = 100, seconds: int = 20,
                        workers: int = 2, threads: int | None = 8, read_seconds: int = 0,
                        env: dict[str, str] | None = None, rounds: int = 1,
                        before_round: Callable[[], dict] | None = None) -> dict:
    """Start a portal on a migrated ledger and pay its new customers with wrk; return `pay`'s figures.

    `env` adds to the portal's environment (PAYMENT_BATCH_MAX=1: every payment in its own transaction).
    """
    server = portal(database_url, env=env, workers=workers, threads=threads).start()
    try:
        return pay(server.url, database_url, server.worker_pids(), clients, customers, seconds,
                   read_seconds=read_seconds, rounds=rounds, before_round=before_round)
    finally:
        server.stop()


def run_metered(base_url: str, script: str, seconds: int, clients: int, meter: CpuMeter) -> tuple[dict, dict]:
    """Run a wrk script; return wrk's figures and the CPU seconds of each part (wrk as the load generator)."""
    meter.start()
    wrk_before = children_seconds()
    figures = run_script(base_url, script, seconds, clients)
    return figures, {**meter.stop(), "load generator": round(children_seconds() - wrk_before, 3)}


def pay(base_url: str, database_url: str, portal_pids: list[int], clients: int = 16, customers: int = 100,
        seconds: int = 20, first_customer_id: int = 800_001, read_seconds: int = 0, rounds: int = 1,
        before_round: Callable[[], dict] | None = None) -> dict:
    """Create customers in the ledger, pay them through the portal at `base_url` with wrk, audit; return the figures.

    `portal_pids`: the processes whose CPU counts as the portal's (gunicorn's workers).
    `read_seconds` > 0: first read the customers' summaries for that long (``summary_read`` in the figures).
    `rounds` runs of wrk for `seconds` each pay the same customers; ``payments_per_second`` is their
    median. `before_round()`, if given, runs before each round (a baseline, alternated with the payments
    so that the machine's swings weigh on both alike); what it returns is kept as the round's ``baseline``.
    The audit reads the ledger once, after the last round.
    """
    cfg = StormConfig(clients=clients, payments=40 * seconds * rounds, customers=customers, seed=7,
                      first_customer_id=first_customer_id)
    schedule = plan_schedule(cfg)
    token_list = customer_tokens(base_url, database_url, schedule)
    meter = CpuMeter.of_ledger(portal_pids, database_url)
    summary_read = None
    if read_seconds:
        script = READ_LUA % {"tokens": token_list, "ids": lua_list(schedule.customer_ids)}
        read, read_cpu = run_metered(base_url, script, read_seconds, clients, meter)
        reads = (read["requests"] - read["non_2xx"]) or 1
        summary_read = {"reads_per_second": read["rps"], "non_2xx": read["non_2xx"],
                        "cpu_ms_per_read": {part: round(1000 * s / reads, 2) for part, s in read_cpu.items()}}
    runs, cpu = [], {}
    for round_number in range(rounds):
        script = payment_script(token_list, schedule, cfg.max_amount_cents, round_number)
        baseline = before_round() if before_round is not None else None
        figures, round_cpu = run_metered(base_url, script, seconds, clients, meter)
        runs.append({**figures, "baseline": baseline})
        cpu = {part: cpu.get(part, 0.0) + s for part, s in round_cpu.items()}
    rows, problems = audit_ledger(database_url, schedule.customer_ids)
    answered = sum(r["requests"] - r["non_2xx"] for r in runs)
    non_2xx = sum(r["non_2xx"] for r in runs)
    if non_2xx:
        problems.append(f"{non_2xx} answers were not 2xx")
    if summary_read and summary_read["non_2xx"]:
        problems.append(f"{summary_read['non_2xx']} summary reads were not 2xx")
    # Each round may leave one payment per connection written but unanswered when wrk stopped.
    if not answered <= len(rows.payments) <= answered + clients * rounds:
        problems.append(f"{len(rows.payments)} payments in the ledger for {answered} 2xx answers")
    median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    paid = answered or 1
    return {"ok": not problems, "problems": problems, "payments_per_second": median["rps"],
            "payments_accepted": answered, "payments_in_ledger": len(rows.payments),
            "elapsed_seconds": seconds * rounds,
            "latency_ms": {"p50": median["p50_ms"], "p99": median["p99_ms"]}, "client": "wrk",
            "rounds": [{"payments_per_second": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                        "non_2xx": r["non_2xx"], "baseline": r["baseline"]} for r in runs],
            "cpu_seconds": {part: round(s, 3) for part, s in cpu.items()},
            "cpu_ms_per_payment": {part: round(1000 * s / paid, 2) for part, s in cpu.items()},
            "summary_read": summary_read}
