"""The compiled scorer gives scikit-learn's numbers, for every pipeline shape it accepts.

Trees: bit-for-bit, with both tree scorers (numba's leaf masks and the numpy
walk), on random rows, NaNs, values on and next to every threshold, infinities
and many batch sizes. Logistic: to 1e-12 (numpy's and scikit-learn's matrix
products may round the last bit differently), and bit-for-bit with itself whatever the
batch a row comes in (a replay scores one row; the decision scored it with others).
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from model_registry.servable import UNSEEN, probe_rows
from pipeline import train as tr
from pipeline.dataset import feature_matrix
from serving import jit, trees
from serving.fastpath import TREE_MAX_ROWS, compile_pipeline
from tests.factories import APPLICANT_CATEGORICAL, APPLICANT_NUMERIC, synthetic_frame
from tests.plugins.mlflow_stores import APPLICANT_SPEC, applicant_frame

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


BACKENDS = {"logreg": [None], "hgb": ["numba", "numpy"]}
CASES = [(base, prepare, backend) for base, prepare in SHAPES for backend in BACKENDS[base]]


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("base_name,prepare_name,backend", CASES, ids=[f"{b}-{p}-{k}" for b, p, k in CASES])
def test_compiled_equals_predict_proba(base_name, prepare_name, backend, method):
    base = {"logreg": _logreg, "hgb": _hgb}[base_name]()
    prepare = PREPARES[prepare_name]()
    pipeline = build(base, method, prepare)
    scorer, max_rows = compile_pipeline(pipeline, 5, backend=backend)
    x = probe_rows(FEATURES, BOUNDS, n=3000, seed=1)
    x[5:50, 1] = np.nan  # missing values: imputed, or the trees' learned direction
    plain_logistic = isinstance(base, LogisticRegression) and not isinstance(prepare, SkPipeline)
    x_in = np.nan_to_num(x) if plain_logistic else x
    expected = pipeline.predict_proba(x_in)[:, 1]
    limit = max_rows or len(x)
    got = np.concatenate([scorer(x_in[i:i + limit]) for i in range(0, len(x_in), limit)])
    if base_name == "hgb":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert scorer(x_in[:1]).shape == (1,)


def _forest_pipeline(max_leaf_nodes=8, max_iter=60, seed=0):
    x, y = data(3000, seed)
    x[::11, 2] = np.nan  # learned missing-value directions
    hgb = HistGradientBoostingClassifier(max_iter=max_iter, max_leaf_nodes=max_leaf_nodes, min_samples_leaf=5,
                                         random_state=seed).fit(x[:2000], y[:2000])
    calibrated = CalibratedClassifierCV(FrozenEstimator(hgb), method="sigmoid").fit(x[2000:], y[2000:])
    return Pipeline([("prepare", "passthrough"), ("model", calibrated)]), hgb


def _hard_rows(hgb, n=20_000, seed=7):
    """Random rows, then rows on and next to every threshold, infinities and NaNs in every column."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 105, (n, 5))
    nodes = np.concatenate([p[0].nodes for p in hgb._predictors])
    nodes = nodes[nodes["is_leaf"] == 0]
    edges = []
    for node in nodes:
        t = node["num_threshold"]
        for v in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)):
            row = rng.uniform(0, 100, 5)
            row[node["feature_idx"]] = v
            edges.append(row)
    x = np.concatenate([x, np.array(edges)])
    x[rng.random(x.shape) < 0.05] = np.nan
    x[::97, 0], x[::89, 3], x[::83, 1] = np.inf, -np.inf, np.nan
    return x


@pytest.mark.parametrize("max_leaf_nodes", [8, 31, 64], ids=lambda n: f"{n}-leaves")
def test_trees_bit_for_bit_on_hard_rows_and_every_batch_size(max_leaf_nodes):
    pipeline, hgb = _forest_pipeline(max_leaf_nodes)
    x = _hard_rows(hgb)
    expected = pipeline.predict_proba(x)[:, 1]
    for backend in ("numba", "numpy"):
        scorer, max_rows = compile_pipeline(pipeline, 5, backend=backend)
        sizes = [1, 2, 6, 63, 64, 65, 1000, trees.PARALLEL_MIN_ROWS + 7] if max_rows is None else [1, 6, max_rows]
        for size in sizes:
            for start in range(0, min(len(x), 3 * size), size):
                np.testing.assert_array_equal(scorer(x[start:start + size]), expected[start:start + size],
                                              err_msg=f"{backend}, batch of {size} from row {start}")
        if max_rows is None:
            np.testing.assert_array_equal(scorer(x), expected, err_msg=f"{backend}, all {len(x)} rows")
    assert trees.raw_masks(trees.leaf_masks(trees.flatten(hgb)), x).tolist() == hgb._raw_predict(x).ravel().tolist()


def test_every_row_reaches_exactly_one_leaf_per_tree():
    _, hgb = _forest_pipeline(31)
    masks = trees.leaf_masks(trees.flatten(hgb))
    x = _hard_rows(hgb, n=500)
    n_trees = len(masks.init)
    for row in x[:300]:
        vec = masks.init.copy()
        for f, column in enumerate(masks.columns):
            cuts = masks.cuts[masks.cut_start[f]:masks.cut_start[f + 1]]
            b = len(cuts) + 1 if np.isnan(row[column]) else int(np.searchsorted(cuts, row[column], side="left"))
            vec &= masks.masks[masks.mask_start[f] + b * n_trees: masks.mask_start[f] + (b + 1) * n_trees]
        assert all(bin(int(v)).count("1") == 1 for v in vec)


def test_large_trees_fall_back_to_the_numpy_walk():
    pipeline, hgb = _forest_pipeline(max_leaf_nodes=80, max_iter=5)
    assert trees.leaf_masks(trees.flatten(hgb)) is None  # more than 64 leaves in a tree
    assert compile_pipeline(pipeline, 5, backend="numba") is None
    scorer, max_rows = compile_pipeline(pipeline, 5)
    assert max_rows == TREE_MAX_ROWS
    x = _hard_rows(hgb, n=200)[:TREE_MAX_ROWS]
    np.testing.assert_array_equal(scorer(x), pipeline.predict_proba(x)[:, 1])


def test_without_numba_the_numpy_walk_is_used(monkeypatch):
    pipeline, hgb = _forest_pipeline()
    monkeypatch.setattr(jit, "available", lambda: False)
    scorer, max_rows = compile_pipeline(pipeline, 5)
    assert max_rows == TREE_MAX_ROWS
    x = _hard_rows(hgb, n=100)[:TREE_MAX_ROWS]
    np.testing.assert_array_equal(scorer(x), pipeline.predict_proba(x)[:, 1])


@pytest.mark.parametrize("prepare_name", ["scaler", "impute-scale"])
def test_without_numba_the_logistic_model_is_scored_with_numpy(monkeypatch, prepare_name):
    pipeline = build(_logreg(), "sigmoid", PREPARES[prepare_name]())
    compiled, _ = compile_pipeline(pipeline, 5)
    monkeypatch.setattr(jit, "available", lambda: False)
    plain, _ = compile_pipeline(pipeline, 5)
    x = probe_rows(FEATURES, BOUNDS, n=2000, seed=3)
    if prepare_name == "impute-scale":
        x[::7, 1] = np.nan
    expected = pipeline.predict_proba(x)[:, 1]
    np.testing.assert_allclose(plain(x), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled(x), plain(x), rtol=0, atol=1e-12)


def test_two_threads_score_at_once():

    pipeline, hgb = _forest_pipeline()
    scorer, _ = compile_pipeline(pipeline, 5, backend="numba")
    x = _hard_rows(hgb, n=50_000)
    expected = pipeline.predict_proba(x)[:, 1]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda part: scorer(x[part::4]), range(4)))
    for part, got in enumerate(results):
        np.testing.assert_array_equal(got, expected[part::4])


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
    x[::13, 2] = np.nan
    if kind == "hgb":  # the demo champion's shape: 200 trees
        assert max_rows is None, "the compiled tree scorer is not used"
        np.testing.assert_array_equal(scorer(x), pipeline.predict_proba(x)[:, 1])
    else:
        np.testing.assert_allclose(scorer(x), pipeline.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["logreg", "hgb"])
def test_a_row_scores_the_same_bits_in_any_batch(kind):
    frame = synthetic_frame(600)
    scorer, _ = compile_pipeline(tr.fit_calibrated(kind, tr.split(frame)), 5)
    x = probe_rows(FEATURES, BOUNDS, n=600)
    whole = scorer(x)
    for size in (1, 2, 3, 7, 13, 64):
        for start in range(0, len(x) - size, 97):
            np.testing.assert_array_equal(scorer(x[start:start + size]), whole[start:start + size],
                                          err_msg=f"batch of {size} from row {start}")


def test_a_tree_that_never_splits_and_a_feature_no_tree_uses():

    _, hgb = _forest_pipeline(max_iter=10)
    forest = trees.flatten(hgb)
    # Put a one-leaf tree first (its root is its leaf), as boosting makes when no split gains.
    shift = 1
    children = np.concatenate([[0, 0], forest.children + shift])
    stump = replace(forest, children=children, feature=np.concatenate([[0], forest.feature]),
                    threshold=np.concatenate([[0.0], forest.threshold]),
                    missing_left=np.concatenate([[False], forest.missing_left]),
                    value=np.concatenate([[0.125], forest.value]), roots=np.concatenate([[0], forest.roots + shift]),
                    depths=np.concatenate([[0], forest.depths]))
    x = _hard_rows(hgb, n=3000)
    x = np.concatenate([x, np.zeros((len(x), 1))], axis=1)  # a sixth column no tree reads
    masks = trees.leaf_masks(stump)
    assert 5 not in masks.columns
    np.testing.assert_array_equal(trees.raw_masks(masks, x), trees.raw_numpy(stump, x))
    np.testing.assert_array_equal(trees.raw_numpy(forest, x), hgb._raw_predict(x[:, :5]).ravel())


def _mixed(kind: str, method: str = "sigmoid"):
    """The pipeline's candidate of a kind, fitted on a table with categorical columns; and probe rows for it."""
    frame = applicant_frame()
    params = tr.TrainParams(calibration=method)
    pipeline = tr.fit_calibrated(kind, tr.split(frame, APPLICANT_SPEC, params), APPLICANT_SPEC, params)
    ranges = {"duration_months": (1.0, 120.0), "credit_amount": (0.0, 20_000.0), "age_years": (18.0, 100.0)}
    categories = {c: sorted(frame[c].dropna().unique()) for c in APPLICANT_CATEGORICAL}
    features = (*APPLICANT_NUMERIC, *APPLICANT_CATEGORICAL)
    return pipeline, probe_rows(features, ranges, n=3000, seed=2, categories=categories)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_a_one_hot_logistic_model_compiles_exactly(method):
    pipeline, x = _mixed("logreg", method)
    scorer, max_rows = compile_pipeline(pipeline, x.shape[1])
    assert max_rows is None and {"missing", UNSEEN} <= set(x[:, -1])
    np.testing.assert_allclose(scorer(x), pipeline.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(scorer(x[:1]), pipeline.predict_proba(x[:1])[:, 1], rtol=0, atol=1e-12)


def test_trees_on_categories_and_other_encodings_are_not_compiled():
    pipeline, x = _mixed("hgb")
    assert compile_pipeline(pipeline, x.shape[1]) is None  # categorical splits: scored by predict_proba
    logistic, _ = _mixed("logreg")
    for encoder in (OneHotEncoder(drop="first", sparse_output=False), OneHotEncoder(handle_unknown="error",
                                                                                   sparse_output=False)):
        prepare = clone(logistic.named_steps["prepare"]).set_params(cat=encoder)
        frame = applicant_frame()
        z = prepare.fit_transform(feature_matrix(frame, APPLICANT_SPEC))
        model = CalibratedClassifierCV(LogisticRegression(max_iter=2000), cv=2).fit(z, frame["good"])
        assert compile_pipeline(Pipeline([("prepare", prepare), ("model", model)]), x.shape[1]) is None
