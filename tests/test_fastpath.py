"""The compiled scorer gives scikit-learn's numbers, for every pipeline shape it accepts."""
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from pipeline import train as tr
from serving.fastpath import compile_pipeline
from serving.holder import probe_rows
from tests.factories import synthetic_frame

FEATURES = tuple(f"f{i}" for i in range(5))
BOUNDS = dict.fromkeys(FEATURES, (0.0, 100.0))


def data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 100, (n, 5))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ [0.01, 0.01, 0.02, 0.03, 0.05] - 5)))).astype(int)
    return x, y


def build(base, method, prepare):
    x, y = data()
    x[::13, 1] = np.nan  # missing values in training: the imputer adds an indicator column
    if isinstance(base, LogisticRegression) and not isinstance(prepare, SkPipeline):
        x = np.nan_to_num(x)
    step = ColumnTransformer([("num", prepare, list(range(5)))])
    z = step.fit_transform(x)
    fitted = base.fit(z[:1000], y[:1000])
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(z[1000:], y[1000:])
    return Pipeline([("prepare", step), ("model", calibrated)])


def _logreg():
    return LogisticRegression(max_iter=1000)


def _hgb():
    return HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=8, monotonic_cst=[1] * 5, random_state=0)


PREPARES = {
    "identity": lambda: FunctionTransformer(feature_names_out="one-to-one"),
    "passthrough": lambda: "passthrough",
    "scaler": StandardScaler,
    "impute-scale": lambda: SkPipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                                        ("scale", StandardScaler())]),
}
# The trees route missing values themselves: the pipeline never imputes for them.
SHAPES = [(base, prepare) for base in ("logreg", "hgb") for prepare in PREPARES
          if not (base == "hgb" and prepare == "impute-scale")]


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("base_name,prepare_name", SHAPES, ids=[f"{b}-{p}" for b, p in SHAPES])
def test_compiled_equals_predict_proba(base_name, prepare_name, method):
    base = {"logreg": _logreg, "hgb": _hgb}[base_name]()
    prepare = PREPARES[prepare_name]()
    pipeline = build(base, method, prepare)
    scorer, max_rows = compile_pipeline(pipeline, 5)
    x = probe_rows(FEATURES, BOUNDS, n=3000, seed=1)
    x[5:50, 1] = np.nan  # missing values: imputed, or the trees' learned direction
    plain_logistic = isinstance(base, LogisticRegression) and not isinstance(prepare, SkPipeline)
    x_in = np.nan_to_num(x) if plain_logistic else x
    expected = pipeline.predict_proba(x_in)[:, 1]
    limit = max_rows or len(x)
    got = np.concatenate([scorer(x_in[i:i + limit]) for i in range(0, len(x_in), limit)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert scorer(x_in[:1]).shape == (1,)


def test_other_shapes_are_not_compiled():
    x, y = data()
    forest = Pipeline([("model", CalibratedClassifierCV(RandomForestClassifier(n_estimators=5), cv=2))]).fit(x, y)
    assert compile_pipeline(forest, 5) is None
    assert compile_pipeline(Pipeline([("model", LogisticRegression().fit(x, y))]), 5) is None


@pytest.mark.parametrize("kind", ["logreg", "hgb"])
def test_the_pipelines_own_candidates_compile(kind):
    frame = synthetic_frame(600)
    frame.loc[frame.index[::17], "paid_pct_3y_ago"] = np.nan  # the ledger's "nothing due that year"
    pipeline = tr.fit_calibrated(kind, tr.split(frame))
    compiled = compile_pipeline(pipeline, 5)
    assert compiled is not None, f"{kind} is not compiled"
    scorer, max_rows = compiled
    x = probe_rows(tuple(f"f{i}" for i in range(5)), BOUNDS, n=max_rows or 2000)
    np.testing.assert_allclose(scorer(x), pipeline.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
