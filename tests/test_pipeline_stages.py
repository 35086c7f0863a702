"""The pure stages on small frames: split, train, evaluate, gate, feature reference and drift."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from model_registry import drift
from pipeline import dataset as ds
from pipeline import evaluate as ev
from pipeline import gate as gt
from pipeline import intervals as iv
from pipeline import monitor as mon
from pipeline import out_of_time as oot
from pipeline import reference as ref
from pipeline import train as tr
from pipeline.features import FEATURES
from pipeline.monotone_logistic import fit_monotone_logistic
from pipeline.run import RunConfig, run
from pipeline.simulate import simulate
from tests.factories import synthetic_frame

FAST = tr.TrainParams(cv_repeats=1)  # one repeat of 5-fold CV: the stages, not the statistics, are tested here


@pytest.fixture(scope="module")
def trained():
    frame = synthetic_frame(800, seed=3)
    splits = tr.split(frame)
    return frame, splits, tr.train(splits, params=FAST)


def test_split_holds_the_same_customers_out_whatever_the_seed():
    frame = synthetic_frame(800)
    large = {"cross_calibration_rows": 0}  # as on a large table: separate fitting and calibration rows
    a, b = (tr.split(frame, params=tr.TrainParams(seed=seed, **large)) for seed in (1, 2))
    assert set(a.test.customer_id) == set(b.test.customer_id)
    assert set(a.train.customer_id) != set(b.train.customer_id)
    ids = [set(p.customer_id) for p in (a.train, a.calibration, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(a.sizes().values()) == 800 and 0.18 < len(a.test) / 800 < 0.32
    small = tr.split(frame)  # a small table: every development row is fitted on and cross-calibrated
    assert small.cross_calibrated and small.calibration.empty and set(small.test.customer_id) == ids[2]
    assert set(small.train.customer_id) == ids[0] | ids[1]


def test_a_table_without_ids_holds_out_the_same_rows_whatever_the_seed():
    frame = synthetic_frame(800).drop(columns=["customer_id"])
    spec = ds.DatasetSpec(id_column=None)
    a, b = (tr.split(frame, spec, tr.TrainParams(seed=seed)) for seed in (1, 2))
    assert list(a.test.index) == list(b.test.index) and 0.18 < len(a.test) / 800 < 0.32
    shuffled = tr.split(frame.sample(frac=1, random_state=3), spec)
    assert set(shuffled.test.index) == set(a.test.index)  # by the rows' content, not their order


def test_train_returns_one_calibrated_monotone_pipeline(trained):
    frame, splits, result = trained
    assert isinstance(result.model, Pipeline)
    assert [r["kind"] for r in result.candidates] == ["logreg", "hgb"]
    (chosen,) = [r for r in result.candidates if r["selected"]]
    assert chosen["monotonic"] and chosen["kind"] == result.kind
    assert chosen["folds"] == 5 and chosen["cv_log_loss_low"] < chosen["cv_log_loss"] < chosen["cv_log_loss_high"]
    assert len(result.folds) == 10 and set(result.folds["kind"]) == {"logreg", "hgb"}
    calibrator = result.model.named_steps["model"]
    assert type(calibrator).__name__ == "CalibratedClassifierCV" and len(calibrator.calibrated_classifiers_) == 1
    # Calibrated by cross-validation on every development row (a small table), made of scikit-learn classes only:
    # serving and stock MLflow unpickle it without this repository.
    assert type(calibrator.calibrated_classifiers_[0].estimator).__module__.startswith("sklearn.")
    assert b"pipeline." not in pickle.dumps(result.model)
    # Scores straight from numpy arrays in FEATURES order, as serving does.
    p = result.model.predict_proba(ds.feature_matrix(splits.test))[:, 1]
    assert p.shape == (len(splits.test),) and ((0 <= p) & (p <= 1)).all()


def test_the_gradient_boosting_candidate_is_monotone_in_every_paid_percentage():
    frame = synthetic_frame(600, seed=5)
    splits = tr.split(frame)
    model = tr.fit_calibrated("hgb", splits)
    assert list(model.named_steps["model"].calibrated_classifiers_[0].estimator.monotonic_cst) == [1] * 5
    x = ds.feature_matrix(splits.test)
    check = ev.monotonicity(model, x)
    assert check["monotonic"] and set(check["max_drop"]) == set(FEATURES)
    # Raising every year by 10 points never lowers any score.
    higher = np.clip(x + 10, 0, 100)
    assert (model.predict_proba(higher)[:, 1] >= model.predict_proba(x)[:, 1] - 1e-12).all()


def test_monotonicity_check_catches_a_model_that_punishes_paying():
    class Backwards:
        def predict_proba(self, x):
            p = 1 - x[:, -1] / 100
            return np.column_stack([1 - p, p])

    x = synthetic_frame(100)[FEATURES].to_numpy(dtype=float)
    check = ev.monotonicity(Backwards(), x)
    assert not check["monotonic"] and check["max_drop"]["paid_pct_1y_ago"] > 0.04
    assert check["max_drop"]["paid_pct_5y_ago"] == 0


def test_metrics_on_known_scores():
    y = np.array([1, 1, 1, 0, 0, 1, 0, 1])
    p = np.array([0.9, 0.85, 0.7, 0.2, 0.81, 0.95, 0.1, 0.3])
    m = ev.score_metrics(y, p, threshold=0.8)
    assert m["approved_good"] == 3 and m["approved_bad"] == 1
    assert m["rejected_good"] == 2 and m["rejected_bad"] == 2
    assert m["approval_rate"] == 0.5 and m["bad_rate_approved"] == 0.25
    assert 0.5 < m["auc"] <= 1 and 0 <= m["ks"] <= 1
    # A perfectly calibrated bin has no calibration error.
    assert ev.expected_calibration_error(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0
    assert ev.expected_calibration_error(np.array([1, 1]), np.array([0.5, 0.5])) == 0.5


def test_baseline_is_the_mean_yearly_percentage_over_100():
    frame = pd.DataFrame({f: [100.0, 50.0, np.nan] for f in FEATURES})
    frame.loc[1, "paid_pct_1y_ago"] = np.nan  # a year with nothing due is left out of the mean
    frame.loc[2, "paid_pct_1y_ago"] = 40.0
    assert list(ev.baseline_scores(frame)) == [1.0, 0.5, 0.4]


def test_evaluate_compares_model_rule_baselines_champion_and_truth(trained):
    frame, splits, result = trained
    worse = np.full(len(splits.test), 0.5)
    evaluation = ev.evaluate(result.model, splits.test, champion_scores=worse)
    assert list(evaluation.comparison.columns) == ["model", "baseline", "champion", "truth", *FEATURES, "mean_5y"]
    m = evaluation.metrics
    assert m["champion_auc"] == 0.5 and m["auc_lift_over_champion"] > 0.2 and m["auc_lift_over_champion_low"] > 0
    assert m["auc_gap_to_true_probability"] == pytest.approx(m["true_probability_auc"] - m["test_auc"])
    assert m["monotonic"] == 1.0 and 0 < m["test_ece_noise"] < 0.2
    # Every metric of the model comes with an interval around its estimate; a rule's score has no Brier score.
    for metric in ev.PROBABILITY_METRICS:
        assert m[f"test_{metric}_low"] <= m[f"test_{metric}_high"], metric
    assert m["test_auc_low"] < m["test_auc"] < m["test_auc_high"]
    assert "baseline_brier" not in m and "single_paid_pct_1y_ago_auc_low" in m and "single_mean_5y_auc" in m
    assert m["test_auc"] == pytest.approx(roc_auc_score(evaluation.y, evaluation.scores["model"]))
    table = evaluation.interval_table()
    known = table.dropna()  # a constant champion approves nobody: no bad rate among the approved
    assert {"model", "baseline", "paired"} <= set(table["scorer"]) and (known["low"] <= known["high"]).all()
    assert set(evaluation.fairness["age_band"]) <= {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert evaluation.fairness["customers"].sum() == len(splits.test)
    figures = ev.plots(evaluation)
    assert set(figures) == {"roc.png", "calibration.png", "score_histogram.png"}


def test_fairness_table_without_ages_is_empty():
    assert ev.fairness_table(None, np.array([0, 1]), np.array([0.2, 0.9])).empty


GOOD = {"test_auc": 0.84, "test_ece": 0.03, "test_ece_noise": 0.05, "test_rows": 400, "ece_rows_needed": 2500,
        "monotonic": 1.0, "monotonic_max_drop_paid_pct_1y_ago": 0.0, "baseline_auc": 0.80,
        "auc_lift_over_baseline": 0.04, "auc_lift_over_baseline_low": 0.01,
        "auc_lift_over_baseline_high": 0.07}


def test_gate_promotes_a_first_version_that_passes_the_checks():
    decision = gt.decide(GOOD)
    assert decision.promote and decision.reasons == []
    assert [c.name for c in decision.checks] == ["monotonic", "calibration", "beats percentage rule"]


@pytest.mark.parametrize("change, failed", [
    ({"monotonic": 0.0, "monotonic_max_drop_paid_pct_1y_ago": 0.02}, "monotonic"),
    ({"test_ece": 0.06}, "calibration"),  # above what a calibrated model reaches 95 % of the time
    ({"auc_lift_over_baseline_low": -0.001}, "beats percentage rule"),  # the interval straddles 0
])
def test_gate_refuses_a_version_that_fails_a_check(change, failed):
    decision = gt.decide({**GOOD, **change})
    assert not decision.promote
    assert [c.name for c in decision.checks if not c.passed] == [failed]


def test_a_table_without_a_rule_or_monotone_features_is_gated_on_what_it_has():
    table = {k: v for k, v in GOOD.items() if not k.startswith(("monotonic", "baseline", "auc_lift"))}
    table.update({"test_auc_low": 0.71, "test_auc_high": 0.86})
    decision = gt.decide(table)
    assert decision.promote and [c.name for c in decision.checks] == ["calibration", "ranks better than chance"]
    chance = gt.decide({**table, "test_auc": 0.56, "test_auc_low": 0.49})
    assert not chance.promote and "not above 0.5" in chance.reasons[0]


def test_a_version_serving_cannot_score_is_never_promoted():
    decision = gt.decide(GOOD)
    decision.add(gt.servable(None))
    assert decision.promote and decision.checks[-1].name == "servable"
    decision.add(gt.servable("predict_proba fails on its input example: ValueError: unknown category"))
    assert not decision.promote and decision.reasons == ["servable: predict_proba fails on its input example: "
                                                         "ValueError: unknown category"]


def test_a_decreasing_feature_is_checked_and_fitted_the_other_way():
    frame = synthetic_frame(600, seed=6)
    frame["debt"] = 100 - frame["paid_pct_1y_ago"] + np.random.default_rng(0).normal(0, 5, len(frame))
    spec = ds.DatasetSpec(numeric=(*FEATURES[:2], "debt"), monotone_increasing=tuple(FEATURES[:2]),
                          monotone_decreasing=("debt",), bounds={}, baseline_features=())
    splits = tr.split(frame, spec, FAST)
    for kind in ("logreg", "hgb"):
        model = tr.fit_calibrated(kind, splits, spec, FAST)
        check = ev.monotonicity(model, ds.feature_matrix(splits.test, spec), spec)
        assert check["monotonic"] and set(check["max_drop"]) == {*FEATURES[:2], "debt"}, kind
    assert list(model.named_steps["model"].calibrated_classifiers_[0].estimator.monotonic_cst) == [1, 1, -1]

    class Rising:  # a score that rises with debt breaks the declared direction
        def predict_proba(self, x):
            p = x[:, 2].astype(float) / 200
            return np.column_stack([1 - p, p])

    assert not ev.monotonicity(Rising(), ds.feature_matrix(splits.test, spec), spec)["monotonic"]


def test_gate_applies_the_ece_bar_once_the_rows_can_measure_it():
    large = {**GOOD, "test_rows": 25_000, "test_ece_noise": 0.009}
    assert gt.decide({**large, "test_ece": 0.019}).promote
    refused = gt.decide({**large, "test_ece": 0.025})  # 0.025 would pass on 400 rows, not on 25,000
    assert not refused.promote and "> 0.02" in refused.reasons[0]
    small = gt.decide(GOOD).checks[1].detail
    assert "what a calibrated model exceeds 5 % of the time on 400 rows" in small and "about 2,500 rows" in small


def test_gate_promotes_over_the_champion_only_when_the_paired_interval_is_above_zero():
    noise = {"champion_auc": 0.839, "auc_lift_over_champion": 0.001, "auc_lift_over_champion_low": -0.004,
             "auc_lift_over_champion_high": 0.0175}
    refused = gt.decide({**GOOD, **noise}, has_champion=True)
    assert not refused.promote and "not distinguishable from noise" in refused.reasons[0]
    better = {**noise, "auc_lift_over_champion": 0.02, "auc_lift_over_champion_low": 0.004}
    assert gt.decide({**GOOD, **better}, has_champion=True).promote
    unscored = gt.decide(GOOD, has_champion=True)
    assert not unscored.promote and "could not be scored" in unscored.reasons[0]


def test_weighted_metrics_equal_scikit_learn_and_the_bootstrap_is_reproducible():
    rng = np.random.default_rng(1)
    p = np.round(rng.beta(4, 2, 500), 2)  # ties
    y = (rng.random(500) < p).astype(int)
    ones = np.ones((1, 500))
    assert iv.Ranking(y, p).auc(ones)[0] == pytest.approx(roc_auc_score(y, p))
    assert ev.expected_calibration_error(y, p) == pytest.approx(ev.score_metrics(y, p)["ece"])
    statistics = {"a": iv.Ranking(y, p).auc, "b": iv.Ranking(y, 1 - p).auc}
    first, second = iv.bootstrap(statistics, 500, draws=200), iv.bootstrap(statistics, 500, draws=200)
    np.testing.assert_array_equal(first["draws"]["a"], second["draws"]["a"])
    lift = iv.paired(first, "a", "b")
    assert lift.low > 0.1 and lift.estimate == pytest.approx(2 * roc_auc_score(y, p) - 1)


def test_bad_rate_at_a_matched_approval_rate():
    y = np.array([1, 0, 1, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    ones = np.ones((1, 8))
    assert iv.bad_rate_of_top(ones, y, p, np.array([0.5]))[0] == pytest.approx(0.25)  # top 4: one bad
    assert iv.bad_rate_of_top(ones, y, p, np.array([0.25]))[0] == pytest.approx(0.5)


def test_the_monotone_logistic_regression_is_scikit_learns_when_unconstrained():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(1500, 3))
    y = (rng.random(1500) < 1 / (1 + np.exp(-(z @ [1.0, -0.4, 0.3])))).astype(int)
    free = fit_monotone_logistic(LogisticRegression(C=1.0), z, y, non_negative=[])
    reference = LogisticRegression(C=1.0, tol=1e-10).fit(z, y)
    np.testing.assert_allclose(free.coef_, reference.coef_, atol=1e-4)
    bounded = fit_monotone_logistic(LogisticRegression(C=1.0), z, y, non_negative=[0, 1])
    assert type(bounded) is LogisticRegression and bounded.coef_[0, 1] == 0 and bounded.coef_[0, 0] > 0.5
    assert bounded.predict_proba(z[:3]).shape == (3, 2)


def test_the_simpler_candidate_is_kept_unless_the_paired_interval_says_otherwise():
    rng = np.random.default_rng(3)
    rows = []
    for fold in range(10):
        base = 0.45 + rng.normal(0, 0.02)
        for kind, gap in (("logreg", 0.0), ("hgb", -0.001 + rng.normal(0, 0.004))):
            rows.append({"repeat": fold // 5, "fold": fold % 5, "kind": kind, "train_rows": 800, "test_rows": 200,
                         "log_loss": base + gap, "auc": 0.8})
    folds = pd.DataFrame(rows)
    kind, summary, comparisons = tr.choose(folds, ("logreg", "hgb"))
    assert kind == "logreg" and not comparisons[0]["better"] and comparisons[0]["low"] < 0 < comparisons[0]["high"]
    folds.loc[folds["kind"] == "hgb", "log_loss"] -= 0.03  # clearly better on every fold
    assert tr.choose(folds, ("logreg", "hgb"))[0] == "hgb"


def test_out_of_time_trains_on_earlier_cohorts_and_tests_on_the_latest():
    frame = ds.from_export(simulate(1600, seed=8, end_year=2026, cohorts=2), as_of_year=2026)
    splits = tr.split(frame, params=FAST)
    model = tr.fit_calibrated("logreg", splits, params=FAST)
    m = oot.out_of_time(model, "logreg", splits, params=FAST)
    assert m["oot_test_year"] == 2026 and m["oot_first_year"] == 2025
    assert m["oot_auc_low"] < m["oot_auc"] < m["oot_auc_high"] and 0.6 < m["oot_auc"] < 0.95
    assert "trained on decision years 2025-2025" in m["oot_note"]
    one = tr.split(ds.from_export(simulate(400, seed=8, end_year=2026), as_of_year=2026), params=FAST)
    note = oot.out_of_time(model, "logreg", one)
    assert note == {"oot_note": "one cohort only (decision year 2026): nothing to test"}


def test_feature_reference_bins_and_near_cutoff_profile(trained):
    frame, splits, result = trained
    scores = tr.predict_scores(result.model, splits.train)
    reference = ref.feature_reference(splits.train, scores, threshold=0.8)
    assert reference["features"] == FEATURES and reference["rows"] == len(splits.train)
    for dist in reference["distributions"].values():
        assert sum(dist["fractions"]) + dist["missing_fraction"] == pytest.approx(1.0)
        assert len(dist["fractions"]) == len(dist["cuts"]) + 1
    near = reference["near_cutoff"]
    assert near["rows"] >= 30 and set(near["profile"]) == set(FEATURES)
    assert abs(np.mean(near["score_range"]) - 0.8) < 0.1


def test_psi_is_zero_on_the_same_data_and_large_on_shifted_data(trained):
    frame, splits, result = trained
    reference = ref.feature_reference(splits.train, tr.predict_scores(result.model, splits.train))
    same = drift.psi_table(reference, splits.train)
    assert (same["psi"] < 1e-9).all() and set(same["band"]) == {"stable"}
    shifted = splits.train[FEATURES] - 25
    table = drift.psi_table(reference, shifted.clip(lower=0))
    assert (table["psi"] > 0.25).all() and set(table["band"]) == {"shifted"}
    assert drift.band(0.05) == "stable" and drift.band(0.2) == "watch" and drift.band(0.3) == "shifted"
    fig = mon.psi_plot(table)
    assert fig.axes


def test_psi_bands_depend_on_the_sample_size(trained):
    frame, splits, result = trained
    reference = ref.feature_reference(splits.train, tr.predict_scores(result.model, splits.train))
    rng = np.random.default_rng(0)

    def flagged_share(n: int, fixed: bool) -> float:
        flags = []
        for _ in range(60):
            sample = splits.train.iloc[rng.choice(len(splits.train), n)]
            table = drift.psi_table(reference, sample)
            flags += list(table["psi"] > 0.25) if fixed else list(table["band"] == "shifted")
        return float(np.mean(flags))

    # Samples of the training data itself: the fixed 0.25 band flags most features at 25 rows;
    # the thresholds that depend on the size flag about none, at 25 rows as at 300.
    assert flagged_share(25, fixed=True) > 0.5
    assert flagged_share(25, fixed=False) < 0.05 and flagged_share(300, fixed=False) < 0.05
    assert drift.noise_threshold([0.1] * 10 + [0.0], 25) > drift.noise_threshold([0.1] * 10 + [0.0], 300) > 0
    assert drift.band(0.3, threshold=0.5) == "stable" and drift.band(0.3, threshold=0.1) == "shifted"
    score_row = drift.score_drift(reference, tr.predict_scores(result.model, splits.train))
    assert score_row["feature"] == "score" and score_row["psi"] < 1e-9
    report = drift.report(reference, splits.train.head(20))
    assert {row["band"] for row in report} == {"too few (< 100)"} and "noise_threshold" in report[0]


def test_repeated_requests_count_once_per_customer_and_version():
    decisions = pd.DataFrame({"customer_id": [1, 1, 2, 1], "model_version": ["1", "1", "1", "2"],
                              "created_at": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02", "2026-01-04"]),
                              "score": [0.1, 0.9, 0.5, 0.7]})
    latest = mon.latest_per_customer(decisions)
    assert sorted(zip(latest["model_version"], latest["customer_id"], latest["score"])) == \
        [("1", 1, 0.9), ("1", 2, 0.5), ("2", 1, 0.7)]


def test_decision_inputs_become_feature_rows():
    decisions = pd.DataFrame({"inputs": [
        {"features": {"paid_pct_5y_ago": 87.5, "paid_pct_1y_ago": 100}, "years": {"2021": 87.5}},
        {"features": {f: 50 for f in FEATURES}},
        None,
    ]})
    rows = mon.decisions_features(decisions, FEATURES)
    assert rows.shape == (3, 5) and rows.loc[0, "paid_pct_5y_ago"] == 87.5
    assert np.isnan(rows.loc[0, "paid_pct_3y_ago"]) and rows.loc[2].isna().all()


def test_same_seed_same_metrics_different_seed_different_model():
    frame = synthetic_frame(600, seed=11)
    quiet = dict(out=lambda line: None)
    one = run(RunConfig(register=False, params=tr.TrainParams(seed=7, cv_repeats=1)), frame=frame, **quiet)
    two = run(RunConfig(register=False, params=tr.TrainParams(seed=7, cv_repeats=1)), frame=frame, **quiet)
    assert one.metrics == two.metrics and one.decision.summary() == two.decision.summary()
    three = run(RunConfig(register=False, params=tr.TrainParams(seed=8, cv_repeats=1)), frame=frame, **quiet)
    assert three.metrics["test_brier"] != one.metrics["test_brier"]


def test_a_declared_spec_with_a_categorical_feature_trains_end_to_end():
    frame = synthetic_frame(500, seed=2).rename(columns={"result": "repaid"})
    frame["region"] = np.where(frame["customer_id"] % 2 == 0, "north", "south")
    spec = ds.DatasetSpec(target="repaid", numeric=tuple(FEATURES[-3:]), categorical=("region",),
                          monotone_increasing=tuple(FEATURES[-3:]), bounds={}, true_probability=None,
                          baseline_features=())
    outcome = run(RunConfig(register=False, spec=spec, params=FAST), frame=frame, out=lambda line: None)
    assert outcome.metrics["test_auc"] > 0.6 and "baseline_auc" not in outcome.metrics
    assert outcome.metrics["monotonic"] == 1.0


def test_progress_lines_and_summary_table():
    lines = []
    run(RunConfig(register=False, params=FAST), frame=synthetic_frame(400, seed=4), out=lines.append)
    text = "\n".join(lines)
    for stage in ("[1/5] dataset", "[2/5] train", "[3/5] evaluate"):
        assert stage in text
    assert "register  skipped (--dry-run)" in text
    assert "percentage rule" in text and "true probabilities" in text and "bad_rate_approved" in text
    assert "bootstrap 95 % interval" in text and "paid_pct_1y_ago alone" in text and "five-year mean" in text
    assert "approving as many as the rule" in text and "approving as many as the model" in text
    assert "model lift" in text and "cross-validation (5 folds)" in text and "out-of-time: one cohort only" in text
