"""Payments/s of two revisions of the portal in one run: a same-run A/B, for a change to the payment path.

    python -m bench.ab_payments BASE [NEW] [--rounds 8] [--seconds 8] [--clients 16] [--customers 100]

BASE and NEW are git revisions; without NEW, the working tree as it is. Each revision is
checked out into a temporary worktree (``git worktree add --detach``) and served as ``make
run`` serves the portal (gunicorn, 2 gevent workers: ``deploy/portal_gunicorn.py``), on a throwaway PostgreSQL
database of its own on the same server. wrk pays the same way as ``bench.pay_wrk`` (16
connections, 100 new customers, each round with keys of its own), one round on each portal
in turn, the order flipping every round. Halfway, both portals are restarted in the other
order: on this machine, the portal started first ran about 11 % faster whatever code it
served, so each revision starts first for half the rounds.

This machine swings a lot from one minute to the next (one round can halve), so the verdict
is the median of the per-pair ratios NEW/BASE, printed with every round, the medians of
payments/s, CPU per payment (portal, PostgreSQL) and p50, and an audit of both ledgers
(``bench.pay_wrk.audit_ledger``: sums to the cent, the allocation rule replayed). Needs wrk
(``make cluster-deps``) and PostgreSQL.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter  # noqa: E402
from bench.pay_wrk import audit_ledger, customer_tokens, payment_script, run_metered  # noqa: E402
from bench.storm_client import StormConfig, plan_schedule  # noqa: E402
from testing.databases import PG_ADMIN_URL, throwaway_database  # noqa: E402
from testing.servers import portal  # noqa: E402

NAMES = ("base", "new")


@contextmanager
def worktree(revision: str, into: Path) -> Iterator[Path]:
    """Check `revision` out into a detached worktree under `into`; yield its path, then remove the worktree."""
    path = into / revision.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), revision], cwd=ROOT, check=True)
    failed = True
    try:
        yield path
        failed = False
    finally:
        # After a failure, a removal that fails too must not hide it.
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=not failed)


def compare(trees: dict[str, Path], rounds: int, seconds: int, clients: int, customers: int) -> dict:
    """Alternate wrk payment rounds between the two trees' portals; return every round and the medians."""
    runs: dict[str, list[dict]] = {name: [] for name in NAMES}
    with throwaway_database("postgres", "ab_base", migrated=True, admin_url=PG_ADMIN_URL) as base_url, \
            throwaway_database("postgres", "ab_new", migrated=True, admin_url=PG_ADMIN_URL) as new_url:
        urls = {"base": base_url, "new": new_url}
        servers = {name: portal(urls[name], workers=2, threads=8, root=trees[name]) for name in NAMES}
        try:
            cfg = StormConfig(clients=clients, payments=40 * seconds * rounds, customers=customers, seed=7,
                              first_customer_id=800_001)
            schedule = plan_schedule(cfg)
            tokens: dict[str, str] = {}
            for r in range(rounds):
                if r in (0, rounds // 2):  # (re)start both, the other one first the second time
                    order = NAMES if r == 0 else NAMES[::-1]
                    for name in order:
                        servers[name].stop()
                    for name in order:
                        servers[name].start()
                    if r == 0:
                        for name in NAMES:
                            tokens[name] = customer_tokens(servers[name].url, urls[name], schedule)
                for name in NAMES if r % 2 == 0 else NAMES[::-1]:
                    script = payment_script(tokens[name], schedule, cfg.max_amount_cents, r)
                    meter = CpuMeter.of_ledger(servers[name].worker_pids(), urls[name])
                    figures, cpu = run_metered(servers[name].url, script, seconds, clients, meter)
                    paid = (figures["requests"] - figures["non_2xx"]) or 1
                    runs[name].append({"payments_per_second": figures["rps"], "p50_ms": figures["p50_ms"],
                                       "non_2xx": figures["non_2xx"],
                                       "portal_ms": 1000 * cpu["portal"] / paid,
                                       "database_ms": 1000 * cpu["database"] / paid})
                    print(f"  round {r + 1} {name:4}: {figures['rps']:7.1f} payments/s, portal "
                          f"{runs[name][-1]['portal_ms']:.2f} ms, database {runs[name][-1]['database_ms']:.2f} ms "
                          f"of CPU per payment, p50 {figures['p50_ms']:.1f} ms, non-2xx {figures['non_2xx']}",
                          flush=True)
        finally:
            for server in servers.values():
                server.cleanup()
        problems = {name: audit_ledger(urls[name], schedule.customer_ids)[1] for name in NAMES}
    ratios = [n["payments_per_second"] / b["payments_per_second"] for b, n in zip(runs["base"], runs["new"])]
    return {"runs": runs, "ratios": ratios, "median_ratio": statistics.median(ratios), "problems": problems,
            "medians": {name: {key: statistics.median(r[key] for r in runs[name])
                               for key in ("payments_per_second", "portal_ms", "database_ms", "p50_ms")}
                        for name in NAMES}}


def main(argv: list[str] | None = None) -> int:
    """Compare the payments/s of two revisions; exit 1 if either ledger fails its audit."""
    parser = argparse.ArgumentParser(prog="python -m bench.ab_payments", description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the revision to compare against (a commit, a branch, HEAD~1)")
    parser.add_argument("new", nargs="?", help="the revision to compare (default: the working tree as it is)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds on each portal (even: half in each start order)")
    parser.add_argument("--seconds", type=int, default=8, help="seconds of each wrk round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ab-payments-") as tmp, ExitStack() as worktrees:
        trees = {"base": worktrees.enter_context(worktree(args.base, Path(tmp))),
                 "new": worktrees.enter_context(worktree(args.new, Path(tmp))) if args.new else ROOT}
        result = compare(trees, args.rounds, args.seconds, args.clients, args.customers)
    labels = {"base": args.base, "new": args.new or "the working tree"}
    for name in NAMES:
        m = result["medians"][name]
        print(f"{name} ({labels[name]}): median {m['payments_per_second']:.1f} payments/s, portal "
              f"{m['portal_ms']:.2f} ms, database {m['database_ms']:.2f} ms of CPU per payment, "
              f"p50 {m['p50_ms']:.1f} ms")
    print(f"new/base, pair by pair: {', '.join(f'{r:.2f}' for r in result['ratios'])}; "
          f"median {result['median_ratio']:.3f}x")
    for name, problems in result["problems"].items():
        print(f"{name} ledger audit: {'ok' if not problems else problems[:5]}")
    return 1 if any(result["problems"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
