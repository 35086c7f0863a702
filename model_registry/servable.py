"""Can this version be loaded and scored the way serving does? Asked by serving at load and by the pipeline's gate.

``check(model)`` takes a loaded version (``registry.load_version``) and
raises ``NotServable`` naming the first problem, or returns what serving needs
to verify its fast path (``Servable``). It checks, in order:

1. the feature list: non-empty, no duplicates, the numeric features then the
   categorical ones (the column order the pipeline was fitted on);
2. the MLflow signature: the same columns, doubles for numeric features and
   strings for categorical ones;
3. the dataset spec's bounds: numeric features only, low <= high; a threshold
   in (0, 1];
4. the version's own input example, through serving's row rules
   (``model_registry.inputs``): a version whose example serving would refuse
   cannot be served;
5. one finite score in [0, 1] per row from the fitted pipeline's
   ``predict_proba`` for the example and for probe rows spread over every
   numeric feature's range and every category (a missing and an unseen one
   included).

``problem(version, name=..., tracking_uri=...)`` loads a registered version
and returns the problem as one line, or None when serving can load and score
it: the call for a gate before it promotes a version.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_registry.inputs import MISSING, BadInput, encode
from model_registry.registry import MODEL_NAME, LoadedModel, load_version

PROBE_ROWS = 2000
UNSEEN = "(a category the model never saw)"
NUMERIC_TYPES = {"double", "float", "long", "integer"}


class NotServable(ValueError):
    """Serving cannot load or score this version; the message says why."""


@dataclass(frozen=True)
class Servable:
    """A version that passed the check, and the probe rows a compiled scorer must reproduce."""

    features: tuple[str, ...]
    categorical: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    probe: np.ndarray
    expected: np.ndarray  # predict_proba's scores of the probe rows


def probe_rows(features: tuple[str, ...], bounds: dict, n: int = PROBE_ROWS, seed: int = 0,
               categories: dict[str, list[str]] | None = None) -> np.ndarray:
    """Rows spread over each numeric feature's range (edges included) and each categorical feature's categories.

    Features named in ``categories`` are categorical (an object matrix is returned); the others
    numeric, drawn within ``bounds`` ((0, 1) where a feature has none).
    """
    categories = categories or {}
    numeric = [f for f in features if f not in categories]
    rng = np.random.default_rng(seed)
    low = np.array([bounds.get(f, (0.0, 1.0))[0] for f in numeric])
    high = np.array([bounds.get(f, (0.0, 1.0))[1] for f in numeric])
    x = rng.uniform(low, high, (n, len(numeric)))
    x[: n // 4] = np.round(x[: n // 4])  # whole numbers hit split thresholds' neighbourhoods
    x[0], x[1] = low, high
    if not categories:
        return x
    out = np.empty((n, len(features)), dtype=object)
    out[:, [features.index(f) for f in numeric]] = x
    for name, values in categories.items():
        out[:, features.index(name)] = rng.choice(np.array([*values, MISSING, UNSEEN], dtype=object), n)
    return out


def probe_ranges(model: LoadedModel) -> dict[str, tuple[float, float]]:
    """Return the range to probe each numeric feature over: its bounds, else its training spread widened."""
    ranges = {}
    for name in model.numeric:
        if name in model.bounds:
            ranges[name] = model.bounds[name]
            continue
        quantiles = ((model.reference.get("distributions") or {}).get(name) or {}).get("quantiles") or {}
        low, high = quantiles.get("q05"), quantiles.get("q95")
        if low is not None and high is not None:
            span = max(high - low, 1.0)
            ranges[name] = (low - span / 2, high + span / 2)
    return ranges


def _scores(model: LoadedModel, x: np.ndarray, what: str) -> np.ndarray:
    """Score rows with the fitted pipeline; raise NotServable unless it gives one probability per row."""
    try:
        p = np.asarray(model.pipeline.predict_proba(x))
    except Exception as exc:  # noqa: BLE001 - whatever the pipeline raises, the version cannot serve
        raise NotServable(f"predict_proba fails on {what}: {type(exc).__name__}: {exc}") from exc
    if p.ndim != 2 or p.shape != (len(x), 2):
        raise NotServable(f"predict_proba gives shape {p.shape} for {len(x)} rows of {what}, not one score per row")
    scores = p[:, 1].astype(np.float64)
    if not (np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()):
        raise NotServable(f"the model gives scores that are not probabilities for {what}")
    return scores


def _check_columns(model: LoadedModel) -> None:
    """Raise NotServable unless the features, their kinds and the signature agree."""
    features = list(model.features)
    if not features or len(set(features)) != len(features):
        raise NotServable(f"bad feature list {features!r}")
    if [*model.numeric, *model.categorical] != features:
        raise NotServable(f"the features {features} are not the numeric ones {list(model.numeric)} "
                          f"then the categorical ones {list(model.categorical)}")
    if not model.signature:
        raise NotServable("the model has no signature naming its input columns")
    names = [column.get("name") for column in model.signature]
    if names != features:
        raise NotServable(f"the signature's columns {names} are not the features {features}")
    for column in model.signature:
        kind = column.get("type")
        if (kind != "string") if column["name"] in model.categorical else (kind not in NUMERIC_TYPES):
            raise NotServable(f"the signature gives {column['name']} the type {kind!r}, but it is "
                              + ("categorical (string)" if column["name"] in model.categorical else "numeric"))


def check(model: LoadedModel) -> Servable:
    """Check a loaded version the way serving loads it; return what serving needs, or raise NotServable."""
    _check_columns(model)
    features, categorical = tuple(model.features), tuple(model.categorical)
    try:
        bounds = model.bounds
    except (TypeError, ValueError, IndexError) as exc:
        raise NotServable(f"unreadable bounds in the dataset spec: {exc}") from exc
    for name, (low, high) in bounds.items():
        if name not in model.numeric or not low <= high:
            raise NotServable(f"bad bounds for {name}: [{low}, {high}]")
    if not 0 < model.threshold <= 1:
        raise NotServable(f"the threshold {model.threshold} is not a probability")
    if not model.input_example:
        raise NotServable("the model has no input example to score")
    try:
        example = encode(model.input_example, features, bounds, categorical)
    except BadInput as exc:
        raise NotServable(f"serving refuses the version's own input example: {exc}") from exc
    _scores(model, example, "its input example")
    known = model.reference.get("categories") or {}
    probe = probe_rows(features, probe_ranges(model), categories={c: list(known.get(c) or {}) for c in categorical})
    return Servable(features, categorical, bounds, probe, _scores(model, probe, "the probe rows"))


def problem(version: str | int, name: str = MODEL_NAME, tracking_uri: str | None = None) -> str | None:
    """Return why serving could not load and score a registered version (one line), or None when it can."""
    try:
        check(load_version(version, name, tracking_uri))
    except NotServable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a version that cannot even be loaded is not servable
        return f"cannot load {name} version {version}: {type(exc).__name__}: {exc}"
    return None
