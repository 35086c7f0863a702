"""Stage 2, train: split the data, compare the candidates by cross-validation, fit the chosen one.

Every candidate is one scikit-learn ``Pipeline`` (``prepare`` -> ``model``):
numeric features as they are (imputed and scaled for the logistic model),
categorical ones one-hot (logistic) or ordinal (trees) encoded inside the
pipeline, an unknown category scored as none seen. Every candidate is monotone
by construction in the features the spec declares monotone (for the ledger: a
higher paid percentage never lowers the score), so none has to be thrown away
for breaking that rule:

* ``logreg``: median imputation with missing-value indicators, scaling, and a
  logistic regression whose weights on the increasing (decreasing) features are
  constrained to be non-negative (non-positive) (``pipeline.monotone_logistic``:
  fitted with bounds, stored as a plain ``LogisticRegression``). Where the data
  would give an older year a small negative weight, the constrained fit gives
  it 0 instead;
* ``hgb``: a ``HistGradientBoostingClassifier`` with monotonic constraints.

**Calibration**: the decision threshold (0.8) is an absolute probability, so
the score must be one. Below ``cross_calibration_rows`` (10,000) development
rows, the classifier is fitted on all of them and calibrated (sigmoid) on its
out-of-fold scores (``CalibratedClassifierCV(cv=5, ensemble=False)``): on a
small table, holding a quarter of the rows out of the fit to calibrate on them
cost more than it gained (German credit data: docs/pipeline.md). Above it, the
classifier is fitted on the training rows, then frozen
(``sklearn.frozen.FrozenEstimator``) and calibrated on separate calibration
rows.

**Choosing**: repeated stratified k-fold cross-validation on the development
rows (every row that is not held out; ``cv_folds`` x ``cv_repeats``, one repeat
above 20,000 rows), each fold fitting and calibrating every candidate the same
way as the final model. The log loss of each candidate gets a 95 % interval,
and so does the paired difference between two candidates, fold by fold, with
the Nadeau-Bengio correction for the overlap of the folds' training rows. The
simplest candidate (first in ``candidates``) is kept unless a more complex one
is better with the whole paired interval below 0: when the intervals overlap,
the simpler model wins.

The test split is chosen by a hash of the customer id (of the whole row for a
table without ids), not by the seed: the same rows are held out in every run,
so a new model and the champion are compared on data neither was trained on.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.dataset import DEFAULT_SPEC, DatasetSpec, feature_matrix, labels
from pipeline.evaluate import SMALL_DATA_ROWS, cpu_threads, monotonicity
from pipeline.monotone_logistic import MonotoneLogisticRegression, plain

CANDIDATES = ("logreg", "hgb")


@dataclass(frozen=True)
class TrainParams:
    """The knobs of the training stage (all logged as MLflow params)."""

    seed: int = 42
    test_size: float = 0.25
    calibration_size: float = 0.25  # share of the rows that are not test rows
    calibration: str = "sigmoid"  # or "isotonic" (needs a few thousand calibration rows)
    candidates: tuple[str, ...] = CANDIDATES
    cv_folds: int = 5
    cv_repeats: int = 3  # one repeat above SMALL_DATA_ROWS development rows
    cross_calibration_rows: int = 10_000  # below this many development rows, calibrate by CV on all of them
    logreg_c: float = 1.0
    hgb_max_iter: int = 200
    hgb_learning_rate: float = 0.05
    hgb_max_leaf_nodes: int = 8
    hgb_min_samples_leaf: int = 40
    hgb_l2_regularization: float = 1.0

    def to_dict(self) -> dict:
        """Return the params as a flat dict."""
        data = asdict(self)
        data["candidates"] = ",".join(self.candidates)
        return data


@dataclass
class Splits:
    """The train, calibration and held-out test rows.

    ``cross_calibrated``: the classifier is fitted on every development row and
    calibrated by cross-validation on them (small tables); ``calibration`` is
    then empty and ``train`` holds every development row.
    """

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    cross_calibrated: bool = False

    def sizes(self) -> dict[str, int]:
        """Return the number of rows of each split (calibration 0: cross-validated on the training rows)."""
        return {"train": len(self.train), "calibration": len(self.calibration), "test": len(self.test)}

    @property
    def development(self) -> pd.DataFrame:
        """Return every row that is not held out (training and calibration)."""
        return pd.concat([self.train, self.calibration]).sort_index()


@dataclass
class TrainResult:
    """The chosen calibrated pipeline, how each candidate did in cross-validation, and the paired comparisons."""

    model: Pipeline
    kind: str
    candidates: list[dict] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)
    folds: pd.DataFrame | None = None
    fit_seconds: float = 0.0


def split(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC, params: TrainParams = TrainParams()) -> Splits:
    """Split rows into development and held-out test rows by a hash, then development rows as ``develop`` does."""
    is_test = held_out(frame, spec, params.test_size)
    splits = develop(frame.loc[~is_test], frame.loc[is_test], spec, params)
    for name, part in [("train", splits.train), ("calibration", splits.calibration), ("test", splits.test)]:
        if len(part) or name != "calibration":
            if labels(part, spec).min() == labels(part, spec).max():
                raise ValueError(f"the {name} split ({len(part)} rows) holds one class only: more data is needed")
    return splits


def held_out(frame: pd.DataFrame, spec: DatasetSpec, test_size: float) -> np.ndarray:
    """Tell which rows are held out: by a hash of the id, or of the whole row without one, whatever the seed.

    The same rows are held out in every run, so a new version and the champion
    are compared on rows neither was trained on.
    """
    keys = frame[spec.id_column] if spec.id_column else frame[[*spec.features, spec.target]]
    unit = pd.util.hash_pandas_object(keys, index=False).to_numpy() / 2.0**64
    return unit < test_size


def develop(rows: pd.DataFrame, test: pd.DataFrame, spec: DatasetSpec, params: TrainParams) -> Splits:
    """Return the development rows' splits: all cross-calibrated when few, else fitting and calibration rows."""
    if len(rows) < params.cross_calibration_rows:
        return Splits(rows.sort_index(), rows.iloc[:0], test, cross_calibrated=True)
    return Splits(*fit_and_calibration_rows(rows, spec, params), test)


def fit_and_calibration_rows(rows: pd.DataFrame, spec: DatasetSpec, params: TrainParams):
    """Split rows (seeded, stratified) into the rows a classifier is fitted on and the rows it is calibrated on."""
    fit, calibration = train_test_split(rows, test_size=params.calibration_size, random_state=params.seed,
                                        stratify=labels(rows, spec))
    return fit.sort_index(), calibration.sort_index()


def build_estimator(kind: str, spec: DatasetSpec = DEFAULT_SPEC, params: TrainParams = TrainParams()) -> Pipeline:
    """Return an unfitted candidate pipeline (``prepare`` -> ``model``) of a kind."""
    n_num, n_cat = len(spec.numeric), len(spec.categorical)
    num_idx, cat_idx = list(range(n_num)), list(range(n_num, n_num + n_cat))
    if kind == "logreg":
        parts = [("num", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                                   ("scale", StandardScaler())]), num_idx)]
        if cat_idx:
            parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat_idx))
        direction = [spec.monotone.get(name, 0) for name in spec.numeric]
        model = MonotoneLogisticRegression(C=params.logreg_c,
                                           non_negative=tuple(j for j, d in enumerate(direction) if d > 0),
                                           non_positive=tuple(j for j, d in enumerate(direction) if d < 0))
    elif kind == "hgb":
        parts = [("num", "passthrough", num_idx)]
        if cat_idx:
            parts.append(("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                                encoded_missing_value=np.nan), cat_idx))
        cst = [spec.monotone.get(name, 0) for name in spec.numeric] + [0] * n_cat
        model = HistGradientBoostingClassifier(
            monotonic_cst=cst, categorical_features=[False] * n_num + [True] * n_cat if n_cat else None,
            max_iter=params.hgb_max_iter, learning_rate=params.hgb_learning_rate,
            max_leaf_nodes=params.hgb_max_leaf_nodes, min_samples_leaf=params.hgb_min_samples_leaf,
            l2_regularization=params.hgb_l2_regularization, random_state=params.seed,
        )
    else:
        raise ValueError(f"unknown candidate {kind!r}; known: {', '.join(CANDIDATES)}")
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", model)])


def fit_calibrated(kind: str, splits: Splits, spec: DatasetSpec = DEFAULT_SPEC,
                   params: TrainParams = TrainParams()) -> Pipeline:
    """Fit a candidate on the training rows and calibrate it: by cross-validation on them, or on the calibration rows.

    Cross-validated (``splits.cross_calibrated``): the classifier is fitted on
    every training row, and the calibration map on its out-of-fold scores
    (``CalibratedClassifierCV(cv=k, ensemble=False)``), so no row is kept out
    of the fit. Otherwise the fitted classifier is frozen and calibrated on the
    separate calibration rows. Either way the model is one classifier and one
    calibration map, made of scikit-learn classes only.
    """
    with cpu_threads(len(splits.train)):
        x, y = feature_matrix(splits.train, spec), labels(splits.train, spec)
        unfitted = build_estimator(kind, spec, params)
        prepare = unfitted.named_steps["prepare"].fit(x, y)
        z, classifier = prepare.transform(x), unfitted.named_steps["model"]
        if splits.cross_calibrated:
            folds = StratifiedKFold(params.cv_folds, shuffle=True, random_state=params.seed)
            calibrator = CalibratedClassifierCV(classifier, method=params.calibration, cv=folds, ensemble=False)
            calibrator.fit(z, y)
        else:
            fitted = classifier.fit(z, y)
            calibrator = CalibratedClassifierCV(FrozenEstimator(getattr(fitted, "fitted_", fitted)),
                                                method=params.calibration)
            rows = splits.calibration
            calibrator.fit(prepare.transform(feature_matrix(rows, spec)), labels(rows, spec))
    return Pipeline([("prepare", prepare), ("model", plain(calibrator))])


def cross_validate(development: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC,
                   params: TrainParams = TrainParams()) -> pd.DataFrame:
    """Return one row per repeat, fold and candidate: the held-out fold's log loss and AUC.

    Each fold's training rows are split into fitting and calibration rows as
    the final model's are, so the folds measure the whole procedure.
    """
    y = labels(development, spec)
    repeats = params.cv_repeats if len(development) <= SMALL_DATA_ROWS else 1
    rows = []
    for repeat in range(repeats):
        folds = StratifiedKFold(params.cv_folds, shuffle=True, random_state=params.seed + repeat)
        for fold, (inside, outside) in enumerate(folds.split(np.zeros(len(y)), y)):
            held = development.iloc[outside]
            fold_splits = develop(development.iloc[inside], held, spec, params)
            x_held, y_held = feature_matrix(held, spec), y[outside]
            for kind in params.candidates:
                p = fit_calibrated(kind, fold_splits, spec, params).predict_proba(x_held)[:, 1]
                rows.append({"repeat": repeat, "fold": fold, "kind": kind, "train_rows": len(inside),
                             "test_rows": len(outside), "log_loss": float(log_loss(y_held, p, labels=[0, 1])),
                             "auc": float(roc_auc_score(y_held, p))})
    return pd.DataFrame(rows)


def corrected_interval(values: np.ndarray, train_rows: int, test_rows: int, level: float = 0.95) -> tuple:
    """Return (mean, low, high) of per-fold values, with the Nadeau-Bengio variance correction.

    The folds of repeated k-fold share most of their training rows, so the
    plain standard error is too small; the correction multiplies the variance
    by (1/k + n_test/n_train) instead of 1/k, k being the number of folds.
    """
    values = np.asarray(values, dtype=float)
    k = len(values)
    mean = float(values.mean())
    if k < 2:
        return mean, float("nan"), float("nan")
    spread = np.sqrt((1 / k + test_rows / train_rows) * values.var(ddof=1))
    t = stats.t.ppf(0.5 + level / 2, k - 1)
    return mean, float(mean - t * spread), float(mean + t * spread)


def choose(folds: pd.DataFrame, candidates: tuple[str, ...]) -> tuple[str, list[dict], list[dict]]:
    """Return the chosen kind, each candidate's CV summary, and the paired comparisons with the simplest.

    A more complex candidate replaces the current choice only when the paired
    interval of its log loss minus the current choice's lies wholly below 0.
    """
    n_train, n_test = int(folds["train_rows"].mean()), int(folds["test_rows"].mean())
    summary = []
    for kind in candidates:
        part = folds[folds["kind"] == kind]
        loss = corrected_interval(part["log_loss"].to_numpy(), n_train, n_test)
        auc = corrected_interval(part["auc"].to_numpy(), n_train, n_test)
        summary.append({"kind": kind, "cv_log_loss": loss[0], "cv_log_loss_low": loss[1], "cv_log_loss_high": loss[2],
                        "cv_auc": auc[0], "cv_auc_low": auc[1], "cv_auc_high": auc[2], "folds": len(part)})
    chosen, comparisons = candidates[0], []
    wide = folds.pivot_table(index=["repeat", "fold"], columns="kind", values="log_loss")
    for kind in candidates[1:]:
        diff = corrected_interval((wide[kind] - wide[chosen]).to_numpy(), n_train, n_test)
        better = diff[2] < 0
        comparisons.append({"candidate": kind, "against": chosen, "log_loss_difference": diff[0],
                            "low": diff[1], "high": diff[2], "better": better})
        if better:
            chosen = kind
    return chosen, summary, comparisons


def train(splits: Splits, spec: DatasetSpec = DEFAULT_SPEC, params: TrainParams = TrainParams()) -> TrainResult:
    """Cross-validate every candidate on the development rows, keep one (see the module docstring), fit it."""
    started = time.perf_counter()
    with cpu_threads(len(splits.train)):
        folds = cross_validate(splits.development, spec, params)
        kind, summary, comparisons = choose(folds, params.candidates)
        model = fit_calibrated(kind, splits, spec, params)
        mono = monotonicity(model, feature_matrix(splits.train, spec), spec, seed=params.seed)
    for row in summary:
        row["selected"] = row["kind"] == kind
    summary_row = next(r for r in summary if r["selected"])
    summary_row["monotonic"] = mono["monotonic"]
    return TrainResult(model=model, kind=kind, candidates=summary, comparisons=comparisons, folds=folds,
                       fit_seconds=time.perf_counter() - started)


def predict_scores(model, frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray:
    """Return the probability of a good outcome for each row of a frame."""
    return model.predict_proba(feature_matrix(frame, spec))[:, 1]
