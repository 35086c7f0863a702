"""Bootstrap 95 % intervals of the held-out metrics, and paired intervals of their differences.

Every metric is written once, as a function of per-row **weights**: the point
estimate uses weight 1 for every row, a bootstrap draw uses how many times each
row was drawn (rows resampled with replacement, ``DRAWS`` times, from a fixed
seed, so the same rows give the same intervals). Two scorers measured on the
same draws give a **paired** interval of their difference: the spread of
``metric(a) - metric(b)`` over the draws, not two intervals side by side.

The intervals are percentile intervals (2.5th and 97.5th percentiles of the
draws). They cover the sampling noise of the held-out rows, not the
randomness of training (which ``pipeline.train``'s cross-validation measures).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DRAWS = 1000
SEED = 12345  # fixed: the gate's decision must be reproducible on the same rows
LEVEL = 0.95
CHUNK_CELLS = 4_000_000  # draws x rows held in memory at once


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % interval."""

    estimate: float
    low: float
    high: float

    def text(self, digits: int = 4) -> str:
        """Return ``0.7669 [0.7040, 0.8260]``."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


# --- metrics of weighted rows: w has shape (draws, n) ---------------------------------------

class Ranking:
    """A scorer's rows sorted by score, with its ties grouped, for weighted AUC and KS."""

    def __init__(self, y: np.ndarray, p: np.ndarray):
        order = np.argsort(p, kind="stable")
        sorted_p = p[order]
        self.order = order
        self.starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
        self.ties = len(self.starts) < len(p)
        self.positive = (y[order] == 1).astype(float)
        self._last: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def group_weights(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the weight of good and bad rows in each tie group, lowest score first (kept for the last w)."""
        if self._last is not None and self._last[0] == id(w):
            return self._last[1]
        ws = w[:, self.order]
        good = ws * self.positive
        bad = ws - good
        if self.ties:
            good, bad = np.add.reduceat(good, self.starts, axis=1), np.add.reduceat(bad, self.starts, axis=1)
        self._last = (id(w), (good, bad))
        return good, bad

    def auc(self, w: np.ndarray) -> np.ndarray:
        """Return the AUC (ties count half) under each row of weights."""
        good, bad = self.group_weights(w)
        below = np.cumsum(bad, axis=1) - bad
        with np.errstate(invalid="ignore", divide="ignore"):
            return (good * (below + 0.5 * bad)).sum(axis=1) / (good.sum(axis=1) * bad.sum(axis=1))

    def ks(self, w: np.ndarray) -> np.ndarray:
        """Return the largest gap between the score distributions of good and bad rows."""
        good, bad = self.group_weights(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.cumsum(bad, axis=1) / bad.sum(axis=1, keepdims=True) - \
                np.cumsum(good, axis=1) / good.sum(axis=1, keepdims=True)
        return np.abs(gap).max(axis=1)


def weighted_mean(w: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return the weighted mean of per-row values under each row of weights."""
    return (w @ values) / w.sum(axis=1)


def ece(w: np.ndarray, y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Return the ECE (10 equal-width bins) under each row of weights."""
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = np.zeros(len(w))
    for b in np.unique(bins):
        mask = bins == b
        wb = w[:, mask]
        total += np.abs(wb @ p[mask] - wb @ y[mask])
    return total / w.sum(axis=1)


def bad_rate_of_top(w: np.ndarray, y: np.ndarray, p: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Return the bad rate among the highest-scored rows that make up ``share`` of the weight (per draw)."""
    order = np.argsort(-p, kind="stable")
    ws = w[:, order].astype(float)
    cum = np.cumsum(ws, axis=1)
    cum_bad = np.cumsum(ws * (y[order] == 0), axis=1)
    target = share * w.sum(axis=1)
    k = np.minimum((cum < target[:, None] - 1e-9).sum(axis=1), w.shape[1] - 1)
    rows = np.arange(len(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(target > 0, cum_bad[rows, k] / cum[rows, k], np.nan)


# --- the bootstrap -----------------------------------------------------------------------------

def weight_chunks(n: int, draws: int = DRAWS, seed: int = SEED):
    """Yield matrices of resampling counts (draws x n) in chunks that fit in memory."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, CHUNK_CELLS // max(n, 1))
    done = 0
    while done < draws:
        m = min(per_chunk, draws - done)
        idx = rng.integers(0, n, (m, n)) + (np.arange(m) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)
        done += m


Statistic = Callable[[np.ndarray], np.ndarray]


def bootstrap(statistics: dict[str, Statistic], n: int, *, draws: int = DRAWS, seed: int = SEED) -> dict:
    """Return each statistic's point estimate (all weights 1) and its values over the bootstrap draws."""
    ones = np.ones((1, n))
    point = {name: float(f(ones)[0]) for name, f in statistics.items()}
    values = {name: [] for name in statistics}
    for w in weight_chunks(n, draws, seed):
        for name, f in statistics.items():
            values[name].append(f(w))
    return {"point": point, "draws": {k: np.concatenate(v) for k, v in values.items()}}


def interval(point: float, draws: np.ndarray, level: float = LEVEL) -> Interval:
    """Return the percentile interval of bootstrap draws around a point estimate (NaN draws left out)."""
    finite = draws[np.isfinite(draws)]
    if not np.isfinite(point) or len(finite) < 10:
        return Interval(point, float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def intervals(result: dict) -> dict[str, Interval]:
    """Return an Interval per statistic of a ``bootstrap`` result."""
    return {name: interval(result["point"][name], result["draws"][name]) for name in result["point"]}


def paired(result: dict, a: str, b: str) -> Interval:
    """Return the interval of statistic ``a`` minus statistic ``b``, measured on the same draws."""
    return interval(result["point"][a] - result["point"][b], result["draws"][a] - result["draws"][b])
