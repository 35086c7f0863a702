"""The feature reference stored with each model version, for drift and for reasons.

* ``distributions``: per feature, the training data's quantile bins (cut
  points and the share of rows in each bin, plus the missing share) - the
  reference that ``pipeline.monitor`` compares recent decisions with (PSI) -
  and a few summary numbers.
* ``near_cutoff``: the mean profile of training applicants whose score lies
  near the decision threshold. Serving explains a decision by comparing an
  applicant's yearly percentages with this profile ("2024: 61 % paid, applicants
  near the cut-off paid 93 %").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.dataset import DEFAULT_SPEC, DatasetSpec

QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


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


def feature_reference(frame: pd.DataFrame, scores: np.ndarray, spec: DatasetSpec = DEFAULT_SPEC, *,
                      threshold: float = 0.8, band: float = 0.05, min_near: int = 30) -> dict:
    """Describe the training features and the applicants near the threshold (JSON-able)."""
    distributions, categories = {}, {}
    for name in spec.numeric:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        cuts = quantile_cuts(values)
        fractions, missing = bin_fractions(values, cuts)
        present = values[~np.isnan(values)]
        distributions[name] = {
            "cuts": cuts, "fractions": fractions, "missing_fraction": missing,
            "mean": float(present.mean()) if len(present) else None,
            "std": float(present.std()) if len(present) else None,
            "quantiles": {f"q{int(q * 100):02d}": float(np.quantile(present, q)) if len(present) else None
                          for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
        }
    for name in spec.categorical:
        shares = frame[name].astype("object").fillna("missing").astype(str).value_counts(normalize=True)
        categories[name] = {str(k): float(v) for k, v in shares.items()}

    scores = np.asarray(scores, dtype=float)
    distance = np.abs(scores - threshold)
    near = distance <= band
    if near.sum() < min_near:
        near = np.zeros(len(scores), dtype=bool)
        near[np.argsort(distance, kind="stable")[:min(min_near, len(scores))]] = True
    approved = scores >= threshold
    return {
        "features": spec.features,
        "rows": int(len(frame)),
        "distributions": distributions,
        "categories": categories,
        "near_cutoff": {
            "threshold": threshold,
            "score_range": [float(scores[near].min()), float(scores[near].max())] if near.any() else None,
            "rows": int(near.sum()),
            "profile": _means(frame.loc[near], spec),
        },
        "approved_profile": _means(frame.loc[approved], spec),
        "approved_rows": int(approved.sum()),
    }


def _means(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, float | None]:
    out = {}
    for name in spec.numeric:
        values = pd.to_numeric(frame[name], errors="coerce")
        out[name] = None if values.isna().all() else round(float(values.mean()), 4)
    return out
