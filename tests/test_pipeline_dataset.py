"""The dataset stage: reading the ledger view, files and specs, and refusing bad data clearly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import dataset as ds
from pipeline.features import FEATURES
from pipeline.run import main
from pipeline.simulate import simulate
from tests.factories import synthetic_frame


def problems_of(frame, spec=ds.DEFAULT_SPEC, **kw):
    with pytest.raises(ds.DataValidationError) as info:
        ds.validate(frame, spec, min_rows=kw.pop("min_rows", 50), **kw)
    return info.value.problems


def test_a_good_frame_passes():
    frame = synthetic_frame(200)
    assert ds.validate(frame, min_rows=50) is frame


def test_missing_columns_are_named():
    frame = synthetic_frame(200).drop(columns=["paid_pct_1y_ago", "result"])
    (problem,) = problems_of(frame)
    assert "missing columns: paid_pct_1y_ago, result" in problem


def test_values_outside_0_100_are_refused():
    frame = synthetic_frame(200)
    frame.loc[3, "paid_pct_2y_ago"] = 130.0
    frame.loc[4, "paid_pct_2y_ago"] = -1.0
    (problem,) = problems_of(frame)
    assert problem.startswith("paid_pct_2y_ago: 2 values outside 0-100") and "130.0" in problem


def test_a_continuous_label_is_refused_with_a_hint():
    frame = synthetic_frame(200)
    frame["result"] = frame["result"].astype(float)
    frame.loc[0, "result"] = 0.83
    (problem,) = problems_of(frame)
    assert "must be 0 or 1" in problem and "0.83" in problem and "not an outcome" in problem


def test_missing_labels_duplicates_and_empty_rows_are_all_reported_at_once():
    frame = synthetic_frame(200)
    frame["result"] = frame["result"].astype(float)
    frame.loc[1, "result"] = np.nan
    frame.loc[2, "customer_id"] = frame.loc[3, "customer_id"]
    frame.loc[5, FEATURES] = np.nan
    problems = problems_of(frame)
    assert len(problems) == 3
    assert any("missing labels" in p for p in problems)
    assert any("duplicated ids" in p for p in problems)
    assert any("no feature value at all" in p for p in problems)


def test_nan_features_are_allowed_by_the_view_contract_but_not_when_the_spec_says_so():
    frame = synthetic_frame(200)
    frame.loc[7, "paid_pct_5y_ago"] = np.nan  # nothing due that year: NULL in the view
    ds.validate(frame, min_rows=50)
    strict = ds.DatasetSpec(allow_missing=False)
    (problem,) = problems_of(frame, strict)
    assert "paid_pct_5y_ago: 1 missing values" in problem


def test_too_few_rows_and_a_single_class():
    frame = synthetic_frame(30)
    frame["result"] = 1
    problems = problems_of(frame, min_rows=100)
    assert any("too few rows: 30" in p for p in problems)
    assert any("only one class" in p for p in problems)


def test_text_in_a_numeric_feature_is_refused():
    frame = synthetic_frame(200)
    frame["paid_pct_3y_ago"] = frame["paid_pct_3y_ago"].astype(object)
    frame.loc[9, "paid_pct_3y_ago"] = "n/a"
    (problem,) = problems_of(frame)
    assert "not numbers" in problem and "'n/a'" in problem


def test_reading_the_ledger_view_with_age_and_without_unlabelled_customers(demo_ledger_url, tmp_path):
    data = ds.load(database_url=demo_ledger_url)
    frame = data.frame
    assert len(frame) == 1000 and frame["customer_id"].is_unique
    assert set(FEATURES + ["result", "true_probability", "age", "decision_year"]) <= set(frame.columns)
    assert frame[FEATURES].notna().all().all()
    assert "year_percentage" in data.source

    # A customer without an outcome (e.g. a new one) is left out, with a note.
    import shutil

    from sqlalchemy import create_engine, text

    path = tmp_path / "ledger.db"
    shutil.copy(demo_ledger_url.removeprefix("sqlite:///"), path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outcomes WHERE customer_id = 101"))
    engine.dispose()
    data = ds.load(database_url=f"sqlite:///{path}")
    assert len(data.frame) == 999 and data.notes == ["1 rows without an outcome were left out"]


def test_the_export_frame_matches_the_ledger_view(demo_ledger_url):
    view = ds.load(database_url=demo_ledger_url).frame.set_index("customer_id").sort_index()
    export = ds.from_export(simulate(1000, 42)).set_index("customer_id").sort_index()
    pd.testing.assert_frame_equal(view[FEATURES], export[FEATURES], check_exact=False, rtol=1e-9)
    assert (view["result"] == export["result"]).all()


def test_a_csv_with_a_declared_spec(tmp_path):
    frame = synthetic_frame(300).rename(columns={"result": "repaid", "customer_id": "loan"})
    frame["region"] = np.where(frame["loan"] % 3 == 0, "north", "south")
    frame = frame.drop(columns=["true_probability", "decision_year"])
    frame.to_csv(tmp_path / "loans.csv", index=False)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"target": "repaid", "id_column": "loan", "numeric": FEATURES[-2:],
                                     "categorical": ["region"], "monotone_increasing": FEATURES[-2:],
                                     "bounds": {FEATURES[-1]: [0, 100]}}))
    spec = ds.load_spec(spec_file)
    data = ds.load(spec, data=tmp_path / "loans.csv")
    assert spec.features == FEATURES[-2:] + ["region"]
    x = ds.feature_matrix(data.frame, spec)
    assert x.shape == (300, 3) and x.dtype == object and set(x[:, 2]) == {"north", "south"}


def test_a_spec_with_unknown_keys_or_foreign_names_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown spec keys"):
        ds.DatasetSpec.from_dict({"target": "y", "numeric": ["a"], "colour": "blue"})
    with pytest.raises(ValueError, match="not one of its numeric features"):
        ds.DatasetSpec.from_dict({"target": "y", "numeric": ["a"], "monotone_increasing": ["b"]})


def test_fingerprint_is_stable_and_sensitive():
    frame = synthetic_frame(200)
    one = ds.fingerprint(frame)
    assert one == ds.fingerprint(frame.sample(frac=1, random_state=1))  # row order does not matter
    assert one["rows"] == 200 and one["history_years"] == "2021-2025"
    changed = frame.copy()
    changed.loc[0, "paid_pct_1y_ago"] += 0.5
    assert ds.fingerprint(changed)["sha256"] != one["sha256"]


def test_a_missing_file_stops_the_run_with_exit_code_2(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nope.csv"), "--dry-run"]) == 2
    assert "no data file" in capsys.readouterr().err


def test_bad_data_stops_the_run_before_training(tmp_path, capsys):
    frame = synthetic_frame(200)
    frame.loc[0, "paid_pct_1y_ago"] = 250
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["--data", str(tmp_path / "bad.csv"), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "stopped before training" in captured.err and "outside 0-100" in captured.err
    assert "[2/5] train" not in captured.out
