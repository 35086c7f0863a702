"""The same requests to stock `mlflow models serve` and to serving: the same status codes and the same predictions.

Both serve ``applicant-risk@champion`` (numeric and categorical features, see
``tests/plugins/mlflow_stores.py``; gradient boosting, scored by
``predict_proba``), then ``@challenger`` (a logistic regression over a one-hot
encoding, which serving compiles), from the same store: MLflow's own scoring
server (``--env-manager local``) and serving under gunicorn with
``SERVING_MODEL=applicant-risk@champion``. Every JSON format, CSV and Parquet,
good and bad, goes to both. Where the answers differ on purpose (serving
refuses a value MLflow silently coerces, or reads a row MLflow cannot), the case
says so and both sides' status codes are pinned; docs/serving.md lists why.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import requests

from testing.servers import Gunicorn, MlflowServe
from tests.factories import APPLICANT_CATEGORICAL, APPLICANT_NUMERIC
from tests.plugins.mlflow_stores import APPLICANT_MODEL, applicant_frame

pytestmark = pytest.mark.slow

COLUMNS = [*APPLICANT_NUMERIC, *APPLICANT_CATEGORICAL]
ROW = {"duration_months": 24.0, "credit_amount": 2500.0, "age_years": 35.0, "housing": "rent", "purpose": "car",
       "checking_status": "<0"}
JSON = "application/json"
CSV = "text/csv"


def sample() -> pd.DataFrame:
    frame = applicant_frame().head(25)[COLUMNS].reset_index(drop=True)
    frame.loc[2, "purpose"] = None
    frame.loc[5, "housing"] = "houseboat"  # never seen in training
    return frame


def records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def body(payload: object) -> str:
    return json.dumps(payload)  # NaN and Infinity are written as JavaScript's literals, as pandas clients send them


def csv(header: list[str], *lines: str) -> str:
    return ",".join(header) + "\n" + "".join(line + "\n" for line in lines)


def row(**change) -> str:
    return body({"dataframe_records": [ROW | change]})


def without(column: str) -> dict:
    return {k: v for k, v in ROW.items() if k != column}


def parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


FRAME = sample()
RECORDS = records(FRAME)
LISTS = [list(r.values()) for r in RECORDS]
# MLflow reads a null category in `instances`/`inputs` as the string "None" (see the test at the end).
COMPLETE = [r for r in RECORDS if None not in r.values()]
GOOD_CSV = ",".join(str(v) for v in ROW.values())

# (name, content type, body); both servers answer the same status, and 200s the same predictions.
SAME = [
    ("dataframe_split", JSON, body({"dataframe_split": {"columns": COLUMNS, "data": LISTS}})),
    ("dataframe_split with an index", JSON,
     body({"dataframe_split": {"index": list(range(len(LISTS))), "columns": COLUMNS, "data": LISTS}})),
    ("dataframe_records", JSON, body({"dataframe_records": RECORDS})),
    ("instances as records", JSON, body({"instances": COMPLETE})),
    ("instances as columns", JSON, body({"instances": {c: [r[c] for r in COMPLETE] for c in COLUMNS}})),
    ("inputs as records", JSON, body({"inputs": COMPLETE})),
    ("inputs as columns", JSON, body({"inputs": {c: [r[c] for r in COMPLETE] for c in COLUMNS}})),
    ("inputs as one row of values", JSON, body({"inputs": ROW})),
    ("inputs as columns, one value for all rows", JSON,
     body({"inputs": {**{c: [ROW[c]] * 3 for c in COLUMNS}, "housing": "own"}})),
    ("params are ignored", JSON, body({"dataframe_records": [ROW], "params": {"x": 1}})),
    ("an extra column is ignored", JSON, row(x=1)),
    ("an unseen category", JSON, row(housing="houseboat")),
    ("an empty-string category", JSON, row(housing="")),
    ("a null category", JSON, row(purpose=None)),
    ('the category "missing"', JSON, row(purpose="missing")),
    ("a whole number", JSON, row(age_years=35)),
    ("CSV", CSV, FRAME.to_csv(index=False)),
    ("CSV with charset", "text/csv; charset=utf-8", FRAME.to_csv(index=False)),
    ("CSV with an empty category", CSV, csv(COLUMNS, "24,2500,35,own,,<0")),
    ("CSV with an unseen category", CSV, csv(COLUMNS, "24,2500,35,1,car,<0")),
    ("CSV with an extra column", CSV, csv([*COLUMNS, "x"], GOOD_CSV + ",9")),
    ("CSV with columns in another order", CSV, csv(COLUMNS[::-1], ",".join(str(v) for v in list(ROW.values())[::-1]))),
    ("Parquet", "application/vnd.apache.parquet", parquet(FRAME)),
    # Bad requests: both refuse them.
    ("a missing categorical column", JSON, body({"dataframe_records": [without("housing")]})),
    ("a missing numeric column", JSON, body({"dataframe_records": [without("age_years")]})),
    ("a word for a number", JSON, row(age_years="old")),
    ("malformed JSON", JSON, "{nope"),
    ("an empty JSON body", JSON, ""),
    ("a JSON list", JSON, body([ROW])),
    ("a JSON string", JSON, body("x")),
    ("no format key", JSON, body({"rows": [ROW]})),
    ("two format keys", JSON, body({"instances": [ROW], "inputs": [ROW]})),
    ("no records", JSON, body({"dataframe_records": []})),
    ("no instances", JSON, body({"instances": []})),
    ("records as one object", JSON, body({"dataframe_records": ROW})),
    ("records as lists", JSON, body({"dataframe_records": [list(ROW.values())]})),
    ("a split row of the wrong length", JSON, body({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2]]}})),
    ("a split without columns", JSON, body({"dataframe_split": {"data": [list(ROW.values())]}})),
    ("a split with another key", JSON, body({"dataframe_split": {"columns": COLUMNS, "data": [], "x": 1}})),
    ("a split naming a column twice", JSON,
     body({"dataframe_split": {"columns": [*COLUMNS, "housing"], "data": [[*ROW.values(), "own"]]}})),
    ("columns of unequal length", JSON, body({"inputs": {**{c: [ROW[c]] * 2 for c in COLUMNS}, "housing": ["own"]}})),
    ("a short row", JSON, body({"instances": [[1, 2, 3]]})),
    ("a CSV body without a column", CSV, csv(COLUMNS[1:], "2500,35,own,car,<0")),
    ("a word in a CSV number", CSV, csv(COLUMNS, "abc,2500,35,own,car,<0")),
    ("a ragged CSV row", CSV, csv(COLUMNS, GOOD_CSV + ",9,9")),
    ("an empty CSV body", CSV, ""),
    ("a CSV header only", CSV, csv(COLUMNS)),
    ("a body that is not UTF-8", JSON, b'{"dataframe_records": [{"housing": "\xff"}]}'),
    ("plain text", "text/plain", "x"),
    ("no content type", "", row()),
    ("a charset other than UTF-8", "application/json; charset=latin-1", row()),
    ("an unknown content-type parameter", "application/json; format=pandas-split", row()),
    ("a form", "application/x-www-form-urlencoded", "a=1"),
]

# (name, content type, body, MLflow's status (or statuses, by model), serving's status): deliberate
# differences (docs/serving.md).
DIFFERENT = [
    ("a number for a category", JSON, row(housing=3), 200, 400),
    ("true for a category", JSON, row(housing=True), 200, 400),
    ("a list for a category", JSON, row(housing=["own"]), 200, 400),
    ("a number as a string", JSON, row(age_years="35"), 200, 400),
    ("true for a number", JSON, row(age_years=True), 200, 400),
    ("null for a number", JSON, row(age_years=None), 200, 400),
    ("NaN for a number", JSON, row(age_years=float("nan")), 200, 400),
    ("Infinity for a number", JSON, row(age_years=float("inf")), {200, 400}, 400),  # 400: a model that scales it
    ("a number outside its bounds", JSON, row(age_years=150), 200, 400),
    ("an empty CSV number", CSV, csv(COLUMNS, ",2500,35,own,car,<0"), 200, 400),
    ("instances as lists in signature order", JSON, body({"instances": LISTS}), 400, 200),
    ("inputs as lists in signature order", JSON, body({"inputs": LISTS}), 400, 200),
    ("an upper-case content type", "Application/JSON", row(), 415, 200),
]


@pytest.fixture(scope="module", params=["champion", "challenger"])
def servers(request, applicant_store):
    """Yield (MLflow's URL, serving's URL) on one version: the trees (predict_proba), then the compiled logistic."""
    model = f"{APPLICANT_MODEL}@{request.param}"
    env = {"MLFLOW_TRACKING_URI": applicant_store}
    with MlflowServe(f"models:/{model}", env) as stock, \
            Gunicorn("serving:create_app()", {**env, "SERVING_MODEL": model, "SERVING_TOKEN": None,
                                              "MODEL_POLL_SECONDS": "3600"}, workers=1, ready_path="/ready") as ours:
        yield stock.url, ours.url


def post(url: str, content_type: str, data: str | bytes) -> requests.Response:
    return requests.post(url + "/invocations", data=data.encode() if isinstance(data, str) else data,
                         headers={"Content-Type": content_type}, timeout=60)


@pytest.mark.parametrize("name,content_type,data", SAME, ids=[case[0] for case in SAME])
def test_same_answer_as_stock_mlflow(servers, name, content_type, data):
    theirs, ours = (post(url, content_type, data) for url in servers)
    assert ours.status_code == theirs.status_code, (theirs.text[:300], ours.text[:300])
    assert ours.headers["Content-Type"] == theirs.headers["Content-Type"]
    if theirs.status_code == 200:
        assert set(ours.json()) == set(theirs.json()) == {"predictions"}
        np.testing.assert_allclose(ours.json()["predictions"], theirs.json()["predictions"], rtol=0, atol=1e-12)
    elif theirs.headers["Content-Type"] == JSON:  # MLflow's error shape, without its stack trace
        assert set(ours.json()) == set(theirs.json()) - {"stack_trace"}, (theirs.json(), ours.json())


@pytest.mark.parametrize("name,content_type,data,mlflow_status,serving_status", DIFFERENT,
                         ids=[case[0] for case in DIFFERENT])
def test_deliberate_differences(servers, name, content_type, data, mlflow_status, serving_status):
    theirs, ours = (post(url, content_type, data) for url in servers)
    expected = mlflow_status if isinstance(mlflow_status, set) else {mlflow_status}
    assert theirs.status_code in expected and ours.status_code == serving_status, (theirs.text[:300], ours.text[:300])
    if ours.status_code == 400:
        assert set(ours.json()) == {"error_code", "message", "error_class", "sqlstate"}


def test_ping_answers_like_mlflow(servers):
    theirs, ours = (requests.get(url + "/ping", timeout=10) for url in servers)
    assert (ours.status_code, ours.content, ours.headers["Content-Type"]) == \
        (theirs.status_code, theirs.content, theirs.headers["Content-Type"]) == (200, b"\n", JSON)


def test_scores_of_many_rows_equal(servers):
    frame = applicant_frame()[COLUMNS]
    theirs, ours = (post(url, CSV, frame.to_csv(index=False)) for url in servers)
    assert theirs.status_code == ours.status_code == 200
    np.testing.assert_allclose(ours.json()["predictions"], theirs.json()["predictions"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_a_null_category_is_missing_in_every_format(servers, key):
    """MLflow turns null into the category "None" in instances/inputs (and into "missing" in dataframe_records)."""
    stock, ours = servers
    null = [ROW | {"purpose": None}]

    def score(url: str, payload: dict) -> float:
        r = post(url, JSON, body(payload))
        assert r.status_code == 200, r.text
        return r.json()["predictions"][0]

    missing = score(stock, {"dataframe_records": [ROW | {"purpose": "missing"}]})
    assert score(stock, {"dataframe_records": null}) == missing
    assert score(stock, {key: null}) == score(stock, {"dataframe_records": [ROW | {"purpose": "None"}]}) != missing
    assert score(ours, {key: null}) == score(ours, {"dataframe_records": null}) == missing


def test_served_under_gunicorn_with_its_scorer_and_reasons_in_words(servers):
    _, ours = servers
    version = requests.get(ours + "/version", timeout=10).json()
    assert version["name"] == APPLICANT_MODEL and version["categorical"] == list(APPLICANT_CATEGORICAL)
    assert version["scorer"] == {"champion": "scikit-learn predict_proba", "challenger": "compiled, exact"}[
        version["alias"]]
    r = requests.post(ours + "/v1/decisions", json={"rows": [ROW]}, timeout=10)
    assert r.status_code == 200, r.text
    reasons = r.json()["decisions"][0]["reasons"]
    assert any(reason["text"] == "housing = rent (approved applicants near the cut-off: own)" for reason in reasons)
