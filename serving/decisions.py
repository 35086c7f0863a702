"""Scored decisions with reasons, for one row or many."""
from __future__ import annotations

import numpy as np

from serving.holder import Live
from serving.reasons import contributions, reasons_for


def decide(live: Live, x: np.ndarray, decision_year: int) -> list[dict]:
    """Score rows and explain each decision (one model call for all rows and their substitutions)."""
    profile = live.profile
    labels = live.labels
    scores, contrib = contributions(live.score, x, profile)
    out = []
    for i, score in enumerate(scores):
        approved = bool(score >= live.threshold)
        out.append({"score": float(score), "approved": approved, "threshold": live.threshold,
                    "model_version": live.version,
                    "reasons": reasons_for(x[i], contrib[i], approved, live.features, profile, decision_year,
                                           labels)})
    return out
