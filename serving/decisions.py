"""Scored decisions with reasons, for one row or many."""
from __future__ import annotations

import numpy as np

from serving.holder import Live


def decide(live: Live, x: np.ndarray, decision_year: int) -> list[dict]:
    """Score rows and explain each decision (one model call for all rows and their substitutions)."""
    explainer, threshold, version = live.explainer, live.threshold, live.version
    out = []
    # Python numbers from here on: one conversion per array, not one per value.
    for (score, contributions), values in zip(explainer.contributions(live.score, x), x.tolist()):
        approved = score >= threshold
        out.append({"score": score, "approved": approved, "threshold": threshold, "model_version": version,
                    "reasons": explainer.reasons(values, contributions, approved, decision_year)})
    return out
