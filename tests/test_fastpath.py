"""The compiled scorer gives scikit-learn's numbers, for every pipeline shape it accepts."""
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from serving.fastpath import compile_pipeline
from serving.holder import probe_rows

FEATURES = tuple(f"f{i}" for i in range(5))
BOUNDS = dict.fromkeys(FEATURES, (0.0, 100.0))


def data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 100, (n, 5))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ [0.01, 0.01, 0.02, 0.03, 0.05] - 5)))).astype(int)
    return x, y


def build(base, method, prepare):
    x, y = data()
    fitted = base.fit(x[:1000], y[:1000])
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(x[1000:], y[1000:])
    step = ColumnTransformer([("num", prepare, list(range(5)))])
    step.fit(x)
    return Pipeline([("prepare", step), ("model", calibrated)])


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("base", [
    LogisticRegression(max_iter=1000),
    HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=8, monotonic_cst=[1] * 5, random_state=0),
], ids=["logreg", "hgb"])
@pytest.mark.parametrize("prepare", [FunctionTransformer(feature_names_out="one-to-one"), "passthrough",
                                     StandardScaler()], ids=["identity", "passthrough", "scaler"])
def test_compiled_equals_predict_proba(base, method, prepare):
    pipeline = build(base, method, prepare)
    scorer, max_rows = compile_pipeline(pipeline, 5)
    x = probe_rows(FEATURES, BOUNDS, n=3000, seed=1)
    x[5:50, 2] = np.nan  # missing values follow the trees' learned direction
    expected = pipeline.predict_proba(np.nan_to_num(x) if isinstance(base, LogisticRegression) else x)[:, 1]
    x_in = np.nan_to_num(x) if isinstance(base, LogisticRegression) else x
    limit = max_rows or len(x)
    got = np.concatenate([scorer(x_in[i:i + limit]) for i in range(0, len(x_in), limit)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert scorer(x_in[:1]).shape == (1,)


def test_other_shapes_are_not_compiled():
    x, y = data()
    forest = Pipeline([("model", CalibratedClassifierCV(RandomForestClassifier(n_estimators=5), cv=2))]).fit(x, y)
    assert compile_pipeline(forest, 5) is None
    assert compile_pipeline(Pipeline([("model", LogisticRegression().fit(x, y))]), 5) is None
