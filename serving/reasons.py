"""Principal reasons for a decision, from the features the model actually scored.

Method (documented in docs/serving.md): for each row and each feature, replace
that feature's value by the mean value of training applicants scored near the
cut-off (the ``near_cutoff`` profile the pipeline stored with the version) and
re-score. The change of score is that feature's contribution against the
cut-off profile, as Regulation B's commentary 9(b)(2)-5 describes ("compare the
applicant's values with those of applicants at or near the cut-off"). A
categorical feature is replaced by the most common category of the approved
applicants near the cut-off (``near_cutoff.modes``; the training data's most
common category for versions that did not store one).

A rejection names every feature that falls short of that profile, most harmful
first: for a monotone feature (the yearly paid shares) every value below it,
for any other feature one whose own value lowered the score. An approval names
the features that raised the score most (the strongest years), then anything
short, so a customer hears about a weak year either way. All substitutions of a
batch are scored in one call. How a feature reads in words comes from the
version's metadata (``feature_labels``, written by the pipeline): a paid
percentage is labelled by how many years before the decision it lies, shown as
the real year, next to what the customers approved at the cut-off paid
("You paid 33% of what was due in 2025; approved customers typically paid 95% or more.").
"""
from __future__ import annotations

import numpy as np

from model_registry.inputs import MISSING

MAX_STRONG = 2  # an approval names its strongest features, at most this many
# A contribution is reported to 4 decimals: a smaller effect is none, and never a reason.
MIN_EFFECT = 5e-5
NEAR_CUTOFF = "approved applicants near the cut-off"
TRAINING_MODE = "most common in training"


def describe(feature: str, value: float | str, reference: float | str | None, decision_year: int,
             label: dict) -> str:
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
    if isinstance(value, str):  # a category
        return f"{label.get('label', feature)} = {value}" + (
            f" ({label.get('compared_with', NEAR_CUTOFF)}: {reference})" if reference is not None else "")
    name = label.get("label", feature)
    return f"{name} = {value:g}" + (f" (near the cut-off: {reference:g})" if reference is not None else "")


class Explainer:
    """One version's reasons machinery, worked out once per loaded version: only the row's numbers vary.

    Per feature it keeps what does not depend on the row (its label, whether it is monotone, the
    profile value and how it is shown), and the pattern of substitutions: row 0 of each row's
    block is the row itself, row j + 1 has feature j replaced by the profile's value.
    """

    def __init__(self, features: tuple[str, ...], profile: np.ndarray, labels: dict[str, dict]):
        k = len(features)
        self.features = features
        self.profile = profile
        self.reference = profile.tolist()
        self.labels = [labels.get(f, {}) for f in features]
        self.rising = [label.get("higher_is_better", False) for label in self.labels]
        self.monotone = [j for j in range(k) if self.rising[j]]
        self.shown_reference = [ref if isinstance(ref, str) else round(ref, 2) for ref in self.reference]
        self.years_ago = [int(label["years_ago"]) if "years_ago" in label else None for label in self.labels]
        self.substituted = np.zeros((k + 1, k), dtype=bool)
        self.substituted[np.arange(k) + 1, np.arange(k)] = True

    def contributions(self, score_fn, x: np.ndarray) -> list[tuple[float, list[float]]]:
        """Return each row's (score, contributions): contributions[j] = score(x_i) - score(x_i with j := profile_j).

        The rows and all their substitutions are scored in one call; the differences are taken on
        Python floats (the same subtraction numpy does, without its per-call cost on a few values).
        """
        n, k = x.shape
        batch = np.where(self.substituted, self.profile, x[:, None, :])  # (n, k+1, k)
        scores = score_fn(batch.reshape(n * (k + 1), k)).tolist()
        blocks = (scores[i:i + k + 1] for i in range(0, len(scores), k + 1))
        return [(block[0], [block[0] - substituted for substituted in block[1:]]) for block in blocks]

    def reasons(self, values: list, contrib: list[float], approved: bool, decision_year: int) -> list[dict]:
        """Name the features behind one row's decision: every one that falls short, and on approval the strongest."""
        # Plain Python on a handful of values: numpy's per-call overhead would cost more than the work.
        reference, rising = self.reference, self.rising
        k = len(values)
        strong = (sorted([j for j in range(k) if contrib[j] > MIN_EFFECT], key=lambda j: -contrib[j])[:MAX_STRONG]
                  if approved else [])
        # A monotone feature is short below the bar; any other one when its own value lowered the score.
        below = sorted([j for j in range(k) if j not in strong and (
            values[j] < reference[j] - 1e-9 if rising[j] else contrib[j] < -MIN_EFFECT)], key=contrib.__getitem__)
        picked = [(j, "raised_score") for j in strong] + [(j, "lowered_score") for j in below]
        if not picked and not approved:
            # Nothing falls short by itself (the row sits just under the line): name the monotone
            # feature closest to falling short, without one the feature that helped least, so a
            # rejection always says why.
            monotone = self.monotone
            picked = [(min(monotone, key=lambda j: values[j] - reference[j]) if monotone
                       else min(range(k), key=contrib.__getitem__), "closest_to_cutoff")]
        return [self._reason(j, code, values[j], contrib[j], decision_year) for j, code in picked]

    def _reason(self, j: int, code: str, value, contribution: float, decision_year: int) -> dict:
        feature, label = self.features[j], self.labels[j]
        reason = {"code": code, "feature": feature, "value": value if isinstance(value, str) else round(value, 2),
                  "reference": self.shown_reference[j], "contribution": round(contribution, 4),
                  "text": describe(feature, value, self.reference[j], decision_year, label)}
        if self.years_ago[j] is not None:  # the real year a yearly feature stands for
            reason["year"] = decision_year - self.years_ago[j]
        return reason


def feature_labels(metadata: dict, reference: dict, categorical: tuple[str, ...] = ()) -> dict[str, dict]:
    """Return the version's feature labels, with whom a categorical one is compared and which may fall short.

    ``higher_is_better``: the spec's monotone features (a higher value never lowers the score);
    ``compared_with``: the group a categorical feature's reference category comes from.
    """
    labels = {name: dict(label) for name, label in (metadata.get("feature_labels") or {}).items()}
    for name in (metadata.get("spec") or {}).get("monotone_increasing") or ():
        labels.setdefault(name, {})["higher_is_better"] = True
    modes = (reference.get("near_cutoff") or {}).get("modes") or {}
    for name in categorical:
        labels.setdefault(name, {})["compared_with"] = NEAR_CUTOFF if modes.get(name) else TRAINING_MODE
    return labels


def profile_vector(reference: dict, features: tuple[str, ...], bounds: dict,
                   categorical: tuple[str, ...] = ()) -> np.ndarray:
    """Return the near-cut-off profile in feature order (the middle of the range where unknown).

    A categorical feature's entry is a category: the near-cut-off mode, else the training data's
    most common one (an object array is returned then).
    """
    near = reference.get("near_cutoff") or {}
    profile, modes = near.get("profile") or {}, near.get("modes") or {}
    shares = reference.get("categories") or {}
    values = []
    for f in features:
        if f in categorical:
            common = max((shares.get(f) or {MISSING: 1.0}).items(), key=lambda item: item[1])[0]
            values.append(modes.get(f) or common)
        else:
            values.append(profile.get(f) if profile.get(f) is not None else np.mean(bounds.get(f, (0.0, 1.0))))
    return np.array(values, dtype=object if categorical else np.float64)
