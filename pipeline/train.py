"""Stage 2, train: split the data, compare the candidates by cross-validation, fit the chosen one.

Every candidate is one scikit-learn ``Pipeline`` (``prepare`` -> ``model``), and
every candidate is monotone by construction (a higher paid percentage never
lowers the score), so none has to be thrown away for breaking that rule:

* ``logreg``: median imputation with missing-value indicators, scaling, and a
  logistic regression whose weights on the monotone features are constrained
  to be non-negative (``pipeline.monotone_logistic``: fitted with bounds, stored
  as a plain ``LogisticRegression``). Where the data would give an older year a
  small negative weight, the constrained fit gives it 0 instead;
* ``hgb``: a ``HistGradientBoostingClassifier`` with monotonic constraints (+1).

The classifier is fitted on the training rows, then frozen
(``sklearn.frozen.FrozenEstimator``) and calibrated (sigmoid) on separate
calibration rows with ``CalibratedClassifierCV``: the decision threshold (0.8)
is an absolute probability, so the score must be one.

**Choosing**: repeated stratified k-fold cross-validation on the development
rows (every row that is not held out; ``cv_folds`` x ``cv_repeats``, one repeat
above 20,000 rows), each fold fitting and calibrating every candidate the same
way. The log loss of each candidate gets a 95 % interval, and so does the
paired difference between two candidates, fold by fold, with the
Nadeau-Bengio correction for the overlap of the folds' training rows. The
simplest candidate (first in ``candidates``) is kept unless a more complex one
is better with the whole paired interval below 0: when the intervals overlap,
the simpler model wins.

The test split is chosen by a hash of the customer id, not by the seed: the
same customers are held out in every run, so a new model and the champion are
compared on data neither was trained on.
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
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.dataset import DEFAULT_SPEC, DatasetSpec, feature_matrix, labels
from pipeline.evaluate import SMALL_DATA_ROWS, cpu_threads, monotonicity
from pipeline.monotone_logistic import fit_monotone_logistic

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
    """The train, calibration and held-out test rows."""

    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        """Return the number of rows of each split."""
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
    """Split rows into train, calibration and test (test by id hash when there is an id)."""
    if spec.id_column:
        unit = pd.util.hash_pandas_object(frame[spec.id_column], index=False).to_numpy() / 2.0**64
        is_test = unit < params.test_size
    else:
        rng = np.random.default_rng(params.seed)
        is_test = rng.random(len(frame)) < params.test_size
    test, rest = frame.loc[is_test], frame.loc[~is_test]
    train, calibration = fit_and_calibration_rows(rest, spec, params)
    splits = Splits(train, calibration, test)
    for name, part in [("train", splits.train), ("calibration", splits.calibration), ("test", splits.test)]:
        if labels(part, spec).min() == labels(part, spec).max():
            raise ValueError(f"the {name} split ({len(part)} rows) holds one class only: more data is needed")
    return splits


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
        model = LogisticRegression(C=params.logreg_c)  # a template: fit_monotone_logistic fits it
    elif kind == "hgb":
        parts = [("num", "passthrough", num_idx)]
        if cat_idx:
            parts.append(("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                                encoded_missing_value=np.nan), cat_idx))
        cst = [1 if name in spec.monotone_increasing else 0 for name in spec.numeric] + [0] * n_cat
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
    """Fit a candidate on the training split and calibrate its frozen classifier on the calibration split."""
    train, calibration = splits.train, splits.calibration
    with cpu_threads(len(train)):
        x, y = feature_matrix(train, spec), labels(train, spec)
        unfitted = build_estimator(kind, spec, params)
        prepare = unfitted.named_steps["prepare"].fit(x, y)
        z = prepare.transform(x)
        if kind == "logreg":
            bounded = [j for j, name in enumerate(spec.numeric) if name in spec.monotone_increasing]
            classifier = fit_monotone_logistic(unfitted.named_steps["model"], z, y, non_negative=bounded)
        else:
            classifier = unfitted.named_steps["model"].fit(z, y)
        calibrator = CalibratedClassifierCV(FrozenEstimator(classifier), method=params.calibration)
        calibrator.fit(prepare.transform(feature_matrix(calibration, spec)), labels(calibration, spec))
    return Pipeline([("prepare", prepare), ("model", calibrator)])


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
            fold_splits = Splits(*fit_and_calibration_rows(development.iloc[inside], spec, params), held)
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
