"""Compiled loops for the pipeline's logistic candidate (imputation, scaling, log-odds) and sigmoid calibration.

The logistic candidate is ``prepare`` (every column, in order, through an
optional ``SimpleImputer`` - with its missing-value indicator columns - then
an optional ``StandardScaler``), a ``LogisticRegression`` and a sigmoid
calibration. In numpy that is a dozen array operations; on a one-row request
each costs about a microsecond in a tight loop and several times that between
a web request's other work, so most of a score was their overhead. Here the
same arithmetic runs per row in loops compiled by numba (``serving.jit``):

    z_j = (x_j, or its fill when NaN, - mean_j) / scale_j; an indicator column is
          (1.0 when its feature is NaN else 0.0, - mean) / scale, as the scaler sees it
    t   = z_0 * coef_0 + z_1 * coef_1 + ... + intercept   (``LogOdds``, in column order)
    p   = 1 / (1 + exp(a * t + b))                        (``Sigmoid``: scipy's expit(-(a * t + b)), same bits)

Each row is summed on its own, so a row has the same bits in any batch (a
replay scores one row, the decision scored it with its substitutions). The sum
runs in column order where numpy's reduction pairs terms differently: a
logistic score equals scikit-learn's to 1e-12, not bit for bit (the holder
checks it at load). The sigmoid gives scipy's bits, so the trees stay bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

from serving import jit


def _log_odds(x, out, fill, flagged, mean, scale, coef, intercept):
    """Fill out with the log-odds of each row of x (compiled by numba)."""
    k = x.shape[1]
    for i in range(x.shape[0]):
        t = 0.0
        for j in range(k):
            v = x[i, j]
            if v != v:
                v = fill[j]
            t += (v - mean[j]) / scale[j] * coef[j]
        for f in range(flagged.shape[0]):
            j = k + f
            v = 1.0 if x[i, flagged[f]] != x[i, flagged[f]] else 0.0
            t += (v - mean[j]) / scale[j] * coef[j]
        out[i] = t + intercept


def _sigmoid(t, out, a, b):
    """Fill out with 1 / (1 + exp(a * t + b)) (compiled by numba)."""
    for i in range(t.shape[0]):
        out[i] = 1.0 / (1.0 + math.exp(a * t[i] + b))


def _float_array(x: np.ndarray) -> np.ndarray:
    """Return x as the C-contiguous float64 array the compiled loops are called with."""
    return x if x.dtype == np.float64 and x.flags.c_contiguous else np.ascontiguousarray(x, dtype=np.float64)


class LogOdds:
    """One version's compiled log-odds: call it with a float matrix (features in order) to get t per row.

    ``fill``: per feature the imputed value of a NaN (NaN: not imputed); ``flagged``: the features
    with an indicator column; ``mean``, ``scale``, ``coef``: per column of the prepared row
    (features, then indicators).
    """

    def __init__(self, fill: np.ndarray, flagged: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                 coef: np.ndarray, intercept: float):
        f64 = np.float64
        self.args = (np.ascontiguousarray(fill, f64), np.ascontiguousarray(flagged, np.int64),
                     np.ascontiguousarray(mean, f64), np.ascontiguousarray(scale, f64),
                     np.ascontiguousarray(coef, f64), float(intercept))
        self.call = jit.compile_loop(_log_odds, np.zeros((1, len(fill))), np.empty(1), *self.args)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(len(x))
        self.call(_float_array(x), out, *self.args)
        return out


class Sigmoid:
    """A compiled sigmoid calibration map: call it with log-odds to get probabilities."""

    def __init__(self, a: float, b: float):
        self.a, self.b = float(a), float(b)
        self.call = jit.compile_loop(_sigmoid, np.zeros(1), np.empty(1), self.a, self.b)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        out = np.empty(len(t))
        self.call(_float_array(t), out, self.a, self.b)
        return out
