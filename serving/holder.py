"""The live model: loaded from `models:/<name>@<alias>` (`SERVING_MODEL`), swapped atomically when the alias moves.

A version must pass `model_registry.servable.check` (the same check the
pipeline's gate runs) before it serves. A failed load (missing or corrupt
artifact, a signature that does not match, an input example it cannot score)
keeps the last good model and is logged; so does an alias that no longer
resolves (its version deleted, the registry unreachable). `/ready` stays true
as long as some model is loaded, and `/ready` and `/version` name the last
problem (`last_reload_error`) until the alias points at a version that loads.
The shadow's holder (`keep_last_good=False`, see `serving.shadow`) instead
drops its model when the alias goes away or its new version fails to load: a
stale challenger must not pass for the current one.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from sklearn import config_context
from threadpoolctl import ThreadpoolController

from model_registry import servable
from serving import metrics
from serving.fastpath import compile_pipeline
from serving.reasons import Explainer, feature_labels, profile_vector

log = logging.getLogger("serving.model")


class NoModel(RuntimeError):
    """No model is loaded yet."""


# The compiled scorer must give scikit-learn's numbers: the tree scorers do, bit for bit
# (tests/test_fastpath.py); the logistic model's row sums (numpy's, or the compiled loop's)
# and scikit-learn's matrix product may round the last bit differently, never more.
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
    categorical: tuple[str, ...] = ()  # features that take categories (then rows are an object matrix)
    labels: dict = field(default_factory=dict)  # how each feature reads in reasons (serving.reasons.feature_labels)
    threads: ThreadpoolController | None = None  # the loaded libraries' thread pools, for predict_proba

    @property
    def scorer(self) -> str:
        """Say which scorer is live: the compiled fast path, or the pipeline's own predict_proba."""
        return SCORER_COMPILED if self.fast is not None else SCORER_SKLEARN

    @cached_property
    def explainer(self) -> Explainer:
        """Return the reasons machinery of this version (built on first use, then kept with it)."""
        return Explainer(self.features, self.profile, self.labels)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of a good outcome for each row of the model's input matrix."""
        if self.fast is not None and (self.fast_max_rows is None or len(x) <= self.fast_max_rows):
            return self.fast(x)
        one_thread = self.threads is not None and len(x) < ONE_THREAD_MAX_ROWS
        with (config_context(assume_finite=True, skip_parameter_validation=True),
              self.threads.limit(limits=1, user_api="openmp") if one_thread else nullcontext()):
            return self.model.pipeline.predict_proba(x)[:, 1]


# predict_proba of gradient boosting spreads even a few rows over OpenMP threads; on a busy machine
# they wait on each other (7 rows: ~200 ms instead of ~5 ms). Smaller batches run on one thread.
ONE_THREAD_MAX_ROWS = 20_000
SCORER_COMPILED = "compiled, exact"
SCORER_SKLEARN = "scikit-learn predict_proba"


def _check(model) -> Live:
    """Check a loaded version as the gate does (servable), and compile its fast path if it is exact."""
    checked = servable.check(model)
    features, bounds, probe, expected = checked.features, checked.bounds, checked.probe, checked.expected
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
    categorical = checked.categorical
    profile = profile_vector(model.reference, features, bounds, categorical)
    labels = feature_labels(model.metadata, model.reference, categorical)
    threads = ThreadpoolController() if fast is None else None  # after loading: sees the model's libraries
    return Live(model, features, bounds, float(model.threshold), str(model.version), fast, fast_max_rows, profile,
                categorical, labels, threads)


class ModelHolder:
    """Holds the live model and follows its alias."""

    def __init__(self, load: Callable[[], object | None], current_version: Callable[[], str | None],
                 interval: float = 10.0, label: str = "the champion", keep_last_good: bool = True,
                 on_failure: Callable[[], None] = metrics.RELOAD_FAILURES.inc,
                 on_version: Callable[[float], None] = metrics.MODEL_VERSION.set):
        self._load = load
        self.keep_last_good = keep_last_good
        self._on_failure = on_failure
        self._on_version = on_version
        self.label = label
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
    def current(self) -> Live | None:
        """Return the loaded model, or None (never raises)."""
        return self._live

    @property
    def ready(self) -> bool:
        """Tell whether a model is loaded."""
        return self._live is not None

    def refresh(self) -> bool:
        """Load the version the alias points to if it is another one; return whether the model changed."""
        with self._lock:
            try:
                version = self._current_version()  # the champion's raises when its alias does not resolve
                if version is None and not self.keep_last_good:  # the alias was taken away
                    self.last_error = None
                    return self._drop(None) if self._live is not None else False
                if version is None:
                    return False
                if self._live is not None and version == self._live.version:
                    self.last_error = None  # the alias is on the live version (again): nothing to report
                    return False
                model = self._load()
                if model is None:
                    return False
                live = _check(model)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the last good model
                self._on_failure()
                error = f"{type(exc).__name__}: {exc}"
                if error != self.last_error:  # once per new problem, not once per poll
                    log.error("%s: model reload failed, %s version %s: %s", self.label,
                              "keeping" if self.keep_last_good else "dropping",
                              self._live.version if self._live else None, error)
                self.last_error = error
                if not self.keep_last_good and self._live is not None:
                    self._drop(self.last_error)
                return False
            previous = self._live.version if self._live else None
            self._live = live  # one reference assignment: requests see the old or the new model, whole
            self._on_version(float(live.version))
            self.last_error = None
            log.info("serving %s version %s (was %s, scorer: %s)", self.label, live.version, previous, live.scorer)
            return True

    def _drop(self, error: str | None) -> bool:
        """Unload the model (the shadow's alias went away or its new version is broken)."""
        log.info("%s: no longer scoring version %s", self.label, self._live.version if self._live else None)
        self._live = None
        self._on_version(0.0)
        self.last_error = error
        return True

    def watch(self) -> threading.Thread:
        """Poll the alias every `interval` seconds in a daemon thread."""
        def loop():
            while not self._stop.wait(self.interval):
                self.refresh()

        thread = threading.Thread(target=loop, name=f"watcher {self.label}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
