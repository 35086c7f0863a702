"""Where benchmarks leave their figures: var/bench/<name>.json, with the machine they ran on."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from contracts.settings import var_dir


def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of values, nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def bench_dir() -> Path:
    """Return var/bench/ (where the report generator collects the JSON results)."""
    path = var_dir() / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(name: str, data: dict) -> Path:
    """Write one benchmark's results to var/bench/<name>.json."""
    path = bench_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def machine() -> dict:
    """Describe this machine in a few fields."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform()}


def rounds_text(rounds: list[dict]) -> str:
    """Say each round's payments/s against the baseline's tps just before it (``bench.pay_wrk.pay``'s rounds)."""
    return "; ".join(f"{r['payments_per_second']:.0f} vs {r['baseline']['tps']:,.0f} "
                     f"({r['payments_per_second'] / r['baseline']['tps']:.3f}x)" for r in rounds)
