"""Drift monitor: ``make monitor``.

Compares the features of recent ML decisions in the ledger (``credit_decisions``
rows with ``method = 'ml'``, whose ``inputs`` hold ``{"features": {...}}``)
with the training data of the champion (its stored feature reference), one
population stability index (PSI) per feature over the reference's quantile
bins plus a "missing" bin:

    PSI = sum over bins of (current share - reference share) * ln(current share / reference share)

Bands: < 0.1 stable, 0.1-0.25 watch, > 0.25 shifted. Prints a table and saves
it with a bar chart under ``var/monitoring/``.

    python -m pipeline.monitor [--days 30] [--limit 5000] [--version N]
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import JSON, DateTime, String, column, create_engine, select, table

import model_registry
from contracts.settings import var_dir
from model_registry.drift import NOISY_BELOW, STABLE, WATCH, psi_table
from pipeline.dataset import resolve_database_url


def decisions_features(decisions: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Return the feature values out of decisions' ``inputs`` (``{"features": {...}}``)."""
    records = []
    for inputs in decisions["inputs"]:
        feats = (inputs or {}).get("features") or {}
        records.append({name: feats.get(name) for name in features})
    return pd.DataFrame(records, columns=features).apply(pd.to_numeric, errors="coerce")


def psi_plot(table: pd.DataFrame, title: str = "") -> Figure:
    """Return a bar chart of PSI per feature with the 0.1 and 0.25 band lines."""
    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.subplots()
    colours = {"stable": "tab:green", "watch": "tab:orange", "shifted": "tab:red", "no data": "lightgrey"}
    values = table["psi"].fillna(0.0)
    ax.barh(table["feature"], values, color=[colours[b] for b in table["band"]])
    ax.axvline(STABLE, color="tab:orange", linestyle=":", label="0.1 watch")
    ax.axvline(WATCH, color="tab:red", linestyle=":", label="0.25 shifted")
    ax.set(xlabel="population stability index", title=title or "Feature drift vs training data",
           xlim=(0, max(0.3, float(values.max()) * 1.1)))
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


# --- I/O edge ---------------------------------------------------------------

# The ledger's table of decisions, as far as the monitor reads it (the portal owns the table).
CREDIT_DECISIONS = table("credit_decisions", column("method", String), column("model_version", String),
                         column("created_at", DateTime(timezone=True)), column("inputs", JSON))


def read_ml_decisions(database_url: str, *, since: datetime | None = None, limit: int = 5000,
                      model_version: str | None = None) -> pd.DataFrame:
    """Read the most recent ML decisions (newest first) from the ledger's ``credit_decisions`` table."""
    t = CREDIT_DECISIONS.c
    query = select(t.created_at, t.model_version, t.inputs).where(t.method == "ml")
    if since is not None:
        query = query.where(t.created_at >= since)
    if model_version is not None:
        query = query.where(t.model_version == str(model_version))
    query = query.order_by(t.created_at.desc()).limit(limit)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    return pd.DataFrame(rows, columns=["created_at", "model_version", "inputs"])


def main(argv: list[str] | None = None) -> int:
    """Print the PSI table of recent ML decisions against the champion's training data; save table and plot."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    p = argparse.ArgumentParser(prog="python -m pipeline.monitor", description=main.__doc__)
    p.add_argument("--database-url", help="ledger (default DATABASE_URL or var/credit.db)")
    p.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI or var/mlflow.db)")
    p.add_argument("--version", help="compare with this version's training data (default: the champion)")
    p.add_argument("--days", type=float, default=30, help="decisions of the last N days (default 30; 0: all)")
    p.add_argument("--limit", type=int, default=5000, help="at most this many recent decisions (default 5000)")
    p.add_argument("--out", type=Path, help="folder for the CSV and PNG (default var/monitoring/)")
    a = p.parse_args(argv)

    model = model_registry.load_version(a.version, tracking_uri=a.tracking_uri) if a.version else \
        model_registry.load_champion(tracking_uri=a.tracking_uri)
    if model is None:
        print("no credit-approval@champion yet: run `make train` first", file=sys.stderr)
        return 1
    since = datetime.now(UTC) - timedelta(days=a.days) if a.days else None
    decisions = read_ml_decisions(resolve_database_url(a.database_url), since=since, limit=a.limit)
    print(f"reference: credit-approval version {model.version} ({model.reference.get('rows', '?')} training rows)")
    if decisions.empty:
        print("no ML decisions in the ledger for this period: nothing to compare yet")
        return 0
    current = decisions_features(decisions, list(model.reference["distributions"]))
    table = psi_table(model.reference, current)
    print(f"current: {len(decisions)} ML decisions"
          + (f" since {since:%Y-%m-%d}" if since else "")
          + (f" (fewer than {NOISY_BELOW}: PSI is noisy)" if len(decisions) < NOISY_BELOW else ""))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = a.out or var_dir() / "monitoring"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    table.to_csv(out / f"psi-{stamp}.csv", index=False)
    figure = psi_plot(table, f"Drift vs version {model.version} ({len(decisions)} decisions)")
    figure.savefig(out / f"psi-{stamp}.png", dpi=100)
    print(f"saved {out / f'psi-{stamp}.csv'} and .png")
    worst = table.dropna(subset=["psi"]).sort_values("psi", ascending=False).head(1)
    if len(worst) and worst.iloc[0]["band"] != "stable":
        print(f"attention: {worst.iloc[0]['feature']} is {worst.iloc[0]['band']} (PSI {worst.iloc[0]['psi']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
