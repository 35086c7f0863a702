"""Drift monitor: ``make monitor``.

Reads the recent ML decisions of the ledger (``credit_decisions`` rows with
``method = 'ml'``: customer, model version, score, approval and the features in
``inputs``), keeps **one decision per customer and model version** (the latest:
a customer who asks five times is one customer, not five), and compares each
model version's decisions with **that version's** training data (its stored
feature reference): one population stability index per feature and one for the
scores, over the reference's decile bins plus a missing bin.

The bands depend on the number of decisions (``model_registry.drift``): a PSI
is flagged only above what samples of that size drawn from the training data
itself reach 5 % of the time, and nothing is flagged below ``NOISY_BELOW``
(100) decisions of a version. The exit code tells a scheduler what to do: 0
nothing shifted, 1 something shifted (the alert), 2 nothing to compare with
(no model, no ledger).

With ``--outcomes`` (a CSV of ``customer_id,result``, an ``outcomes.parquet``
file or an export folder such as the simulator's) it also reports, per
version, the realised AUC, the bad rate among the approved, and the
calibration (mean score vs good rate, ECE), each with its bootstrap interval.

    python -m pipeline.monitor [--days 30] [--limit 5000] [--version N] [--outcomes FILE]
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, String, column, create_engine, select, table

import model_registry
from contracts import ledger_export
from contracts.settings import var_dir
from model_registry.drift import NOISY_BELOW, STABLE, WATCH, psi_table, score_drift
from pipeline import evaluate as ev
from pipeline.dataset import resolve_database_url
from pipeline.features import ID, TARGET

OK, SHIFTED, CANNOT = 0, 1, 2


def decisions_features(decisions: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Return the feature values out of decisions' ``inputs`` (``{"features": {...}}``)."""
    records = []
    for inputs in decisions["inputs"]:
        feats = (inputs or {}).get("features") or {}
        records.append({name: feats.get(name) for name in features})
    return pd.DataFrame(records, columns=features).apply(pd.to_numeric, errors="coerce")


def latest_per_customer(decisions: pd.DataFrame) -> pd.DataFrame:
    """Return each customer's latest decision per model version (repeated requests count once)."""
    ordered = decisions.sort_values("created_at", kind="stable")
    return ordered.drop_duplicates(["model_version", "customer_id"], keep="last").reset_index(drop=True)


def drift_table(reference: dict, decisions: pd.DataFrame) -> pd.DataFrame:
    """Return the PSI rows of one version's decisions: each feature, then the score (when the reference has it)."""
    features = list(reference["distributions"])
    table = psi_table(reference, decisions_features(decisions, features))
    scores = pd.to_numeric(decisions["score"], errors="coerce").dropna().to_numpy(dtype=float)
    row = score_drift(reference, scores)
    if row is not None:
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    if len(decisions) < NOISY_BELOW:
        table["band"] = f"too few (< {NOISY_BELOW})"
    return table


def shifted(table: pd.DataFrame) -> list[str]:
    """Return the features (and ``score``) whose band is shifted."""
    return table.loc[table["band"] == "shifted", "feature"].tolist()


def realised(decisions: pd.DataFrame, outcomes: pd.DataFrame, threshold: float) -> dict | None:
    """Return realised AUC, bad rate among the approved and calibration (with intervals) of decisions with outcomes."""
    joined = decisions.merge(outcomes[[ID, TARGET]], left_on="customer_id", right_on=ID, how="inner")
    joined = joined.dropna(subset=["score", TARGET])
    y = joined[TARGET].astype(int).to_numpy()
    if len(joined) < 2 or y.min() == y.max():
        return {"rows": len(joined)} if len(joined) else None
    measured = ev.measure(y, {"model": joined["score"].to_numpy(dtype=float)}, threshold)
    found = measured.intervals["model"]
    return {"rows": len(joined), "good_rate": float(y.mean()), "mean_score": float(joined["score"].mean()),
            "auc": found["auc"], "bad_rate_approved": found["bad_rate_approved"], "ece": found["ece"],
            "approval_rate": found["approval_rate"], "ece_noise": measured.metrics["test_ece_noise"]}


def psi_plot(table: pd.DataFrame, title: str = "") -> Figure:
    """Return a bar chart of PSI per feature with the 0.1 and 0.25 band lines."""
    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.subplots()
    colours = {"stable": "tab:green", "watch": "tab:orange", "shifted": "tab:red", "no data": "lightgrey"}
    values = table["psi"].fillna(0.0)
    ax.barh(table["feature"], values, color=[colours.get(b, "lightgrey") for b in table["band"]])
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
CREDIT_DECISIONS = table("credit_decisions", column("request_id", String), column("customer_id", BigInteger),
                         column("method", String), column("model_version", String), column("score", Float),
                         column("approved", Boolean), column("created_at", DateTime(timezone=True)),
                         column("inputs", JSON))
COLUMNS = ["request_id", "customer_id", "model_version", "score", "approved", "created_at", "inputs"]


def read_ml_decisions(database_url: str, *, since: datetime | None = None, limit: int = 5000,
                      model_version: str | None = None) -> pd.DataFrame:
    """Read the most recent ML decisions (newest first) from the ledger's ``credit_decisions`` table."""
    t = CREDIT_DECISIONS.c
    query = select(*(getattr(t, name) for name in COLUMNS)).where(t.method == "ml")
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
    return pd.DataFrame(rows, columns=COLUMNS)


def read_outcomes(path: str | Path) -> pd.DataFrame:
    """Read realised outcomes: a CSV or Parquet file of customer_id and result, or an export folder."""
    path = Path(path)
    if path.is_dir():
        frame = ledger_export.read(path).get("outcomes")
        if frame is None:
            raise FileNotFoundError(f"{path} holds no outcomes.parquet")
    elif path.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path)
    missing = {ID, TARGET} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: the outcomes need the columns {ID} and {TARGET} (missing {sorted(missing)})")
    return frame


def _print_realised(found: dict | None, out) -> None:
    if not found:
        out("  realised outcomes: none of these customers has one yet")
    elif "auc" not in found:
        out(f"  realised outcomes: {found['rows']} customers, one class only: nothing to measure")
    else:
        out(f"  realised outcomes of {found['rows']} customers: good rate {found['good_rate']:.3f} vs mean score "
            f"{found['mean_score']:.3f}; AUC {found['auc'].text(3)}; approved {found['approval_rate'].text(3)} "
            f"with bad rate {found['bad_rate_approved'].text(3)}; ECE {found['ece'].text(3)} "
            f"(a calibrated model exceeds {found['ece_noise']:.3f} 5 % of the time on these rows)")


def main(argv: list[str] | None = None, out=print) -> int:
    """Compare recent ML decisions with their versions' training data; exit 1 when something shifted."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    p = argparse.ArgumentParser(prog="python -m pipeline.monitor", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", help="ledger (default DATABASE_URL or var/credit.db)")
    p.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI or var/mlflow.db)")
    p.add_argument("--version", help="only the decisions of this model version")
    p.add_argument("--days", type=float, default=30, help="decisions of the last N days (default 30; 0: all)")
    p.add_argument("--limit", type=int, default=5000, help="at most this many recent decisions (default 5000)")
    p.add_argument("--outcomes", help="realised outcomes: CSV (customer_id,result), Parquet, or an export folder")
    p.add_argument("--out", type=Path, help="folder for the CSV and PNG (default var/monitoring/)")
    a = p.parse_args(argv)

    since = datetime.now(UTC) - timedelta(days=a.days) if a.days else None
    try:
        decisions = read_ml_decisions(resolve_database_url(a.database_url), since=since, limit=a.limit,
                                      model_version=a.version)
        outcomes = read_outcomes(a.outcomes) if a.outcomes else None
    except Exception as exc:  # noqa: BLE001 - any unreadable ledger or outcomes file: say so, exit 2
        print(f"cannot monitor: {exc}", file=sys.stderr)
        return CANNOT
    if decisions.empty:
        out("no ML decisions in the ledger for this period: nothing to compare yet")
        return OK
    unique = latest_per_customer(decisions)
    out(f"{len(decisions)} ML decisions" + (f" since {since:%Y-%m-%d}" if since else "")
        + f": {len(unique)} after counting each customer once per model version")

    tables, alerts = [], {}
    for version, group in unique.groupby("model_version", sort=True):
        try:
            model = model_registry.load_version(version, tracking_uri=a.tracking_uri)
        except Exception as exc:  # noqa: BLE001 - a deleted version must not hide the others
            out(f"\nversion {version}: {len(group)} customers; cannot load the version ({exc.__class__.__name__})")
            continue
        table = drift_table(model.reference, group)
        table.insert(0, "model_version", str(version))
        tables.append(table)
        out(f"\nversion {version}: {len(group)} customers vs {model.reference.get('rows', '?')} training rows"
            + (f" (fewer than {NOISY_BELOW}: nothing is flagged)" if len(group) < NOISY_BELOW else ""))
        out(table.drop(columns=["model_version"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if shifted(table):
            alerts[str(version)] = shifted(table)
        if outcomes is not None:
            _print_realised(realised(group, outcomes, model.threshold), out)
    if not tables:
        print("no model version of these decisions could be loaded", file=sys.stderr)
        return CANNOT

    folder = a.out or var_dir() / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    everything = pd.concat(tables, ignore_index=True)
    everything.to_csv(folder / f"psi-{stamp}.csv", index=False)
    latest = tables[-1]
    psi_plot(latest, f"Drift vs version {latest['model_version'].iloc[0]} "
             f"({int(latest['rows'].max())} customers)").savefig(folder / f"psi-{stamp}.png", dpi=100)
    out(f"\nsaved {folder / f'psi-{stamp}.csv'} and .png")
    if alerts:
        out("SHIFTED: " + "; ".join(f"version {v}: {', '.join(names)}" for v, names in alerts.items()))
        return SHIFTED
    out("nothing shifted")
    return OK


if __name__ == "__main__":
    sys.exit(main())
