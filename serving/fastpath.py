"""Compile a fitted scikit-learn pipeline into plain arithmetic for fast scoring.

scikit-learn's `predict_proba` spends most of a one-row call on validation,
pandas-aware transformers and thread pools, not on arithmetic. For the shapes
the pipeline trains - an identity/scaling `prepare` step (with a one-hot
encoding of categorical columns that ignores unknown categories), then
`CalibratedClassifierCV` (sigmoid or isotonic, frozen base) over a
`LogisticRegression` or a numeric-only binary `HistGradientBoostingClassifier` -
this module rebuilds the same function from the fitted parameters: a dot
product, or all trees walked over flat node arrays (`serving.trees`: a loop
compiled by numba, or numpy when numba is missing), then the calibration map.
The pipeline's own logistic shape (imputer, scaler, sigmoid calibration) runs
as one loop compiled by numba where it is installed (`serving.linear`).
A gradient-boosted model with categorical splits (the pipeline's ordinal
encoding) is not compiled: serving scores it with `predict_proba`.

`compile_pipeline` returns None for any other shape, and the holder checks a
compiled scorer against the pipeline's own `predict_proba` on probe rows
before using it (see `serving.holder`): the fast path can only ever give
scikit-learn's numbers.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from serving import jit, linear, trees

Scorer = Callable[[np.ndarray], np.ndarray]


def _unwrap(estimator):
    """Return the fitted estimator inside a FrozenEstimator (or the estimator itself)."""
    return getattr(estimator, "estimator", estimator) if type(estimator).__name__ == "FrozenEstimator" else estimator


def _one_hot(encoder: OneHotEncoder):
    """Return a numpy function for a fitted one-hot encoder of string categories that ignores unknown ones, or None.

    Column i's category k sets output column offset_i + k (categories_ order) to 1.0; an unknown
    category sets none, as ``handle_unknown="ignore"`` does.
    """
    if (encoder.drop_idx_ is not None or encoder.handle_unknown != "ignore" or encoder.dtype is not np.float64
            or getattr(encoder, "_infrequent_enabled", False)
            or not all(isinstance(c, str) for cats in encoder.categories_ for c in cats)):
        return None
    indexes = [{category: k for k, category in enumerate(cats)} for cats in encoder.categories_]
    offsets = np.cumsum([0] + [len(cats) for cats in encoder.categories_]).tolist()

    def encode(z: np.ndarray) -> np.ndarray:
        out = np.zeros((len(z), offsets[-1]))
        for i, index in enumerate(indexes):
            k = np.fromiter((index.get(value, -1) for value in z[:, i].tolist()), dtype=np.int64, count=len(z))
            rows = np.flatnonzero(k >= 0)
            out[rows, offsets[i] + k[rows]] = 1.0
        return out

    return encode


def _unchanged(x: np.ndarray) -> np.ndarray:
    """Return the rows as they are (a `prepare` step with nothing to do)."""
    return x


def _as_float(z: np.ndarray) -> np.ndarray:
    """Return the numeric columns of an object matrix (a model with categorical features) as floats."""
    return z.astype(np.float64)


def _identity(step) -> bool:
    """Tell whether a step leaves its columns as they are."""
    return step in (None, "passthrough") or (isinstance(step, FunctionTransformer) and step.func is None)


def _scaler(step: StandardScaler) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Return a fitted scaler's (mean, scale): it computes (z - mean) / scale; None where it does not."""
    return (step.mean_ if step.with_mean else None), (step.scale_ if step.with_std else None)


def _imputer(step) -> tuple[np.ndarray, np.ndarray] | None:
    """Return a fitted NaN imputer's (fill per column, columns it adds an indicator for), or None for another one."""
    if not isinstance(step, SimpleImputer) or not np.isnan(step.missing_values if step.missing_values is not None
                                                              else np.nan):
        return None
    flagged = step.indicator_.features_ if step.add_indicator and step.indicator_ is not None else []
    return step.statistics_.astype(np.float64), np.asarray(flagged, dtype=np.int64)


def _column_steps(transformer) -> list | None:
    """Return numpy functions for a column transformer's steps, or None if one is not supported."""
    steps = [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    functions = []
    for step in steps:
        if _identity(step):
            continue
        if isinstance(step, OneHotEncoder):
            encode = _one_hot(step)
            if encode is None or len(steps) != 1:
                return None
            functions.append(encode)
        elif isinstance(step, StandardScaler):
            mean, scale = _scaler(step)
            functions.append(lambda z, m=mean, s=scale: ((z - m) if m is not None else z) / (s if s is not None else 1))
        elif (imputed := _imputer(step)) is not None:
            fill, flagged = imputed

            def impute(z, fill=fill, flagged=flagged):
                missing = np.isnan(z)
                out = np.where(missing, fill, z)
                if len(flagged):
                    out = np.concatenate([out, missing[:, flagged].astype(np.float64)], axis=1)
                return out

            functions.append(impute)
        else:
            return None
    return functions


def _unused_remainder(name: str, transformer, columns) -> bool:
    """Tell whether a column transformer's entry is a remainder that passes no column on."""
    return name == "remainder" and (transformer == "drop" or isinstance(columns, slice) or not list(columns))


def _prepare(step, n_features: int):
    """Return a function for the `prepare` step, or None when a part of it is not supported."""
    if step is None or step == "passthrough":
        return _unchanged
    if not isinstance(step, ColumnTransformer):
        return None
    parts = []
    covered: list[int] = []
    for name, transformer, columns in step.transformers_:
        cols = list(columns) if not isinstance(columns, slice) else None
        if _unused_remainder(name, transformer, columns):
            continue
        if name == "remainder":
            return None
        functions = _column_steps(transformer)
        if cols is None or functions is None:
            return None
        parts.append((cols, functions, isinstance(transformer, OneHotEncoder)))
        covered.extend(cols)
    if sorted(covered) != list(range(n_features)):
        return None
    if any(categorical for *_, categorical in parts):  # rows come as an object matrix: numbers as floats first
        parts = [(cols, functions if categorical else [_as_float, *functions], categorical)
                 for cols, functions, categorical in parts]
    if len(parts) == 1 and not parts[0][1] and parts[0][0] == list(range(n_features)):
        return _unchanged
    # A part that takes every column in order reads x itself (no step writes into its input);
    # selecting them would copy the row, the costliest numpy call of a one-row score.
    parts = [(None if cols == list(range(n_features)) else np.array(cols), functions, categorical)
             for cols, functions, categorical in parts]

    def prepare(x: np.ndarray) -> np.ndarray:
        blocks = []
        for cols, functions, _ in parts:
            z = x if cols is None else x[:, cols]
            for function in functions:
                z = function(z)
            blocks.append(z)
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)

    return prepare


def _one_part_steps(step, n_features: int) -> list | None:
    """Return the non-identity steps of a `prepare` that sends every column, in order, through one transformer."""
    if step is None or step == "passthrough":
        return []
    if not isinstance(step, ColumnTransformer):
        return None
    parts = [(transformer, columns) for name, transformer, columns in step.transformers_
             if not _unused_remainder(name, transformer, columns)]
    if len(parts) != 1 or isinstance(parts[0][1], slice) or list(parts[0][1]) != list(range(n_features)):
        return None
    transformer = parts[0][0]
    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    return [s for s in steps if not _identity(s)]


def _compiled_logistic(prepare_step, base, n_features: int) -> Scorer | None:
    """Return the compiled log-odds of the pipeline's logistic shape, preparation included (``serving.linear``).

    None for another shape or without numba.
    """
    steps = _one_part_steps(prepare_step, n_features)
    if not jit.available() or steps is None or base.coef_.shape[0] != 1:
        return None
    fill, flagged = np.full(n_features, np.nan), np.zeros(0, dtype=np.int64)
    if steps and (imputed := _imputer(steps[0])) is not None:
        (fill, flagged), steps = imputed, steps[1:]
    width = n_features + len(flagged)
    mean, scale = np.zeros(width), np.ones(width)
    if steps and isinstance(steps[0], StandardScaler):
        (fitted_mean, fitted_scale), steps = _scaler(steps[0]), steps[1:]
        mean = fitted_mean if fitted_mean is not None else mean
        scale = fitted_scale if fitted_scale is not None else scale
    if steps or base.coef_.shape[1] != width:
        return None
    return linear.LogOdds(fill, flagged, mean, scale, base.coef_[0], float(base.intercept_[0]))


def _logistic(model) -> Scorer | None:
    if model.coef_.shape[0] != 1:
        return None
    coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    # Not `x @ coef`: BLAS sums a row differently depending on how many rows come with it, so a
    # replayed decision (one row) would differ in the last bit from the decision (scored with its
    # substitutions). A row-wise sum gives every row the same bits whatever the batch.
    return lambda x: np.add.reduce(x * coef, axis=1) + intercept  # .sum(axis=1) without its Python wrapper


# Walking trees in numpy (the fallback without numba) wins for small batches only; beyond
# this, scikit-learn's compiled, multithreaded predictor is faster (bench/bench_scoring.py).
TREE_MAX_ROWS = 64


def _trees(model, backend: str | None = None) -> tuple[Scorer, int | None] | None:
    """Return (raw log-odds function, largest batch it is meant for) of a gradient-boosted model, or None.

    `backend`: "numba" (the compiled walker), "numpy" (the fallback) or None (numba when it imports).
    """
    forest = trees.flatten(model)
    if forest is None:
        return None
    masks = trees.leaf_masks(forest) if backend != "numpy" and jit.available() else None
    if masks is not None:
        return trees.MaskScorer(masks), None  # compiled now, at model load: never in a request
    if backend == "numba":
        return None
    return (lambda x: trees.raw_numpy(forest, x)), TREE_MAX_ROWS


def _calibrator(calibrator, method: str) -> Callable[[np.ndarray], np.ndarray] | None:
    if method == "sigmoid":
        a, b = float(calibrator.a_), float(calibrator.b_)
        return linear.Sigmoid(a, b) if jit.available() else (lambda t: expit(-(a * t + b)))
    if method == "isotonic":
        return calibrator.predict
    return None


def compile_pipeline(pipeline, n_features: int, backend: str | None = None) -> tuple[Scorer, int | None] | None:
    """Return (scorer, max_rows) equivalent to `pipeline.predict_proba(x)[:, 1]`, or None if unsupported.

    `max_rows` is the largest batch the scorer is meant for (None: any size). `backend` picks the
    tree walker ("numba", "numpy"; None: numba when it imports).
    """
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
        compiled = (_compiled_logistic(steps.get("prepare"), base, n_features)
                    if isinstance(base, LogisticRegression) and len(model.calibrated_classifiers_) == 1 else None)
        if compiled is not None:
            prepare, decision = _unchanged, compiled  # the compiled loop prepares the row itself
        elif isinstance(base, LogisticRegression):
            decision = _logistic(base)
        elif isinstance(base, HistGradientBoostingClassifier):
            walker = _trees(base, backend)
            decision, max_rows = walker if walker is not None else (None, None)
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
