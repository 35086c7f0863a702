"""Principal reasons for a decision, from the features the model actually scored.

Method (documented in docs/serving.md): for each row and each feature, replace
that feature's value by the mean value of training applicants scored near the
cut-off (the ``near_cutoff`` profile the pipeline stored with the version) and
re-score. The change of score is that feature's contribution against the
cut-off profile, as Regulation B's commentary 9(b)(2)-5 describes ("compare the
applicant's values with those of applicants at or near the cut-off"). A
rejection names every feature below that profile (for the yearly paid shares:
every year below the bar), most harmful first; an approval names the features
that raised the score most (the strongest years), then any year below the bar,
so that a customer hears about a weak year either way. All substitutions of a
batch are scored in one call. How a feature reads in words comes from the
version's metadata (``feature_labels``, written by the pipeline): a paid
percentage is labelled by how many years before the decision it lies, shown as
the real year, next to what the customers approved at the cut-off paid
("You paid 33% of what was due in 2025; approved customers typically paid 95% or more.").
"""
from __future__ import annotations

import numpy as np

MAX_STRONG = 2  # an approval names its strongest features, at most this many


def contributions(score_fn, x: np.ndarray, profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores, contributions) where contributions[i, j] = score(x_i) - score(x_i with j := profile_j)."""
    n, k = x.shape
    batch = np.repeat(x[:, None, :], k + 1, axis=1)  # (n, k+1, k): the row itself, then k substitutions
    idx = np.arange(k)
    batch[:, idx + 1, idx] = profile[idx]
    scores = score_fn(batch.reshape(n * (k + 1), k)).reshape(n, k + 1)
    return scores[:, 0], scores[:, :1] - scores[:, 1:]


def describe(feature: str, value: float, reference: float | None, decision_year: int, label: dict) -> str:
    """Say in words what a feature's value was, with real years for the yearly paid percentages."""
    if "years_ago" in label:
        # Whole percents read best; one decimal where whole ones would hide the difference.
        digits = 1 if reference is not None and round(value) == round(reference) else 0
        year = decision_year - int(label["years_ago"])
        if reference is None:
            return f"You paid {value:.{digits}f}% of what was due in {year}."
        # The near-cut-off profile is what the customers approved by the narrowest margin paid.
        return (f"You paid {value:.{digits}f}% of what was due in {year}; "
                f"approved customers typically paid {reference:.{digits}f}% or more.")
    name = label.get("label", feature)
    return f"{name} = {value:g}" + (f" (near the cut-off: {reference:g})" if reference is not None else "")


def reasons_for(x_row: np.ndarray, contrib_row: np.ndarray, approved: bool, features: tuple[str, ...],
                profile: np.ndarray, decision_year: int, labels: dict[str, dict]) -> list[dict]:
    """Name the features behind this row's decision: every one below the bar, and on approval the strongest."""
    # Plain Python on five numbers: numpy's per-call overhead would cost more than the work.
    values, contrib, reference = x_row.tolist(), contrib_row.tolist(), profile.tolist()
    strong = sorted((j for j in range(len(contrib)) if contrib[j] > 1e-9), key=lambda j: -contrib[j])
    strong = strong[:MAX_STRONG] if approved else []
    below = sorted((j for j in range(len(values)) if values[j] < reference[j] - 1e-9 and j not in strong),
                   key=lambda j: (contrib[j], values[j] - reference[j]))
    picked = [(j, "raised_score") for j in strong] + [(j, "lowered_score") for j in below]
    if not picked and not approved:
        # Nothing scored below the cut-off profile by itself (the row sits just under the
        # line): name the feature closest to falling short, so a rejection always says why.
        picked = [(min(range(len(values)), key=lambda j: values[j] - reference[j]), "closest_to_cutoff")]
    reasons = []
    for j, code in picked:
        label = labels.get(features[j], {})
        reason = {"code": code, "feature": features[j], "value": round(values[j], 2),
                  "reference": round(reference[j], 2), "contribution": round(contrib[j], 4),
                  "text": describe(features[j], values[j], reference[j], decision_year, label)}
        if "years_ago" in label:  # the real year a yearly feature stands for
            reason["year"] = decision_year - int(label["years_ago"])
        reasons.append(reason)
    return reasons


def profile_vector(reference: dict, features: tuple[str, ...], bounds: dict) -> np.ndarray:
    """Return the near-cut-off profile in feature order (the middle of the range where unknown)."""
    profile = (reference.get("near_cutoff") or {}).get("profile") or {}
    return np.array([profile.get(f) if profile.get(f) is not None else np.mean(bounds.get(f, (0.0, 1.0)))
                     for f in features], dtype=np.float64)
