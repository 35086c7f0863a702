"""Drift of live inputs against the training data a version recorded (its feature reference).

Each version stores, per numeric feature, the training data's quantile cut
points and the share of rows in each bin plus the missing share
(``feature_reference.json``, built by ``pipeline.reference``). Recent inputs
are binned on the same cuts and compared with the population stability index:

    PSI = sum over bins of (current share - reference share) * ln(current share / reference share)

PSI is biased upwards on few rows: an empty bin alone adds about 0.7, so 25
decisions drawn from the training population itself flag most features on the
usual fixed bands. Here the bands depend on the sample size: ``noise_threshold``
is the 95th percentile of the PSI between the reference distribution and
samples of the same size drawn from it (``DRAWS`` multinomial draws, fixed
seed). A feature is **watch** when its PSI is above both 0.1 and that
threshold, **shifted** when above both 0.25 and that threshold; below
``NOISY_BELOW`` (100) inputs nothing is flagged at all ("too few"). Each row
reports the threshold it used (``noise_threshold``).

``score_drift`` does the same for the scores, against the training scores'
distribution a version records (``score_distribution`` in its reference).
Used by ``make monitor`` (pipeline) and by serving's ``POST /v1/drift`` (the
manager's model page).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
STABLE, WATCH = 0.1, 0.25
EPSILON = 1e-4  # floor for empty bins, so a bin seen on one side only counts without dividing by zero
NOISY_BELOW = 100  # fewer inputs than this say nothing about a population: nothing is flagged
DRAWS = 2000
NOISE_QUANTILE = 0.95
SEED = 0


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


def noise_threshold(expected: list[float], n: int, *, quantile: float = NOISE_QUANTILE, draws: int = DRAWS,
                    seed: int = SEED) -> float:
    """Return the PSI that samples of ``n`` rows drawn from the reference itself exceed only 5 % of the time."""
    if n < 1:
        return float("nan")
    e = np.asarray(expected, dtype=float)
    e = e / e.sum()
    counts = np.random.default_rng(seed).multinomial(n, e, size=draws) / n
    a = np.clip(counts, EPSILON, None)
    values = np.sum((a - np.clip(e, EPSILON, None)) * np.log(a / np.clip(e, EPSILON, None)), axis=1)
    return float(np.quantile(values, quantile))


def band(value: float, threshold: float = 0.0) -> str:
    """Return the reading of a PSI value: stable, watch or shifted (above the noise ``threshold`` too)."""
    if np.isnan(value):
        return "no data"
    if value > max(WATCH, threshold):
        return "shifted"
    return "watch" if value > max(STABLE, threshold) else "stable"


def _row(name: str, dist: dict, values: np.ndarray) -> dict:
    expected = dist["fractions"] + [dist["missing_fraction"]]
    if len(values):
        fractions, missing = bin_fractions(values, dist["cuts"])
        value = psi(expected, fractions + [missing])
        with np.errstate(over="ignore"):  # values near float's limit: their mean is no number, reported as null
            mean = float(np.nanmean(values)) if (~np.isnan(values)).any() else float("nan")
        threshold = noise_threshold(expected, len(values))
    else:
        value, missing, mean, threshold = float("nan"), float("nan"), float("nan"), float("nan")
    return {"feature": name, "psi": value, "band": band(value, 0.0 if np.isnan(threshold) else threshold),
            "rows": int(len(values)), "reference_mean": dist["mean"], "current_mean": mean,
            "reference_missing": dist["missing_fraction"], "current_missing": missing, "noise_threshold": threshold}


def psi_table(reference: dict, current: pd.DataFrame) -> pd.DataFrame:
    """Return one row per reference feature: PSI, band, the noise threshold at this size, means and missing shares."""
    rows = []
    for name, dist in reference["distributions"].items():
        values = (pd.to_numeric(current[name], errors="coerce").to_numpy(dtype=float) if name in current
                  else np.array([]))
        rows.append(_row(name, dist, values))
    return pd.DataFrame(rows)


def score_drift(reference: dict, scores: np.ndarray) -> dict | None:
    """Return the PSI row of recent scores against the training scores (None if the version recorded none)."""
    dist = reference.get("score_distribution")
    if not dist:
        return None
    return _row("score", dist, np.asarray(scores, dtype=float))


def report(reference: dict, current: pd.DataFrame) -> list[dict]:
    """Return the PSI table as JSON-able rows (no number: null); below NOISY_BELOW inputs every band says "too few"."""
    table = psi_table(reference, current)
    if len(current) < NOISY_BELOW:  # a handful of decisions says nothing about a population
        table["band"] = f"too few (< {NOISY_BELOW})"
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]
