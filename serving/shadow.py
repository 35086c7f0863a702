"""Shadow scoring: the challenger scores every decision request too, and never changes the answer.

With ``SERVING_SHADOW`` on (the default: ``auto``, on whenever the alias
exists), each worker also follows ``<name>@challenger`` with its own holder,
polled like the champion. ``/v1/decisions`` then adds to each row
``"shadow": {"version", "score", "approved"}`` (approved at the challenger's
own threshold). The champion's answer is computed first and is never touched:
the shadow is one more score call on the same rows (the champion's matrix when
both versions read the same features, no reasons), and any exception in it is
caught, counted (``serving_shadow_errors_total``), reported as
``shadow_error`` in the answer and on ``/version``, and the rows go without
``shadow``. A challenger that cannot be loaded is not scored at all and is
reported the same way; ``/ready`` stays 200.
"""
from __future__ import annotations

import logging

import numpy as np

from serving import metrics
from serving.holder import Live, ModelHolder
from serving.protocol import to_matrix

log = logging.getLogger("serving.shadow")

OFF = ("off", "0", "false", "no")


def enabled(setting: str | None, served_alias: str, shadow_alias: str) -> bool:
    """Tell whether to follow the shadow alias (never when the served alias is that alias already)."""
    return (setting or "auto").strip().lower() not in OFF and served_alias != shadow_alias


def make_holder(load, current_version, interval: float, label: str) -> ModelHolder:
    """Return a holder for the challenger: drops its model when the alias goes away or the new one is broken."""
    return ModelHolder(load=load, current_version=current_version, interval=interval, label=label,
                       keep_last_good=False, on_failure=lambda: metrics.SHADOW_ERRORS.labels("load").inc(),
                       on_version=metrics.SHADOW_VERSION.set)


def _same_inputs(a: Live, b: Live) -> bool:
    return a.features == b.features and a.categorical == b.categorical and a.bounds == b.bounds


def score(holder: ModelHolder, champion: Live, rows: list, x: np.ndarray,
          max_rows: int) -> tuple[list | None, str | None]:
    """Score the rows with the challenger; return (one shadow object per row, None) or (None, why not)."""
    shadow = holder.current
    if shadow is None:
        return None, holder.last_error
    try:
        matrix = x if _same_inputs(champion, shadow) else to_matrix(rows, shadow.features, shadow.bounds, max_rows,
                                                                     shadow.categorical)
        scores = shadow.score(matrix)
        out = [{"version": shadow.version, "score": float(s), "approved": bool(s >= shadow.threshold)}
               for s in scores]
    except Exception as exc:  # noqa: BLE001 - the shadow never fails the answer
        metrics.child(metrics.SHADOW_ERRORS, "score").inc()
        error = f"version {shadow.version} failed to score: {type(exc).__name__}: {exc}"[:300]
        log.warning("shadow scoring skipped: %s", error)
        return None, error
    metrics.child(metrics.ROWS, "shadow").inc(len(out))
    return out, None


def describe(holder: ModelHolder | None, alias: str) -> dict:
    """Return what /version says about the shadow: alias, version, threshold, scorer, error."""
    if holder is None:
        return {"enabled": False, "alias": alias, "version": None, "error": None}
    live = holder.current
    return {"enabled": True, "alias": alias, "version": live.version if live else None,
            "threshold": live.threshold if live else None, "scorer": live.scorer if live else None,
            "error": holder.last_error}
