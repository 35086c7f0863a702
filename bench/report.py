"""Run every benchmark and write docs/benchmarks.md (``make bench``).

Each benchmark prints its figures and the baseline it measured in the same run,
and leaves a JSON file in var/bench/; this collects them into one report with a
plot of each figure against its goal.

    python -m bench.report              # run everything (about 20 minutes), then write the report
    python -m bench.report --render     # only rewrite the report from the last JSON files
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from bench.results import bench_dir, rounds_text
from testing.servers import portal_workers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = bench_dir()  # where every benchmark writes its JSON (bench.results.write_json)
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks" / "goals.png"

RUNS = [
    ("ledger", [sys.executable, "-m", "bench.bench_ledger"]),
    ("train", [sys.executable, "-m", "bench.bench_train", "--json", str(RESULTS / "train.json")]),
    ("german", [sys.executable, "-m", "bench.bench_german", "--json", str(RESULTS / "german.json")]),
    ("serving", [sys.executable, "-m", "bench.bench_serving"]),
    ("shadow", [sys.executable, "-m", "bench.bench_shadow"]),
    ("scoring", [sys.executable, "-m", "bench.bench_scoring"]),
    ("cluster", [sys.executable, "-m", "bench.bench_cluster"]),
    ("breaker", [sys.executable, "-m", "bench.bench_breaker"]),
    ("storm", [sys.executable, "-m", "bench.storm"]),
    ("crash", [sys.executable, "-m", "bench.crash"]),
]


def run_all(names: list[str]) -> dict[str, dict]:
    """Run the benchmarks one after another; return how each went."""
    status = {}
    for name, command in RUNS:
        if names and name not in names:
            continue
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(command, cwd=ROOT)
        status[name] = {"exit": code, "seconds": round(time.perf_counter() - start, 1),
                        "command": "python " + " ".join(command[1:])}
    return status


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ceiling_why(serving: dict) -> str:
    """Say where a one-row /invocations spends the time the trivial endpoint does not (per worker, from the run)."""
    workers = serving.get("workers", 2)
    ours, ceiling = (workers / serving[k]["rps"] * 1e6 for k in ("ours", "flask_ceiling"))
    return (f"a one-row request holds a worker {ours:.0f} us against the trivial endpoint's {ceiling:.0f} us "
            f"({workers} workers / requests/s): the {ours - ceiling:.0f} us between are serving's own work, which a "
            "profile of the workers splits between the Prometheus counter and histogram updates (about 15 us under "
            "load), checking the row, the two compiled scoring calls and Flask's work for a view with hooks and "
            "error handlers, all with wrk and both workers on the same 2 CPUs; one 10 s round of each app on a busy "
            "machine swings the ratio by 0.3 either way (docs/serving.md, Performance)")


def goal_rows() -> list[dict]:
    """Every figure with a goal: name, value, baseline, ratio, goal and whether it was met."""
    rows = []
    ledger = _load("ledger")
    for r in (ledger or {}).get("results", []):
        rows.append({"name": r["name"], "value": f"{r['figure']} {r.get('unit', '')}".strip(),
                     "baseline": f"{r.get('baseline')} ({r.get('baseline_name', '')})",
                     "ratio": r.get("ratio"), "goal": r.get("goal") or "-", "met": r.get("met"),
                     "why": r.get("why")})
    serving = _load("serving")
    if serving:
        ours, theirs, ip = serving["ours"], serving["mlflow"], serving["in_process"]
        rows += [
            {"name": "serving requests/s, one-row /invocations, 8 connections", "value": f"{ours['rps']:.0f}/s",
             "baseline": f"{theirs['rps']:.0f}/s (mlflow models serve, same model, workers, wrk load)",
             "ratio": round(serving["throughput_ratio"], 1), "goal": ">= 10x",
             "met": serving["met"]["throughput_ratio"]},
            *([{"name": "serving requests/s against its framework's ceiling, one-row /invocations",
                "value": f"{ours['rps']:.0f}/s",
                "baseline": f"{serving['flask_ceiling']['rps']:.0f}/s (Flask parsing the body and answering a "
                            "constant, same gunicorn workers, same wrk load)",
                "ratio": round(serving["ceiling_ratio"], 2), "goal": ">= 0.8x",
                "met": serving["met"]["ceiling_ratio"], "why": _ceiling_why(serving)}]
              if "flask_ceiling" in serving else []),
            {"name": "serving p99 latency at 8 connections", "value": f"{ours['p99_ms']:.2f} ms",
             "baseline": f"{theirs['p99_ms']:.2f} ms (mlflow models serve)",
             "ratio": round(theirs["p99_ms"] / ours["p99_ms"], 1), "goal": "<= 5 ms", "met": serving["met"]["p99_ms"],
             "why": serving.get("why", {}).get("p99_ms")},
            {"name": f"in-process decision per row (score + reasons, {ip['model_kind']})",
             "value": f"{ip['decision_us']:.0f} us",
             "baseline": f"{ip['sklearn_predict_proba_us']:.0f} us (sklearn predict_proba of one row, score only)",
             "ratio": round(ip["sklearn_predict_proba_us"] / ip["decision_us"], 1), "goal": "<= 25 us",
             "met": serving["met"]["decision_us"], "why": serving.get("why", {}).get("decision_us")},
            {"name": "in-process decisions in a batch of 10,000, per row",
             "value": f"{ip.get('decision_us_in_batch_of_10k', float('nan')):.0f} us", "baseline": "-", "ratio": None,
             "goal": "(same goal, amortised)", "met": None},
            {"name": "batch scoring of 1,000,000 rows", "value": f"{ip['batch_1m_s']:.2f} s", "baseline": "-",
             "ratio": None, "goal": "<= 1 s", "met": serving["met"]["batch_1m_s"]},
        ]
    rows += shadow_rows(_load("shadow"))
    scoring = _load("scoring")
    for kind, r in ((scoring or {}).get("kinds") or {}).items():
        name = f"gradient boosting, {r.get('trees')} trees" if kind == "hgb" else "logistic regression"
        exact = "bit for bit" if r["bit_for_bit"] else "to 1e-12"
        rows += [
            {"name": f"one decision in-process, {name} ({exact}; compiled in {r['compile_s']:.2f} s at load)",
             "value": f"{r['decision_us']:.1f} us",
             "baseline": f"{r['sklearn_one_row_us']:.0f} us (predict_proba of one row, score only)"
             + (f"; {r['numpy_decision_us']:.0f} us with the numpy fallback" if "numpy_decision_us" in r else ""),
             "ratio": round(r["sklearn_one_row_us"] / r["decision_us"], 1), "goal": "<= 25 us",
             "met": r["met"]["decision_us"], "why": r.get("why", {}).get("decision_us")},
            {"name": f"1,000,000 rows in-process, {name}", "value": f"{r['batch_1m_s']:.2f} s",
             "baseline": f"{r['sklearn_batch_1m_s']:.2f} s (predict_proba)",
             "ratio": round(r["sklearn_batch_1m_s"] / r["batch_1m_s"], 1), "goal": "<= 1 s",
             "met": r["met"]["batch_1m_s"], "why": r.get("why", {}).get("batch_1m_s")},
        ]
    cluster = _load("cluster")
    if cluster:
        one, two = cluster["one_replica"], cluster["two_replicas_nginx"]
        rows.append({"name": f"serving decisions/s, two replicas behind nginx ({cluster['connections']} connections)",
                     "value": f"{two['rps']:.0f}/s (p99 {two['p99_ms']:.1f} ms)",
                     "baseline": f"{one['rps']:.0f}/s (one replica, p99 {one['p99_ms']:.1f} ms; "
                                 f"{cluster['cpus']} CPUs shared by all)",
                     "ratio": round(cluster["ratio"], 2), "goal": "-", "met": None})
        pay = cluster.get("payments")
        if pay:
            cpu = ", ".join(f"{part} {ms:.1f}" for part, ms in pay["cpu_ms_per_payment"].items())
            workers = cluster.get("workers_per_portal_replica", cluster["workers_per_replica"])
            rows.append({"name": "payments/s over HTTP, make cluster (nginx over 2 portals of "
                                 f"{portal_workers('postgresql://', workers, 8)}, postgres)",
                         "value": f"{pay['payments_per_second']:.1f} payments/s",
                         "baseline": f"{pay['pgbench_tps']:.0f} (pgbench TPC-B-like tps, same server, median of "
                                     f"{len(pay.get('rounds', [])) or 1} runs, each before a round of payments)",
                         "ratio": round(pay["ratio"], 3), "goal": ">= 0.3x", "met": pay["ratio"] >= 0.3,
                         "why": None if pay["ratio"] >= 0.3 else
                         f"CPU per payment (ms): {cpu}, and nginx besides; the portals, nginx, wrk and PostgreSQL "
                         "share the 2 CPUs, so a second portal adds no CPU (see the make run row)"
                         + (f". Rounds, payments/s vs the pgbench tps just before: {rounds_text(pay['rounds'])}"
                            if pay.get("rounds") else "")})
    breaker = _load("breaker")
    if breaker:
        base = breaker["results"]["baseline"]
        for phase, label in (("breaker_off", "circuit breaker off"), ("breaker_on", "circuit breaker on")):
            r = breaker["results"][phase]
            rows.append({"name": f"other pages' p99 while serving hangs, {breaker['ml_clients']} ML requests "
                                 f"waiting ({label})",
                         "value": f"{r['p99_ms']:.1f} ms", "baseline": f"{base['p99_ms']:.1f} ms (nothing hanging)",
                         "ratio": round(r["p99_ms"] / base["p99_ms"], 2),
                         "goal": f"< {breaker['goal_p99_ms']:g} ms", "met": r["p99_ms"] < breaker["goal_p99_ms"]})
    german = _load("german")
    if german:
        found = german["summary"]
        gap, low, high = found["pipeline_minus_plain"]
        rows.append({"name": "German credit table (1,000 rows): pipeline's 5-fold CV AUC minus a plain one-hot "
                             "logistic regression's, same folds",
                     "value": f"{gap:+.4f} [{low:+.4f}, {high:+.4f}] (pipeline {found['pipeline'][0]:.4f})",
                     "baseline": f"{found['plain'][0]:.4f} (plain one-hot logistic regression)", "ratio": None,
                     "goal": f">= -{german['target_gap']}", "met": german["met"]})
    for r in _load("train") or []:
        rows.append({"name": f"training: {r['name']}", "value": r["value"], "baseline": "-", "ratio": None,
                     "goal": r["goal"], "met": {"met": True, "MISSED": False}.get(r["result"])})
    return rows


def shadow_rows(shadow: dict | None) -> list[dict]:
    """The throughput of /v1/decisions with the challenger scored in the shadow, against without (same run)."""
    if not shadow:
        return []
    on, off, ip = shadow["on"], shadow["off"], shadow["in_process"]
    return [{"name": f"serving decisions/s with shadow scoring on, one-row /v1/decisions, 8 connections "
                     f"(challenger v{shadow['challenger']})",
             "value": f"{on['rps']:.0f}/s (p99 {on['p99_ms']:.1f} ms; +{ip['shadow_us']:.1f} us per decision "
                      "in-process)",
             "baseline": f"{off['rps']:.0f}/s (shadow off, p99 {off['p99_ms']:.1f} ms; medians of "
                         f"{shadow['rounds']} alternating runs)",
             "ratio": round(shadow["ratio"], 2), "goal": f">= {shadow['goal']}x", "met": shadow["met"]}]


def storm_rows(name: str) -> list[str]:
    """One line per database of the storm or crash run."""
    data = _load(name)
    lines = []
    for db, r in ((data or {}).get("results") or {}).items():
        matching = r.get("replays_matching_first_answer", r.get("replays_matching", "?"))
        replays = f"{matching}/{r.get('replays_answered', '?')}"
        payments = f"{r.get('payments_accepted')} accepted, {r.get('payments_in_ledger')} in the ledger"
        lines.append(f"| {name} | {db} | {payments} "
                     f"| {r.get('payments_per_second', '-')} | {r.get('http_5xx', '-')} | {replays} | "
                     f"{'yes' if r.get('ok') else 'NO: ' + '; '.join(r.get('problems', [])[:3])} |")
    return lines


def plot(rows: list[dict]) -> None:
    """Draw each figure with a goal as met / missed (the ratio where there is one)."""

    shown = [r for r in rows if r["met"] is not None]
    if not shown:
        return
    fig = Figure(figsize=(8, 0.35 * len(shown) + 1))
    ax = fig.subplots()
    ax.barh([r["name"][:60] for r in shown], [1 for _ in shown],
            color=["tab:green" if r["met"] else "tab:red" for r in shown])
    for i, r in enumerate(shown):
        ax.text(0.02, i, f"{r['value']}  (goal {r['goal']})", va="center", color="white", fontsize=8)
    ax.set_xticks([])
    ax.invert_yaxis()
    ax.set_title("Goals met (green) and missed (red), last run")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=90)


def render(status: dict) -> str:
    """Write the report and return its text."""
    rows = goal_rows()
    plot(rows)
    load = os.getloadavg()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench.report`); every figure comes with a baseline measured in the",
        "same run on the same machine. Absolute numbers move with the machine's load: this workplace's",
        "machines have 2 shared vCPUs, and the load generator runs on the same cores as the servers.",
        "",
        f"- when: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- load average when the report was written: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        "",
        "## Figures against goals",
        "",
        f"![goals]({PLOT.relative_to(DOC.parent)})",
        "",
        "| figure | value | baseline (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']}x"
        lines.append(f"| {r['name']} | {r['value']} | {r['baseline']} | {ratio} | {r['goal']} | {met} |")
    explained = [r for r in rows if r["met"] is False and r.get("why")]
    if explained:
        lines += ["", "Misses explained:", ""] + [f"- {r['name']}: {r['why']}" for r in explained]
    lines += ["", "## Storm and crash", "",
              "| run | database | payments | payments/s | 5xx (503 + Retry-After while PostgreSQL restarts) "
              "| replays = first answer | invariants hold |",
              "|---|---|---|---|---|---|---|"]
    lines += storm_rows("storm") + storm_rows("crash")
    lines += ["", "## Commands", ""]
    for name, command in RUNS:
        how = status.get(name)
        note = f" (exit {how['exit']}, {how['seconds']} s)" if how else ""
        lines.append(f"- {name}: `python {' '.join(command[1:])}`{note}")
    lines += ["", "Method and discussion of each part: [benchmarks_ledger.md](benchmarks_ledger.md) (ledger, storm,",
              "crash), [serving.md](serving.md) (decision service), [pipeline.md](pipeline.md) (training).", ""]
    text = "\n".join(lines)
    DOC.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (unless --render) and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", action="store_true", help="only rewrite the report from var/bench/*.json")
    parser.add_argument("--only", nargs="*", default=[], choices=[name for name, _ in RUNS])
    args = parser.parse_args(argv)
    status = {} if args.render else run_all(args.only)
    print(render(status))
    return 0 if all(s["exit"] == 0 for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
