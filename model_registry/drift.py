"""Drift of live inputs against the training data a version recorded (its feature reference).

Each version stores, per numeric feature, the training data's quantile cut
points and the share of rows in each bin plus the missing share
(``feature_reference.json``, built by ``pipeline.reference``). Recent inputs
are binned on the same cuts and compared with the population stability index:

    PSI = sum over bins of (current share - reference share) * ln(current share / reference share)

Bands: < 0.1 stable, 0.1-0.25 watch, > 0.25 shifted. Used by ``make monitor``
(pipeline) and by serving's ``POST /v1/drift`` (the manager's model page).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
STABLE, WATCH = 0.1, 0.25
EPSILON = 1e-4  # floor for empty bins, so a bin seen on one side only counts without dividing by zero
NOISY_BELOW = 100  # fewer inputs than this say nothing about a population


def quantile_cuts(values: np.ndarray, quantiles: list[float] = QUANTILES) -> list[float]:
    """Return the distinct quantile cut points of the non-missing values."""
    values = values[~np.isnan(values)]
    if not len(values):
        return []
    return sorted({float(v) for v in np.quantile(values, quantiles)})


def bin_fractions(values: np.ndarray, cuts: list[float]) -> tuple[list[float], float]:
    """Return the share of non-missing values in each bin (right-closed at the cuts) and the missing share."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    present = values[~missing]
    counts = np.bincount(np.searchsorted(np.asarray(cuts), present, side="left"), minlength=len(cuts) + 1)
    total = max(len(values), 1)
    return [float(c / total) for c in counts], float(missing.sum() / total)


def psi(expected: list[float], actual: list[float]) -> float:
    """Return the population stability index of two distributions over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def band(value: float) -> str:
    """Return the usual reading of a PSI value: stable, watch or shifted."""
    if np.isnan(value):
        return "no data"
    return "stable" if value < STABLE else "watch" if value <= WATCH else "shifted"


def psi_table(reference: dict, current: pd.DataFrame) -> pd.DataFrame:
    """Return one row per reference feature: PSI, band, and the reference and current means and missing shares."""
    rows = []
    for name, dist in reference["distributions"].items():
        values = (pd.to_numeric(current[name], errors="coerce").to_numpy(dtype=float) if name in current
                  else np.array([]))
        if len(values):
            fractions, missing = bin_fractions(values, dist["cuts"])
            value = psi(dist["fractions"] + [dist["missing_fraction"]], fractions + [missing])
            mean = float(np.nanmean(values)) if (~np.isnan(values)).any() else float("nan")
        else:
            value, missing, mean = float("nan"), float("nan"), float("nan")
        rows.append({"feature": name, "psi": value, "band": band(value), "rows": int(len(values)),
                     "reference_mean": dist["mean"], "current_mean": mean,
                     "reference_missing": dist["missing_fraction"], "current_missing": missing})
    return pd.DataFrame(rows)


def report(reference: dict, current: pd.DataFrame) -> list[dict]:
    """Return the PSI table as JSON-able rows; below NOISY_BELOW inputs every band says "too few"."""
    table = psi_table(reference, current)
    if len(current) < NOISY_BELOW:  # a handful of decisions says nothing about a population
        table["band"] = f"too few (< {NOISY_BELOW})"
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]
