"""Compile a fitted scikit-learn pipeline into plain numpy arithmetic for fast scoring.

scikit-learn's `predict_proba` spends most of a one-row call on validation,
pandas-aware transformers and thread pools, not on arithmetic. For the shapes
the pipeline trains - an identity/scaling `prepare` step, then
`CalibratedClassifierCV` (sigmoid or isotonic, frozen base) over a
`LogisticRegression` or a numeric-only binary `HistGradientBoostingClassifier` -
this module rebuilds the same function from the fitted parameters: a dot
product, or all trees walked at once over flat node arrays, then the
calibration map.

`compile_pipeline` returns None for any other shape, and the holder checks a
compiled scorer against the pipeline's own `predict_proba` on probe rows
before using it (see `serving.holder`): the fast path can only ever give
scikit-learn's numbers.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit

Scorer = Callable[[np.ndarray], np.ndarray]


def _unwrap(estimator):
    """Return the fitted estimator inside a FrozenEstimator (or the estimator itself)."""
    return getattr(estimator, "estimator", estimator) if type(estimator).__name__ == "FrozenEstimator" else estimator


def _prepare(step, n_features: int):
    """Return a function for the `prepare` step, or None when it is not a plain column passthrough/scaler."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if step is None or step == "passthrough":
        return lambda x: x
    if not isinstance(step, ColumnTransformer) or step.remainder not in ("drop",) and len(step.transformers_) > 1:
        return None
    order: list[int] = []
    parts = []
    for name, transformer, columns in step.transformers_:
        if name == "remainder":
            if transformer == "drop" or (isinstance(columns, list) and not columns):
                continue
            return None
        cols = list(columns)
        if transformer == "passthrough" or (isinstance(transformer, FunctionTransformer) and transformer.func is None):
            parts.append((cols, None, None))
        elif isinstance(transformer, StandardScaler):
            mean = transformer.mean_ if transformer.with_mean else np.zeros(len(cols))
            scale = transformer.scale_ if transformer.with_std else np.ones(len(cols))
            parts.append((cols, mean, scale))
        else:
            return None
        order.extend(cols)
    if sorted(order) != list(range(n_features)):
        return None
    identity = order == list(range(n_features)) and all(m is None for _, m, _ in parts)
    if identity:
        return lambda x: x

    def prepare(x: np.ndarray) -> np.ndarray:
        out = []
        for cols, mean, scale in parts:
            block = x[:, cols]
            out.append(block if mean is None else (block - mean) / scale)
        return np.concatenate(out, axis=1)

    return prepare


def _logistic(model) -> Scorer | None:
    if model.coef_.shape[0] != 1:
        return None
    coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    return lambda x: x @ coef + intercept


def _trees(model) -> Scorer | None:
    """Flatten a binary, numeric-only HistGradientBoostingClassifier; return its raw (log-odds) function."""
    if getattr(model, "n_trees_per_iteration_", 1) != 1 or getattr(model, "is_categorical_", None) is not None \
            and np.any(model.is_categorical_):
        return None
    predictors = [tree[0] for tree in model._predictors]
    sizes = [len(p.nodes) for p in predictors]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    nodes = np.concatenate([p.nodes for p in predictors])
    own = np.arange(len(nodes), dtype=np.intp)
    node_offset = np.repeat(offsets, sizes)
    is_leaf = nodes["is_leaf"].astype(bool)
    # A leaf points to itself both ways, so every row can take the same number of steps.
    left = np.where(is_leaf, own, nodes["left"].astype(np.intp) + node_offset)
    right = np.where(is_leaf, own, nodes["right"].astype(np.intp) + node_offset)
    feature = np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.intp)
    threshold = nodes["num_threshold"].astype(np.float64)
    missing_left = nodes["missing_go_to_left"].astype(bool)
    value = nodes["value"].astype(np.float64)
    depth = int(nodes["depth"].max())
    baseline = np.array([float(np.asarray(model._baseline_prediction).ravel()[0])])

    def raw(x: np.ndarray) -> np.ndarray:
        n = len(x)
        idx = np.broadcast_to(offsets, (n, len(offsets)))
        rows = np.arange(n)[:, None]
        for _ in range(depth):
            v = x[rows, feature[idx]]
            go_left = (v <= threshold[idx]) | (np.isnan(v) & missing_left[idx])
            idx = np.where(go_left, left[idx], right[idx])
        # scikit-learn adds the trees one after another to the baseline; a cumulative sum
        # adds in that same order, so the result is bit-for-bit the same.
        terms = np.concatenate([np.broadcast_to(baseline, (n, 1)), value[idx]], axis=1)
        return np.cumsum(terms, axis=1)[:, -1]

    return raw


def _calibrator(calibrator, method: str) -> Callable[[np.ndarray], np.ndarray] | None:
    if method == "sigmoid":
        a, b = float(calibrator.a_), float(calibrator.b_)
        return lambda t: expit(-(a * t + b))
    if method == "isotonic":
        return calibrator.predict
    return None


# Walking trees in numpy wins for small batches only; beyond this, scikit-learn's
# compiled, multithreaded predictor is faster (measured in bench/bench_serving.py).
TREE_MAX_ROWS = 64


def compile_pipeline(pipeline, n_features: int) -> tuple[Scorer, int | None] | None:
    """Return (scorer, max_rows) equivalent to `pipeline.predict_proba(x)[:, 1]`, or None if unsupported.

    `max_rows` is the largest batch the scorer is meant for (None: any size).
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    steps = dict(getattr(pipeline, "steps", []))
    if set(steps) - {"prepare", "model"} or "model" not in steps:
        return None
    prepare = _prepare(steps.get("prepare"), n_features)
    model = steps["model"]
    if prepare is None or not isinstance(model, CalibratedClassifierCV) or len(model.classes_) != 2:
        return None
    members = []
    max_rows = None
    for member in model.calibrated_classifiers_:
        base = _unwrap(member.estimator)
        if isinstance(base, LogisticRegression):
            decision = _logistic(base)
        elif isinstance(base, HistGradientBoostingClassifier):
            decision, max_rows = _trees(base), TREE_MAX_ROWS
        else:
            return None
        calibrate = _calibrator(member.calibrators[0], member.method) if len(member.calibrators) == 1 else None
        if decision is None or calibrate is None:
            return None
        members.append((decision, calibrate))

    def score(x: np.ndarray) -> np.ndarray:
        z = prepare(x)
        if len(members) == 1:
            decision, calibrate = members[0]
            return calibrate(decision(z))
        return np.mean([calibrate(decision(z)) for decision, calibrate in members], axis=0)

    return score, max_rows
