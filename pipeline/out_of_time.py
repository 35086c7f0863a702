"""The out-of-time check: train on the earlier cohorts, test on the latest one.

A cohort is the customers of one decision year (``DatasetSpec.date_column``).
When the data holds more than one, the chosen kind of model is fitted again
on the development rows of the earlier cohorts only and scored on the latest
cohort's held-out rows, next to the registered model (which saw development
rows of every cohort) on the same rows: the paired interval of the AUC
difference says what training on older customers alone costs. With one
cohort (the demo ledger) there is nothing to check, and the run says so.
"""
from __future__ import annotations

import pandas as pd

from contracts.decisions import DEFAULT_THRESHOLD
from pipeline import intervals as iv
from pipeline.dataset import DEFAULT_SPEC, DatasetSpec, feature_matrix, labels
from pipeline.evaluate import cpu_threads, scorer_statistics
from pipeline.train import Splits, TrainParams, develop, fit_calibrated

MIN_ROWS = 100  # rows each side needs, of both classes


def cohorts(frame: pd.DataFrame, spec: DatasetSpec) -> list[int]:
    """Return the decision years in the data, oldest first (empty without a date column)."""
    if not spec.date_column or spec.date_column not in frame.columns:
        return []
    return sorted(int(v) for v in pd.to_numeric(frame[spec.date_column], errors="coerce").dropna().unique())


def _year(frame: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    return pd.to_numeric(frame[spec.date_column], errors="coerce")


def out_of_time(model, kind: str, splits: Splits, spec: DatasetSpec = DEFAULT_SPEC,
                params: TrainParams | None = None, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Return the out-of-time metrics (``oot_*``) or ``{"oot_note": why not}``."""
    params = params or TrainParams()
    years = cohorts(splits.development, spec)
    if not years:
        return {"oot_note": "no date column in the spec: nothing to test"}
    if len(years) < 2:
        return {"oot_note": f"one cohort only (decision year {years[0]}): nothing to test"}
    latest = years[-1]
    earlier = splits.development[_year(splits.development, spec) < latest]
    test = splits.test[_year(splits.test, spec) == latest]
    for rows in (earlier, test):
        y = labels(rows, spec)
        if len(rows) < MIN_ROWS or y.min() == y.max():
            return {"oot_note": f"too few rows to test decision year {latest} against {years[0]}-{years[-2]}"}
    older = fit_calibrated(kind, develop(earlier, test, spec, params), spec, params)
    y, x = labels(test, spec), feature_matrix(test, spec)
    with cpu_threads(len(test)):
        scores = {"in_time": model.predict_proba(x)[:, 1], "oot": older.predict_proba(x)[:, 1]}
    statistics = {f"{name}:{m}": f for name, p in scores.items()
                  for m, f in scorer_statistics(y, p, threshold, ("auc", "ece")).items()}
    result = iv.bootstrap(statistics, len(y))
    found = iv.intervals(result)
    drop = iv.paired(result, "in_time:auc", "oot:auc")
    metrics = {"oot_train_rows": float(len(earlier)), "oot_test_rows": float(len(test)),
               "oot_first_year": float(years[0]), "oot_test_year": float(latest)}
    for key, value in (("oot_auc", found["oot:auc"]), ("oot_in_time_auc", found["in_time:auc"]),
                       ("oot_ece", found["oot:ece"]), ("oot_auc_drop", drop)):
        metrics.update({key: value.estimate, f"{key}_low": value.low, f"{key}_high": value.high})
    metrics["oot_note"] = (f"trained on decision years {years[0]}-{years[-2]} ({len(earlier):,} rows), tested on "
                           f"{latest} ({len(test):,} held-out rows): AUC {found['oot:auc'].text()} vs "
                           f"{found['in_time:auc'].text()} in time; drop {drop.text()}")
    return metrics
