"""The demo data simulator: deterministic, plausible, and not too easy to learn."""
from datetime import date

import numpy as np
import pandas as pd
import pytest

from contracts import ledger_export
from pipeline import simulate as sim
from pipeline.features import yearly_percentages

END_YEAR = 2026


@pytest.fixture(scope="module")
def data():
    return sim.simulate(2000, seed=7, end_year=END_YEAR)


@pytest.fixture(scope="module")
def big():
    return sim.simulate(20_000, seed=3, end_year=END_YEAR)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the ROC AUC (Mann-Whitney U with average ranks for ties)."""
    ranks = pd.Series(scores).rank().to_numpy()
    pos = labels == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def logistic_fit(x: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    """Return logistic regression weights (intercept first), fitted by Newton's method."""
    X = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(X.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-X @ w))
        hessian = X.T @ (X * (p * (1 - p))[:, None]) + 1e-6 * np.eye(X.shape[1])
        w += np.linalg.solve(hessian, X.T @ (y - p))
    return w


def test_same_seed_same_frames_other_seed_differs():
    a, b = sim.simulate(300, seed=11, end_year=END_YEAR), sim.simulate(300, seed=11, end_year=END_YEAR)
    for name in ledger_export.FILES:
        pd.testing.assert_frame_equal(a[name], b[name])
    c = sim.simulate(300, seed=12, end_year=END_YEAR)
    assert not a["dues"].equals(c["dues"])
    assert not a["outcomes"].equals(c["outcomes"])


def test_shapes_and_columns(data):
    customers, dues, outcomes = data["customers"], data["dues"], data["outcomes"]
    assert list(customers.columns) == ["customer_id", "name", "email", "age", "phone", "bank_credit_cents"]
    assert list(dues.columns) == ["customer_id", "year", "month", "due_cents", "paid_cents"]
    assert list(outcomes.columns) == ["customer_id", "result", "true_probability"]
    assert len(customers) == len(outcomes) == 2000
    assert len(dues) == 2000 * 60
    assert customers["customer_id"].iloc[0] == 101
    assert customers["customer_id"].is_unique
    for frame, cols in ((customers, ["customer_id", "age", "bank_credit_cents"]),
                        (dues, list(dues.columns)), (outcomes, ["customer_id", "result"])):
        for col in cols:
            assert frame[col].dtype == np.int64, col


def test_ledger_invariants(data):
    dues, customers = data["dues"], data["customers"]
    assert (dues["due_cents"] > 0).all()
    assert ((dues["paid_cents"] >= 0) & (dues["paid_cents"] <= dues["due_cents"])).all()
    assert (customers["bank_credit_cents"] >= 0).all()
    assert customers["age"].between(18, 80).all()
    assert customers["name"].str.len().gt(0).all()
    assert customers["email"].str.contains("@").all()
    assert not dues.duplicated(["customer_id", "year", "month"]).any()
    per_customer = dues.groupby("customer_id").size()
    assert (per_customer == 60).all()
    assert sorted(dues["year"].unique()) == [2021, 2022, 2023, 2024, 2025]
    assert sorted(dues["month"].unique()) == list(range(1, 13))
    # Dues vary month to month, and between customers.
    assert dues.groupby("customer_id")["due_cents"].nunique().min() > 30
    assert dues["due_cents"].min() < 100_000 and dues["due_cents"].max() > 1_000_000


def test_default_end_year_is_this_year():

    dues = sim.simulate(5, seed=1)["dues"]
    assert dues["year"].max() == date.today().year - 1


def test_behaviour_is_varied(data):
    dues, customers = data["dues"], data["customers"]
    ratio = dues["paid_cents"] / dues["due_cents"]
    assert (ratio == 1).mean() > 0.5           # most months paid in full
    assert (ratio == 0).mean() > 0.01          # some missed
    assert ((ratio > 0) & (ratio < 1)).mean() > 0.01  # some partly paid
    # The allocation rule: bank credit is only what is left once every month is paid.
    owed = (dues["due_cents"] - dues["paid_cents"]).groupby(dues["customer_id"]).sum()
    holders = customers.set_index("customer_id")["bank_credit_cents"] > 0
    assert (owed[holders[holders].index] == 0).all()


def test_some_customers_overpay_with_nothing_owed(big):
    assert (big["customers"]["bank_credit_cents"] > 0).any()


def test_yearly_percentages_spread(big):
    pct = yearly_percentages(big["dues"]).to_numpy().ravel()
    assert pct.min() >= 0 and pct.max() <= 100
    assert (pct < 50).mean() > 0.02
    assert (pct < 20).mean() > 0.002
    assert (pct > 95).mean() > 0.3
    assert np.median(pct) > 85


def test_outcomes_are_plausible_and_not_a_function_of_percentages(big):
    outcomes = big["outcomes"]
    y = outcomes["result"].to_numpy()
    p = outcomes["true_probability"].to_numpy()
    assert set(np.unique(y)) == {0, 1}
    assert 0.6 <= y.mean() <= 0.8
    assert ((p > 0) & (p < 1)).all()

    pct = yearly_percentages(big["dues"])
    # Customers with the same rounded yearly profile end up with both labels.
    profile = pct.round(0).astype(int).astype(str).agg("-".join, axis=1)
    labels_per_profile = pd.Series(y, index=pct.index).groupby(profile).nunique()
    assert (labels_per_profile == 2).any()

    # A model on the five percentages learns something; the true probabilities rank better than
    # any model can on average; the plain average of the percentages misses the trend.
    x = pct.to_numpy() / 100
    half = len(y) // 2
    w = logistic_fit(x[:half], y[:half])
    model_auc = auc(y[half:], np.column_stack([np.ones(len(y) - half), x[half:]]) @ w)
    reference = auc(y[half:], p[half:])
    mean_auc = auc(y[half:], x[half:].mean(axis=1))
    assert 0.72 < model_auc < 0.92
    assert reference > model_auc + 0.02  # the percentages reveal the hidden state only in part
    assert model_auc > mean_auc + 0.03


def test_the_true_probability_is_not_a_formula_of_the_feature_years(big):
    # The old simulator drew the label from the last two feature years (correlation 0.995 with a
    # formula of them). Now the outcome comes after them: the best quadratic formula of the five
    # years explains far less of the true log-odds.
    p = big["outcomes"]["true_probability"].to_numpy()
    x = yearly_percentages(big["dues"]).to_numpy() / 100
    design = np.column_stack([np.ones(len(x)), x, x ** 2])
    logit = np.log(p / (1 - p))
    fitted = design @ np.linalg.lstsq(design, logit, rcond=None)[0]
    assert np.corrcoef(fitted, logit)[0, 1] < 0.9


def test_the_true_probability_is_the_chance_of_the_outcome(big):
    # Within each tenth of the true probabilities, the share of good outcomes is their mean.
    y = big["outcomes"]["result"].to_numpy()
    p = big["outcomes"]["true_probability"].to_numpy()
    decile = np.minimum((pd.Series(p).rank(pct=True).to_numpy() * 10).astype(int), 9)
    for d in range(10):
        yd, pd_ = y[decile == d], p[decile == d]
        standard_error = np.sqrt(pd_.mean() * (1 - pd_.mean()) / len(yd))
        assert abs(yd.mean() - pd_.mean()) < 4 * standard_error + 1e-3, d


def test_the_outcome_window_is_not_in_the_export():
    data = sim.simulate(50, seed=1, end_year=END_YEAR)
    assert data["dues"]["year"].max() == END_YEAR - 1  # the window (END_YEAR) has no dues


def test_cohorts_have_windows_in_successive_years():
    data = sim.simulate(60, seed=1, end_year=END_YEAR, cohorts=2)
    last = data["dues"].groupby("customer_id")["year"].agg(["min", "max"])
    assert tuple(last.loc[101]) == (END_YEAR - 5, END_YEAR - 1)  # customer 101: the latest cohort
    assert tuple(last.loc[102]) == (END_YEAR - 6, END_YEAR - 2)
    assert (data["dues"].groupby("customer_id").size() == 60).all()
    with pytest.raises(ValueError):
        sim.simulate(5, cohorts=0)


def test_write_read_round_trip(tmp_path, data):
    folder = ledger_export.write(data, tmp_path / "data")
    assert sorted(f.name for f in folder.iterdir()) == ["customers.parquet", "dues.parquet", "outcomes.parquet"]
    back = ledger_export.read(folder)
    for name in ledger_export.FILES:
        pd.testing.assert_frame_equal(back[name], data[name])


def test_default_directory_is_under_var(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    assert ledger_export.default_dir() == tmp_path / "data"


def test_cli_writes_files_and_prints_summary(tmp_path, capsys):
    assert sim.main(["--customers", "50", "--seed", "1", "--end-year", "2030", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "good outcomes" in out and "q50" in out
    assert ledger_export.read(tmp_path)["dues"]["year"].max() == 2029


def test_rejects_no_customers():
    with pytest.raises(ValueError):
        sim.simulate(0)
