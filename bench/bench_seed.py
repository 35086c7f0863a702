"""Time simulating and importing the demo ledger (default 100,000 customers, 6,000,000 dues).

    .venv/bin/python bench/bench_seed.py [N] [--postgres ADMIN_URL]

Runs into a temporary SQLite file (migrated with Alembic), or into a throwaway
PostgreSQL database created through ADMIN_URL (e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/test) and dropped afterwards.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/bench_seed.py` as well as `python -m bench.bench_seed`
    sys.path.insert(0, str(ROOT))

from pipeline.simulate import simulate  # noqa: E402
from portal.db import Database  # noqa: E402
from portal.importer import import_ledger  # noqa: E402
from testing.databases import PG_ADMIN_URL, throwaway_database  # noqa: E402

TARGET_SECONDS = 60.0  # simulate + import of 100,000 customers on SQLite


def run(url: str, n: int) -> dict:
    """Simulate n customers and import them into the migrated ledger at url."""
    db = Database(url)
    try:
        started = time.perf_counter()
        data = simulate(n)
        simulated = time.perf_counter() - started
        report = import_ledger(db, data, demo_password=None, progress=True)
        total = time.perf_counter() - started
    finally:
        db.dispose()
    rows = report["customers"] + report["dues"] + report["outcomes"]
    return {"simulate_s": simulated, "validate_s": report["validate_seconds"], "write_s": report["write_seconds"],
            "import_s": report["seconds"], "total_s": total, "rows": rows, "rows_per_s": rows / report["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("customers", nargs="?", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="benchmark PostgreSQL instead of SQLite")
    args = parser.parse_args()
    kind = "postgres" if args.postgres else "sqlite"
    with throwaway_database(kind, "bench_seed", migrated=True, admin_url=args.postgres or PG_ADMIN_URL) as url:
        result = run(url, args.customers)
    engine = "postgresql" if args.postgres else "sqlite"
    print(f"{engine}: {args.customers:,} customers, {result['rows']:,} rows")
    print(f"  simulate {result['simulate_s']:.2f} s, validate {result['validate_s']:.2f} s, "
          f"write {result['write_s']:.2f} s")
    print(f"  import {result['import_s']:.2f} s ({result['rows_per_s']:,.0f} rows/s), "
          f"simulate + import {result['total_s']:.2f} s")
    if engine == "sqlite" and args.customers == 100_000:
        print(f"  target {TARGET_SECONDS:.0f} s: ratio {result['total_s'] / TARGET_SECONDS:.2f} "
              f"({'ok' if result['total_s'] <= TARGET_SECONDS else 'TOO SLOW'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
