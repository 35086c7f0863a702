"""Shadow scoring's cost: serving throughput with the challenger scored in the shadow, against without, same run.

Two decision services (gunicorn, the same workers and token) load the same
store copy, one with ``SERVING_SHADOW=off`` and one with it on; wrk sends both
the same one-row ``POST /v1/decisions`` (the endpoint that scores the shadow),
in turns (off, on, off, on, ...) so that the machine's load hits both alike;
the medians are compared. In-process: one decision with and without the shadow
score. The challenger is the store's ``@challenger`` if it has one, else a
copy of the champion registered in the store copy (the same kind of model:
the shadow costs one more score of it). The store itself is never changed.

    python -m bench.bench_shadow [--tracking-uri URI] [--seconds 8] [--rounds 3] [--workers 2]

Needs a champion in a SQLite store (``make model``) and wrk. Writes var/bench/shadow.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench.bench_serving import ROW
from bench.results import write_json
from bench.wrk import alternate, champion_store
from model_registry import registry
from serving import shadow
from serving.decisions import decide
from serving.holder import ModelHolder
from testing.servers import Gunicorn

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"rows": [ROW]})
GOAL = 0.8  # throughput with the shadow on, as a share of without
TOKEN = "bench-shadow-token"


def store_with_challenger(uri: str, folder: Path) -> tuple[str, str]:
    """Copy a SQLite store and make sure the copy has a challenger; return (copy's URI, challenger version)."""
    if not uri.startswith("sqlite:///"):
        raise SystemExit("bench_shadow copies the store: it needs a SQLite MLflow store (sqlite:///...)")
    shutil.copy(uri.removeprefix("sqlite:///"), folder / "mlflow.db")
    copy = f"sqlite:///{folder / 'mlflow.db'}"
    version = registry.champion_version(tracking_uri=copy, alias=registry.CHALLENGER)
    if version is None:
        champion = registry.champion_version(tracking_uri=copy)
        source = registry.client(copy).get_model_version(registry.MODEL_NAME, champion).source
        version = registry.register(source, tracking_uri=copy, tags={"bench": "shadow"})
        registry.challenge(version, who="bench_shadow", why="a copy of the champion, to time shadow scoring",
                           tracking_uri=copy)
    return copy, version


def in_process(uri: str) -> dict:
    """Time one decision alone, and one decision plus its shadow score, per row."""
    holders = []
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        h = ModelHolder(lambda a=alias: registry.load_champion(tracking_uri=uri, alias=a),
                        lambda a=alias: registry.champion_version(tracking_uri=uri, alias=a))
        h.refresh()
        holders.append(h)
    champion, challenger = holders[0].live, holders[1]
    x = np.array([[ROW[f] for f in champion.features]])
    year = date.today().year

    def plain():
        decide(champion, x, year)

    def with_shadow():
        decide(champion, x, year)
        shadow.score(challenger, champion, [ROW], x, 100_000)

    out = {}
    for name, call in (("decision_us", plain), ("decision_with_shadow_us", with_shadow)):
        for _ in range(200):
            call()
        times = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(2000):
                call()
            times.append((time.perf_counter() - start) / 2000 * 1e6)
        out[name] = statistics.median(times)
    out["shadow_us"] = out["decision_with_shadow_us"] - out["decision_us"]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both services in turns under the same load and print the throughput ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    uri = champion_store(args.tracking_uri)
    if uri is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        copy, challenger = store_with_challenger(uri, Path(tmp))
        print(f"challenger: version {challenger} (store copy {copy})", flush=True)
        results: dict = {"workers": args.workers, "connections": 8, "seconds": args.seconds, "rounds": args.rounds,
                         "challenger": challenger, "in_process": in_process(copy)}
        env = {"MLFLOW_TRACKING_URI": copy, "MODEL_POLL_SECONDS": "3600", "SERVING_TOKEN": TOKEN}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with (Gunicorn("serving:create_app()", {**env, "SERVING_SHADOW": "off"}, workers=args.workers,
                       ready_path="/ready") as off,
              Gunicorn("serving:create_app()", {**env, "SERVING_SHADOW": "auto"}, workers=args.workers,
                       ready_path="/ready") as on):
            runs = alternate({"off": off.url + "/v1/decisions", "on": on.url + "/v1/decisions"}, BODY,
                             args.seconds, args.rounds, headers)
    for label, figures in runs.items():
        results[label] = {"rps": statistics.median(r["rps"] for r in figures),
                          "p50_ms": statistics.median(r["p50_ms"] for r in figures),
                          "p99_ms": statistics.median(r["p99_ms"] for r in figures),
                          "non_2xx": sum(r["non_2xx"] for r in figures), "runs": figures}
    results["ratio"] = results["on"]["rps"] / results["off"]["rps"]
    results["goal"] = GOAL
    results["met"] = results["ratio"] >= GOAL and results["on"]["non_2xx"] == 0
    on, off, ip = results["on"], results["off"], results["in_process"]
    print(f"\n{'':34}{'shadow on':>12}{'shadow off':>12}")
    print(f"{'decisions/s, one row, 8 conns':34}{on['rps']:12.0f}{off['rps']:12.0f}   ratio {results['ratio']:.2f}x "
          f"(goal >= {GOAL}x)")
    print(f"{'p50 / p99 latency, ms':34}{on['p50_ms']:6.2f}/{on['p99_ms']:5.2f}"
          f"{off['p50_ms']:6.2f}/{off['p99_ms']:5.2f}")
    print(f"in-process: decision {ip['decision_us']:.1f} us, with the shadow score "
          f"{ip['decision_with_shadow_us']:.1f} us (+{ip['shadow_us']:.1f} us)")
    write_json("shadow", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
