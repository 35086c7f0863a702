"""Stage 2, train: split the data, fit the candidates, calibrate them, keep the best.

Every candidate is one scikit-learn ``Pipeline`` (``prepare`` -> ``model``):

* ``logreg``: median imputation with missing-value indicators, scaling, and a
  logistic regression. It is only kept when it is monotone (every paid
  percentage has a non-negative weight), which the data does not always give;
* ``hgb``: a ``HistGradientBoostingClassifier`` whose monotonic constraints
  (+1) make sure a higher paid percentage never lowers the score.

The classifier is fitted on the training split, then frozen
(``sklearn.frozen.FrozenEstimator``) and calibrated on a separate calibration
split with ``CalibratedClassifierCV``: the decision threshold (0.8) is an
absolute probability, so the score must be one. Among the monotone
candidates the one with the lowest log loss on the calibration split is kept;
a more complex candidate (later in ``candidates``) must beat a simpler one by
``selection_margin``, so a tie on a few hundred rows goes to the simpler model.

The test split is chosen by a hash of the customer id, not by the seed: the
same customers are held out in every run, so a new model and the champion are
compared on data neither was trained on.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.dataset import DEFAULT_SPEC, DatasetSpec, feature_matrix, labels
from pipeline.evaluate import cpu_threads, monotonicity

CANDIDATES = ("logreg", "hgb")


@dataclass(frozen=True)
class TrainParams:
    """The knobs of the training stage (all logged as MLflow params)."""

    seed: int = 42
    test_size: float = 0.25
    calibration_size: float = 0.25  # share of the rows that are not test rows
    calibration: str = "sigmoid"  # or "isotonic" (needs a few thousand calibration rows)
    candidates: tuple[str, ...] = CANDIDATES
    selection_margin: float = 0.001  # log loss a more complex candidate must win by
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


@dataclass
class TrainResult:
    """The chosen calibrated pipeline and how each candidate did."""

    model: Pipeline
    kind: str
    candidates: list[dict] = field(default_factory=list)
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
    train, calibration = train_test_split(rest, test_size=params.calibration_size, random_state=params.seed,
                                          stratify=labels(rest, spec))
    splits = Splits(train.sort_index(), calibration.sort_index(), test)
    for name, part in [("train", splits.train), ("calibration", splits.calibration), ("test", splits.test)]:
        if labels(part, spec).min() == labels(part, spec).max():
            raise ValueError(f"the {name} split ({len(part)} rows) holds one class only: more data is needed")
    return splits


def build_estimator(kind: str, spec: DatasetSpec = DEFAULT_SPEC, params: TrainParams = TrainParams()) -> Pipeline:
    """Return an unfitted candidate pipeline (``prepare`` -> ``model``) of a kind."""
    n_num, n_cat = len(spec.numeric), len(spec.categorical)
    num_idx, cat_idx = list(range(n_num)), list(range(n_num, n_num + n_cat))
    if kind == "logreg":
        parts = [("num", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                                   ("scale", StandardScaler())]), num_idx)]
        if cat_idx:
            parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat_idx))
        model = LogisticRegression(C=params.logreg_c, max_iter=2000)
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
    """Fit a candidate on the train split and calibrate its frozen classifier on the calibration split."""
    with cpu_threads(len(splits.train)):
        x, y = feature_matrix(splits.train, spec), labels(splits.train, spec)
        fitted = build_estimator(kind, spec, params).fit(x, y)
        prepare, classifier = fitted.named_steps["prepare"], fitted.named_steps["model"]
        calibrator = CalibratedClassifierCV(FrozenEstimator(classifier), method=params.calibration)
        calibrator.fit(prepare.transform(feature_matrix(splits.calibration, spec)), labels(splits.calibration, spec))
    return Pipeline([("prepare", prepare), ("model", calibrator)])


def train(splits: Splits, spec: DatasetSpec = DEFAULT_SPEC, params: TrainParams = TrainParams()) -> TrainResult:
    """Fit every candidate, calibrate it, and keep the best monotone one (see the module docstring)."""
    with cpu_threads(len(splits.train)):
        return _train(splits, spec, params)


def _train(splits: Splits, spec: DatasetSpec, params: TrainParams) -> TrainResult:
    started = time.perf_counter()
    x_cal, y_cal = feature_matrix(splits.calibration, spec), labels(splits.calibration, spec)
    probe = feature_matrix(splits.train, spec)
    fitted, rows = {}, []
    for kind in params.candidates:
        t0 = time.perf_counter()
        model = fit_calibrated(kind, splits, spec, params)
        seconds = time.perf_counter() - t0
        p = model.predict_proba(x_cal)[:, 1]
        mono = monotonicity(model, probe, spec, seed=params.seed)
        fitted[kind] = model
        rows.append({"kind": kind, "calibration_auc": float(roc_auc_score(y_cal, p)),
                     "calibration_log_loss": float(log_loss(y_cal, p, labels=[0, 1])),
                     "monotonic": mono["monotonic"], "fit_seconds": round(seconds, 3)})
    pool = [r for r in rows if r["monotonic"]] or rows
    best = pool[0]
    for r in pool[1:]:  # candidates go simplest first: a later one must win by the margin
        if r["calibration_log_loss"] < best["calibration_log_loss"] - params.selection_margin:
            best = r
    for r in rows:
        r["selected"] = r is best
    return TrainResult(model=fitted[best["kind"]], kind=best["kind"], candidates=rows,
                       fit_seconds=time.perf_counter() - started)


def predict_scores(model, frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray:
    """Return the probability of a good outcome for each row of a frame."""
    return model.predict_proba(feature_matrix(frame, spec))[:, 1]
