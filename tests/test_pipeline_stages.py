"""The pure stages on small frames: split, train, evaluate, gate, feature reference and drift."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from model_registry import drift
from pipeline import dataset as ds
from pipeline import evaluate as ev
from pipeline import gate as gt
from pipeline import monitor as mon
from pipeline import reference as ref
from pipeline import train as tr
from pipeline.features import FEATURES
from pipeline.run import RunConfig, run
from tests.factories import synthetic_frame


@pytest.fixture(scope="module")
def trained():
    frame = synthetic_frame(800, seed=3)
    splits = tr.split(frame)
    return frame, splits, tr.train(splits)


def test_split_holds_the_same_customers_out_whatever_the_seed():
    frame = synthetic_frame(800)
    a, b = tr.split(frame, params=tr.TrainParams(seed=1)), tr.split(frame, params=tr.TrainParams(seed=2))
    assert set(a.test.customer_id) == set(b.test.customer_id)
    assert set(a.train.customer_id) != set(b.train.customer_id)
    ids = [set(p.customer_id) for p in (a.train, a.calibration, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(a.sizes().values()) == 800 and 0.18 < len(a.test) / 800 < 0.32


def test_train_returns_one_calibrated_monotone_pipeline(trained):
    frame, splits, result = trained
    assert isinstance(result.model, Pipeline)
    assert [r["kind"] for r in result.candidates] == ["logreg", "hgb"]
    (chosen,) = [r for r in result.candidates if r["selected"]]
    assert chosen["monotonic"] and chosen["kind"] == result.kind
    calibrator = result.model.named_steps["model"]
    assert type(calibrator).__name__ == "CalibratedClassifierCV"
    assert type(calibrator.estimator).__name__ == "FrozenEstimator"
    # Scores straight from numpy arrays in FEATURES order, as serving does.
    p = result.model.predict_proba(ds.feature_matrix(splits.test))[:, 1]
    assert p.shape == (len(splits.test),) and ((0 <= p) & (p <= 1)).all()


def test_the_gradient_boosting_candidate_is_monotone_in_every_paid_percentage():
    frame = synthetic_frame(600, seed=5)
    splits = tr.split(frame)
    model = tr.fit_calibrated("hgb", splits)
    assert list(model.named_steps["model"].estimator.estimator.monotonic_cst) == [1] * 5
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


def test_evaluate_compares_model_rule_champion_and_ceiling(trained):
    frame, splits, result = trained
    worse = np.full(len(splits.test), 0.5)
    evaluation = ev.evaluate(result.model, splits.test, champion_scores=worse)
    assert list(evaluation.comparison.columns) == ["model", "baseline", "champion", "bayes"]
    m = evaluation.metrics
    assert m["champion_auc"] == 0.5 and m["auc_lift_over_champion"] > 0.2
    assert m["auc_gap_to_bayes"] == pytest.approx(m["bayes_auc"] - m["test_auc"])
    assert m["monotonic"] == 1.0 and 0 < m["test_ece_noise"] < 0.2
    assert set(evaluation.fairness["age_band"]) <= {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}
    assert evaluation.fairness["customers"].sum() == len(splits.test)
    figures = ev.plots(evaluation)
    assert set(figures) == {"roc.png", "calibration.png", "score_histogram.png"}


def test_fairness_table_without_ages_is_empty():
    assert ev.fairness_table(None, np.array([0, 1]), np.array([0.2, 0.9])).empty


GOOD = {"test_auc": 0.84, "test_brier": 0.15, "test_ece": 0.03, "test_ece_noise": 0.02, "monotonic": 1.0,
        "baseline_auc": 0.83, "baseline_brier": 0.21}


def test_gate_promotes_a_first_version_that_passes_the_bars():
    decision = gt.decide(GOOD)
    assert decision.promote and decision.reasons == []
    assert [c.name for c in decision.checks] == ["monotonic", "calibration", "beats percentage rule"]


@pytest.mark.parametrize("change, failed", [
    ({"monotonic": 0.0, "monotonic_max_drop_paid_pct_1y_ago": 0.02}, "monotonic"),
    ({"test_ece": 0.09}, "calibration"),
    ({"test_auc": 0.80}, "beats percentage rule"),
    ({"test_brier": 0.22}, "beats percentage rule"),
])
def test_gate_refuses_a_version_that_fails_an_absolute_bar(change, failed):
    decision = gt.decide({**GOOD, **change})
    assert not decision.promote
    assert [c.name for c in decision.checks if not c.passed] == [failed]


def test_gate_needs_the_champion_beaten_by_the_margin():
    champion = {"champion_auc": 0.839, "champion_brier": 0.15}
    assert not gt.decide({**GOOD, **champion}, has_champion=True).promote  # +0.001 < 0.002
    assert gt.decide({**GOOD, **champion, "test_auc": 0.842}, has_champion=True).promote
    unscored = gt.decide(GOOD, has_champion=True)
    assert not unscored.promote and "could not be scored" in unscored.reasons[0]


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
    one = run(RunConfig(register=False, params=tr.TrainParams(seed=7)), frame=frame, **quiet)
    two = run(RunConfig(register=False, params=tr.TrainParams(seed=7)), frame=frame, **quiet)
    assert one.metrics == two.metrics
    three = run(RunConfig(register=False, params=tr.TrainParams(seed=8)), frame=frame, **quiet)
    assert three.metrics["test_brier"] != one.metrics["test_brier"]


def test_a_declared_spec_with_a_categorical_feature_trains_end_to_end():
    frame = synthetic_frame(500, seed=2).rename(columns={"result": "repaid"})
    frame["region"] = np.where(frame["customer_id"] % 2 == 0, "north", "south")
    spec = ds.DatasetSpec(target="repaid", numeric=tuple(FEATURES[-3:]), categorical=("region",),
                          monotone_increasing=tuple(FEATURES[-3:]), bounds={}, true_probability=None,
                          baseline_features=())
    outcome = run(RunConfig(register=False, spec=spec), frame=frame, out=lambda line: None)
    assert outcome.metrics["test_auc"] > 0.6 and "baseline_auc" not in outcome.metrics
    assert outcome.metrics["monotonic"] == 1.0


def test_progress_lines_and_summary_table():
    lines = []
    run(RunConfig(register=False), frame=synthetic_frame(400, seed=4), out=lines.append)
    text = "\n".join(lines)
    for stage in ("[1/5] dataset", "[2/5] train", "[3/5] evaluate"):
        assert stage in text
    assert "register  skipped (--dry-run)" in text
    assert "percentage rule" in text and "Bayes ceiling" in text and "bad_rate_approved" in text
