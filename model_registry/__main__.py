"""Command line over the registry: describe, promote, rollback, challenge, champion, ui."""
from __future__ import annotations

import argparse
import json
import os
import sys

from model_registry import registry, servable, store

METRIC_COLUMNS = [("test_auc", "AUC"), ("test_ece", "ECE"), ("test_brier", "Brier"), ("baseline_auc", "rule AUC"),
                  ("test_approval_rate", "approve"), ("test_bad_rate_approved", "bad|appr")]


def _with_interval(metrics: dict, key: str) -> str:
    if key not in metrics:
        return "-"
    if f"{key}_low" in metrics:
        return f"{metrics[key]:.3f} [{metrics[key + '_low']:.3f}, {metrics[key + '_high']:.3f}]"
    return f"{metrics[key]:.3f}"


def format_history(info: dict) -> list[str]:
    """Return the audit log (registrations, champion and challenger moves) as lines, oldest first."""
    if not info.get("events"):
        return ["history: no alias move recorded in the audit log (experiment registry-audit)"]
    lines = ["history of the champion alias (and the challenger's, and each registration; audit log, oldest first):"]
    for e in info["events"]:
        to = "-" if e["to_version"] in ("", "-") else f"v{e['to_version']}"
        move = f"v{e['from_version']} -> {to}" if e["from_version"] else f"-> {to}"
        lines.append(f"  {e['when']}  {e['event']:<8} {move:<12} by {e['who']}: {e['why']}"
                     + ("  [audit run deleted in MLflow]" if e["deleted"] else ""))
    if info.get("unaudited_move"):
        lines.append(f"  warning: {info['unaudited_move']}")
    return lines


def format_description(info: dict) -> str:
    """Return the versions as a text table."""
    lines = [f"{info['name']} in {info['tracking_uri']}"]
    if not info["versions"]:
        return lines[0] + "\n  no versions registered yet: run `make train`"
    lines.append(f"champion: version {info['champion']}" if info["champion"] else "champion: none")
    if info.get("challenger"):
        lines.append(f"challenger: version {info['challenger']} (scored in the shadow of the champion)")
    header = ["version", "aliases", "status", "kind", "thr", "rows", *(label for _, label in METRIC_COLUMNS), "created"]
    rows = []
    for v in info["versions"]:
        m = v["metrics"]
        rows.append([v["version"], ",".join(v["aliases"]) or "-", v["status"] or "-", v["kind"] or "-",
                     v["threshold"] or "-", v["data_rows"] or "-"]
                    + [_with_interval(m, k) if k == "test_auc" else f"{m[k]:.3f}" if k in m else "-"
                       for k, _ in METRIC_COLUMNS] + [v["created"][:16]])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    for v in info["versions"]:
        if v["tags"].get("gate_reasons"):
            now = " (promoted by hand since: see the history)" if v["status"] in ("champion", "former-champion",
                                                                                 "rolled-back") else ""
            lines.append(f"v{v['version']}: the gate kept it out{now}: {v['tags']['gate_reasons']}")
    lines += format_history(info)
    return "\n".join(lines)


def ui(uri: str, host: str, port: str) -> int:
    """Replace this process with ``mlflow ui`` on the store (artifacts next to it, as the pipeline writes them)."""
    store.configure(uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", port]
    root = store.artifact_root(uri)
    if root and root.startswith("file://"):
        command += ["--artifacts-destination", root]
    print(f"MLflow UI on http://{host}:{port} (store {uri}); Ctrl-C stops it", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    """Run one registry command."""
    parser = argparse.ArgumentParser(prog="python -m model_registry", description=__doc__)
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default MLFLOW_TRACKING_URI or var/mlflow.db)")
    parser.add_argument("--name", default=registry.MODEL_NAME, help="registered model name")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="list the versions, aliases and key metrics")
    d.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("promote", help="make a version the champion")
    p.add_argument("version")
    p.add_argument("--why", required=True, help="reason, appended to the audit log (required)")
    p.add_argument("--who", default=None, help="who promotes (default: the login name)")
    r = sub.add_parser("rollback", help="give the alias back to the previous champion")
    r.add_argument("--why", required=True, help="reason, appended to the audit log (required)")
    r.add_argument("--who", default=None, help="who rolls back (default: the login name)")
    ch = sub.add_parser("challenge", help="give a version the challenger alias (scored in the champion's shadow)")
    ch.add_argument("version", nargs="?", help="the version (omit it with --clear)")
    ch.add_argument("--clear", action="store_true", help="take the alias away: no challenger")
    ch.add_argument("--why", required=True, help="reason, appended to the audit log (required)")
    ch.add_argument("--who", default=None, help="who moves it (default: the login name)")
    sub.add_parser("champion", help="print the champion's version and URI")
    u = sub.add_parser("ui", help="start the MLflow UI on this store (runs, metrics, plots, registry)")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", default=os.environ.get("MLFLOW_UI_PORT", "5002"))
    args = parser.parse_args(argv)
    uri = store.tracking_uri(args.tracking_uri)
    if args.command == "challenge" and (args.version is None) != args.clear:
        parser.error("challenge needs a VERSION, or --clear without one")
    if args.command == "ui":
        return ui(uri, args.host, str(args.port))

    try:
        if args.command == "describe":
            info = registry.describe(args.name, uri)
            print(json.dumps(info, indent=2) if args.json else format_description(info))
        elif args.command == "promote":
            problem = servable.problem(args.version, args.name, uri)  # the gate's check: never alias what cannot serve
            if problem is not None:
                print(f"error: {args.name} version {args.version} cannot be served: {problem}", file=sys.stderr)
                return 1
            out = registry.promote(args.version, who=args.who, why=args.why, name=args.name, tracking_uri=uri)
            print(f"{args.name}@champion -> version {out['champion']}" if out["changed"]
                  else f"version {out['champion']} is already the champion")
        elif args.command == "challenge":
            out = registry.challenge(args.version, who=args.who, why=args.why, name=args.name, tracking_uri=uri)
            now = f"version {out['challenger']}" if out["challenger"] else "nobody"
            print(f"{args.name}@challenger -> {now}" + ("" if out["changed"] else " (unchanged)"))
        elif args.command == "rollback":
            out = registry.rollback(who=args.who, why=args.why, name=args.name, tracking_uri=uri)
            print(f"{args.name}@champion -> version {out['champion']} (was {out['previous']})")
        else:
            version = registry.champion_version(args.name, uri)
            if version is None:
                print(f"{args.name} has no champion", file=sys.stderr)
                return 1
            print(f"{registry.champion_uri(args.name)} = version {version}")
    except registry.RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
