"""Serving decisions/s with two replicas behind nginx against one replica, in one cluster, with the same load.

Starts a throwaway cluster (``testing.cluster.Cluster``: ``make cluster`` on free
ports, its own databases and VAR_DIR), then sends the same one-row
``POST /v1/decisions`` from wrk (2 threads, 8 connections) to:

* one serving replica directly (its gunicorn, ``--workers`` workers): the baseline;
* the serving load balancer: nginx over both replicas.

The ratio is decisions/s through nginx over the single replica. On this 2-vCPU
machine the replicas, nginx and wrk all share the same two cores, so a second
replica adds no CPU: the figure shows what nginx costs and that the pair holds
the same rate, not the scaling of replicas on their own machines.

Then payments/s through the portals' nginx (both portal replicas, one gunicorn gevent
worker each by default (``CLUSTER_PORTAL_WORKERS``, ``deploy/portal_gunicorn.py``), the cluster's
PostgreSQL ledger; ``bench.pay_wrk``: wrk's 16 connections, 100 new customers,
the ledger audited afterwards) in 3 rounds of ``--seconds``, each after a run of
pgbench's TPC-B-like test on the same server: the ratio is the median payments/s
over the median tps, as ``bench.bench_ledger`` measures ``make run``.

    python -m bench.bench_cluster [--seconds 10] [--connections 8]

Needs nginx, wrk, redis-server (``make cluster-deps``) and PostgreSQL. Writes var/bench/cluster.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pay_wrk  # noqa: E402
from bench.bench_ledger import pgbench_tps  # noqa: E402
from bench.results import write_json  # noqa: E402
from bench.wrk import wrk  # noqa: E402
from deploy.cluster import Settings  # noqa: E402
from testing.cluster import Cluster, group_pids  # noqa: E402
from testing.databases import PG_ADMIN_URL  # noqa: E402

ROW = {"paid_pct_5y_ago": 81.3, "paid_pct_4y_ago": 79.4, "paid_pct_3y_ago": 92.7, "paid_pct_2y_ago": 92.6,
       "paid_pct_1y_ago": 97.8}
BODY = json.dumps({"rows": [ROW]})


def main(argv: list[str] | None = None) -> int:
    """Start a cluster and compare one replica with two behind nginx."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per serving replica")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two targets this many times")
    parser.add_argument("--payment-rounds", type=int, default=3,
                        help="rounds of payments, each after a pgbench run; the ratio is their medians'")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("wrk", "redis-server") if shutil.which(tool) is None]
    if shutil.which("nginx") is None and not os.access("/usr/sbin/nginx", os.X_OK):
        missing.append("nginx")
    if missing:
        print(f"missing {', '.join(missing)}: run `make cluster-deps`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = Cluster(Path(tmp), poll_seconds=5, workers=args.workers)
        print("starting a cluster ...", flush=True)
        started = time.monotonic()
        try:
            cluster.start()
            start_seconds = time.monotonic() - started
            one, two = cluster.info["servings"][0] + "/v1/decisions", cluster.info["serving_url"] + "/v1/decisions"
            wrk(one, BODY, 2, args.connections, cluster.serving_headers)  # warm up both paths
            wrk(two, BODY, 2, args.connections, cluster.serving_headers)
            runs: dict[str, list[dict]] = {"one": [], "two": []}
            for _ in range(args.rounds):  # alternate, so that other load on the machine hits both alike
                runs["one"].append(wrk(one, BODY, args.seconds, args.connections, cluster.serving_headers))
                runs["two"].append(wrk(two, BODY, args.seconds, args.connections, cluster.serving_headers))
            print("payments through the portals' nginx, in rounds each after a pgbench run ...", flush=True)
            portal_pids = [pid for name in ("portal1", "portal2") for pid in group_pids(cluster.pid(name))]
            payments = pay_wrk.pay(cluster.info["portal_url"], cluster.info["database_url"], portal_pids,
                                   seconds=args.seconds, rounds=args.payment_rounds,
                                   before_round=lambda: pgbench_tps(PG_ADMIN_URL))
        finally:
            leftovers = cluster.stop()
            cluster.drop_databases()
    best = {k: max(v, key=lambda r: r["rps"]) for k, v in runs.items()}
    result = {"workers_per_replica": args.workers, "workers_per_portal_replica": Settings().portal_workers,
              "connections": args.connections, "seconds": args.seconds,
              "cluster_start_seconds": round(start_seconds, 1), "cpus": os.cpu_count(), "runs": runs,
              "load_average_after": os.getloadavg(),
              "one_replica": best["one"], "two_replicas_nginx": best["two"],
              "ratio": best["two"]["rps"] / best["one"]["rps"], "leftover_processes": leftovers,
              "payments": {**payments, "pgbench_tps": statistics.median(r["baseline"]["tps"]
                                                                        for r in payments["rounds"])}}
    result["payments"]["ratio"] = payments["payments_per_second"] / result["payments"]["pgbench_tps"]
    print(f"\n{'':44}{'decisions/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, key in (("one serving replica (direct)", "one"), ("two replicas behind nginx", "two")):
        r = best[key]
        print(f"{name:44}{r['rps']:12.0f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}{r['non_2xx']:9d}")
    print(f"ratio two/one: {result['ratio']:.2f}x  ({os.cpu_count()} CPUs shared by wrk, nginx and both replicas)")
    pay = result["payments"]
    print(f"payments/s through nginx over 2 portals: {pay['payments_per_second']:.1f}; "
          f"pgbench {pay['pgbench_tps']:.0f} tps; ratio {pay['ratio']:.3f}x (goal >= 0.3x); "
          f"CPU ms per payment {pay['cpu_ms_per_payment']}; "
          f"audit {'ok' if pay['ok'] else pay['problems']}")
    write_json("cluster", result)
    return 0 if not leftovers and pay["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
