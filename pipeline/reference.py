"""The feature reference stored with each model version, for drift and for reasons.

* ``distributions``: per feature, the training data's quantile bins (cut
  points and the share of rows in each bin, plus the missing share) - the
  reference that ``model_registry.drift`` compares recent decisions with (PSI) -
  and a few summary numbers.
* ``score_distribution``: the same bins for the training scores, so the
  monitor can tell when the scores themselves drift;
* ``near_cutoff``: the mean profile of training applicants whose score lies
  near the decision threshold. Serving explains a decision by comparing an
  applicant's yearly percentages with this profile ("You paid 61% of what was due
  in 2024; approved customers typically paid 93% or more."). For a categorical
  feature, ``modes`` holds the most common category among the *approved* applicants near the cut-off (those
  at or just above it, Regulation B's comparison group; all near ones if none
  is approved): "housing = rent (approved applicants near the cut-off: own)".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from contracts.decisions import DEFAULT_THRESHOLD
from model_registry.drift import bin_fractions, quantile_cuts
from pipeline.dataset import DEFAULT_SPEC, DatasetSpec


def feature_reference(frame: pd.DataFrame, scores: np.ndarray, spec: DatasetSpec = DEFAULT_SPEC, *,
                      threshold: float = DEFAULT_THRESHOLD, band: float = 0.05, min_near: int = 30) -> dict:
    """Describe the training features and the applicants near the threshold (JSON-able)."""
    distributions, categories = {}, {}
    for name in spec.numeric:
        distributions[name] = _distribution(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float))
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
        "score_distribution": _distribution(scores),
        "categories": categories,
        "near_cutoff": {
            "threshold": threshold,
            "score_range": [float(scores[near].min()), float(scores[near].max())] if near.any() else None,
            "rows": int(near.sum()),
            "profile": _means(frame.loc[near], spec),
            "modes": _modes(frame.loc[near & approved] if (near & approved).any() else frame.loc[near], spec),
        },
        "approved_profile": _means(frame.loc[approved], spec),
        "approved_rows": int(approved.sum()),
    }


def _distribution(values: np.ndarray) -> dict:
    """Return the decile bins of values (cut points, shares, missing share) and a few summary numbers."""
    cuts = quantile_cuts(values)
    fractions, missing = bin_fractions(values, cuts)
    present = values[~np.isnan(values)]
    return {
        "cuts": cuts, "fractions": fractions, "missing_fraction": missing,
        "mean": float(present.mean()) if len(present) else None,
        "std": float(present.std()) if len(present) else None,
        "quantiles": {f"q{int(q * 100):02d}": float(np.quantile(present, q)) if len(present) else None
                      for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
    }


def _modes(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, str | None]:
    out = {}
    for name in spec.categorical:
        counts = frame[name].astype("object").fillna("missing").astype(str).value_counts()
        out[name] = str(counts.index[0]) if len(counts) else None
    return out


def _means(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, float | None]:
    out = {}
    for name in spec.numeric:
        values = pd.to_numeric(frame[name], errors="coerce")
        out[name] = None if values.isna().all() else round(float(values.mean()), 4)
    return out
