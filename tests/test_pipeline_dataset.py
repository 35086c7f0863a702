"""The dataset stage: reading the ledger view, files and specs, and refusing bad data clearly."""
from __future__ import annotations

import json
import shutil
from datetime import date

import numpy as np
import pandas as pd
import pytest
from freezegun import freeze_time
from sqlalchemy import create_engine, text

from contracts import ledger_export
from pipeline import dataset as ds
from pipeline.features import FEATURES, customer_years
from pipeline.run import main as run_main
from pipeline.simulate import simulate
from portal.importer import import_ledger
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
    assert "customer_years" in data.source
    assert (frame["decision_year"] == date.today().year).all()
    assert (frame["paid_pct_all_years"] > 0).all()

    # A customer without an outcome (e.g. a new one) is left out, with a note.


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
    spec_file.write_text(json.dumps({"model_name": "loans", "target": "repaid", "id_column": "loan",
                                     "numeric": FEATURES[-2:],
                                     "categorical": ["region"], "monotone_increasing": FEATURES[-2:],
                                     "bounds": {FEATURES[-1]: [0, 100]}}))
    spec = ds.load_spec(spec_file)
    data = ds.load(spec, data=tmp_path / "loans.csv")
    assert spec.features == FEATURES[-2:] + ["region"]
    x = ds.feature_matrix(data.frame, spec)
    assert x.shape == (300, 3) and x.dtype == object and set(x[:, 2]) == {"north", "south"}


def test_a_spec_with_unknown_keys_or_foreign_names_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown spec keys"):
        ds.DatasetSpec.from_dict({"model_name": "t", "target": "y", "numeric": ["a"], "colour": "blue"})
    with pytest.raises(ValueError, match="not one of its numeric features"):
        ds.DatasetSpec.from_dict({"model_name": "t", "target": "y", "numeric": ["a"], "monotone_increasing": ["b"]})


def test_fingerprint_is_stable_and_sensitive():
    frame = synthetic_frame(200)
    one = ds.fingerprint(frame)
    assert one == ds.fingerprint(frame.sample(frac=1, random_state=1))  # row order does not matter
    assert one["rows"] == 200 and one["history_years"] == "2021-2025"
    changed = frame.copy()
    changed.loc[0, "paid_pct_1y_ago"] += 0.5
    assert ds.fingerprint(changed)["sha256"] != one["sha256"]


def test_a_missing_file_stops_the_run_with_exit_code_2(tmp_path, capsys):
    assert run_main(["--data", str(tmp_path / "nope.csv"), "--dry-run"]) == 2
    assert "no data file" in capsys.readouterr().err


def test_bad_data_stops_the_run_before_training(tmp_path, capsys):
    frame = synthetic_frame(200)
    frame.loc[0, "paid_pct_1y_ago"] = 250
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert run_main(["--data", str(tmp_path / "bad.csv"), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "stopped before training" in captured.err and "outside 0-100" in captured.err
    assert "[2/5] train" not in captured.out


# --- the turn of the year: the demo ledger was seeded in 2026 (dues 2021-2025) -------------------

@pytest.mark.parametrize("today", ["2027-01-02", "2028-06-30"])
def test_a_later_year_trains_on_the_last_complete_year_with_data(demo_ledger_url, today, capsys):
    seeded = ds.load(database_url=demo_ledger_url).frame
    with freeze_time(today):
        assert date.today().year == int(today[:4])
        later = ds.load(database_url=demo_ledger_url).frame
        assert run_main(["--database-url", demo_ledger_url, "--dry-run", "--cv-repeats", "1"]) == 0
    # Features and labels are those of the last complete year with data, whatever the calendar says.
    assert (later["decision_year"] == seeded["decision_year"]).all()
    pd.testing.assert_frame_equal(later, seeded)
    assert "history 2021-2025" in capsys.readouterr().out


def test_an_empty_window_of_feature_years_stops_with_exit_code_2(tmp_path, capsys):
    # As of 2021, no customer of the demo export (dues 2021-2025) has a complete year before it.
    folder = ledger_export.write(simulate(200, seed=1, end_year=2026), tmp_path / "export")
    assert run_main(["--data", str(folder), "--as-of-year", "2021", "--dry-run"]) == 2
    assert "no customer has a complete year of dues before 2021" in capsys.readouterr().err

    # The failure of the old pipeline: the most recent year empty for everyone (a view read in January).
    frame = synthetic_frame(200)
    frame["paid_pct_1y_ago"] = np.nan
    frame.to_csv(tmp_path / "january.csv", index=False)
    assert run_main(["--data", str(tmp_path / "january.csv"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no value at all in paid_pct_1y_ago" in err and "nothing due in 2025 for any customer" in err


def test_a_customer_without_a_complete_year_is_left_out_with_a_note(tmp_path):
    data = simulate(150, seed=2, end_year=2026)
    data["dues"] = data["dues"][~((data["dues"]["customer_id"] == 101) & (data["dues"]["month"] > 6))]
    frame = ds.from_export(data, as_of_year=2026)
    assert 101 not in set(frame["customer_id"]) and len(frame) == 149
    dataset = ds.prepare(frame, drop_unlabelled=True)
    assert dataset.notes == ["1 customers have no complete year of dues before 2026 and were left out"]


def test_cohorts_get_their_own_decision_years():
    frame = ds.from_export(simulate(300, seed=3, end_year=2026, cohorts=2), as_of_year=2026)
    assert frame.groupby("decision_year").size().to_dict() == {2025: 150, 2026: 150}
    assert frame[FEATURES].notna().all().all()


def test_the_customer_years_view_sums_the_dues_as_the_pipeline_does(db):
    """The contract of migration 0002, on SQLite and PostgreSQL."""
    data = simulate(40, seed=4, end_year=2026, cohorts=2)
    import_ledger(db, data, progress=False)
    with db.engine.connect() as conn:
        view = pd.read_sql("SELECT * FROM customer_years ORDER BY customer_id, year", conn)
    assert list(view.columns) == ["customer_id", "year", "months", "due_cents", "paid_cents"]
    expected = customer_years(data["dues"]).sort_values(["customer_id", "year"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(view.astype("int64"), expected.astype("int64"))
