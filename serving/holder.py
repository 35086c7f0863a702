"""The live model: loaded from `models:/credit-approval@champion`, swapped atomically when the alias moves.

A failed load (missing or corrupt artifact, a signature that does not match)
keeps the last good model and is logged; `/ready` stays true as long as some
model is loaded.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import config_context

from serving import metrics
from serving.fastpath import compile_pipeline
from serving.reasons import profile_vector

log = logging.getLogger("serving.model")


class NoModel(RuntimeError):
    """No model is loaded yet."""


PROBE_ROWS = 2000
# The compiled scorer must give scikit-learn's numbers: the tree scorers do, bit for bit
# (tests/test_fastpath.py); numpy's and scikit-learn's matrix products for the logistic
# model may round the last bit differently, never more.
PROBE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Live:
    """One loaded version and what scoring needs from it (immutable: swapped as a whole)."""

    model: object  # model_registry.LoadedModel
    features: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    threshold: float
    version: str
    fast: Callable[[np.ndarray], np.ndarray] | None = None
    fast_max_rows: int | None = None
    profile: np.ndarray | None = None  # the near-cut-off profile reasons compare with, in feature order

    def score(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of a good outcome for each row of a float matrix."""
        if self.fast is not None and (self.fast_max_rows is None or len(x) <= self.fast_max_rows):
            return self.fast(x)
        with config_context(assume_finite=True, skip_parameter_validation=True):
            return self.model.pipeline.predict_proba(x)[:, 1]


def probe_rows(features: tuple[str, ...], bounds: dict, n: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows spread over each feature's range, its edges included, to compare two scorers on."""
    rng = np.random.default_rng(seed)
    low = np.array([bounds.get(f, (0.0, 1.0))[0] for f in features])
    high = np.array([bounds.get(f, (0.0, 1.0))[1] for f in features])
    x = rng.uniform(low, high, (n, len(features)))
    x[: n // 4] = np.round(x[: n // 4])  # whole numbers hit split thresholds' neighbourhoods
    x[0], x[1] = low, high
    return x


def _check(model) -> Live:
    """Validate a loaded version before it may serve, and compile its fast path if it is exact."""
    if model.categorical:
        raise ValueError("the fast path scores numeric features only")
    features = tuple(model.features)
    if not features or len(set(features)) != len(features):
        raise ValueError(f"bad feature list {features!r}")
    bounds = model.bounds
    probe = probe_rows(features, bounds)
    expected = model.pipeline.predict_proba(probe)[:, 1]
    if expected.shape != (len(probe),) or not np.isfinite(expected).all():
        raise ValueError("the model does not return one finite score per row")
    fast, fast_max_rows = None, None
    compiled = compile_pipeline(model.pipeline, len(features))
    if compiled is not None:
        scorer, limit = compiled
        step = limit or len(probe)
        got = np.concatenate([scorer(probe[i:i + step]) for i in range(0, len(probe), step)])
        if np.max(np.abs(got - expected)) <= PROBE_TOLERANCE:
            fast, fast_max_rows = scorer, limit
        else:
            log.warning("compiled scorer differs from scikit-learn on version %s: using predict_proba", model.version)
    profile = profile_vector(model.reference, features, bounds)
    return Live(model, features, bounds, float(model.threshold), str(model.version), fast, fast_max_rows, profile)


class ModelHolder:
    """Holds the live model and follows the champion alias."""

    def __init__(self, load: Callable[[], object | None], current_version: Callable[[], str | None],
                 interval: float = 10.0):
        self._load = load
        self._current_version = current_version
        self.interval = interval
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.last_error: str | None = None

    @property
    def live(self) -> Live:
        """Return the live model or raise NoModel."""
        live = self._live
        if live is None:
            raise NoModel("no model is loaded")
        return live

    @property
    def ready(self) -> bool:
        """Tell whether a model is loaded."""
        return self._live is not None

    def refresh(self) -> bool:
        """Load the champion if the alias points to another version; return whether the model changed."""
        with self._lock:
            try:
                version = self._current_version()
                if version is None or (self._live is not None and version == self._live.version):
                    return False
                model = self._load()
                if model is None:
                    return False
                live = _check(model)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the last good model
                metrics.RELOAD_FAILURES.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("model reload failed, keeping version %s: %s",
                          self._live.version if self._live else None, self.last_error)
                return False
            previous = self._live.version if self._live else None
            self._live = live  # one reference assignment: requests see the old or the new model, whole
            metrics.MODEL_VERSION.set(float(live.version))
            self.last_error = None
            log.info("serving credit-approval version %s (was %s)", live.version, previous)
            return True

    def watch(self) -> threading.Thread:
        """Poll the alias every `interval` seconds in a daemon thread."""
        def loop():
            while not self._stop.wait(self.interval):
                self.refresh()

        thread = threading.Thread(target=loop, name="champion-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
