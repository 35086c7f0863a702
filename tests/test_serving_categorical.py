"""Another bank's model, with categorical features, served under its own name while credit-approval is untouched.

The store (``applicant_store``) holds credit-approval version 1 as champion and
``applicant-risk``, trained on a table with numeric and categorical columns and
a good/bad target: version 1 (gradient boosting) is its champion, version 2
(logistic regression) holds the alias ``challenger``.
"""
from __future__ import annotations

import io
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from model_registry import registry, store
from model_registry.inputs import encode
from pipeline.dataset import feature_matrix
from pipeline.features import FEATURES
from serving import create_app
from serving.config import model_ref
from serving.reasons import Explainer, feature_labels
from tests.factories import APPLICANT_CATEGORICAL, APPLICANT_NUMERIC
from tests.plugins.mlflow_stores import APPLICANT_MODEL, APPLICANT_SPEC, APPLICANT_THRESHOLD, applicant_frame

pytestmark = pytest.mark.slow

COLUMNS = [*APPLICANT_NUMERIC, *APPLICANT_CATEGORICAL]
ROW = {"duration_months": 48.0, "credit_amount": 2500.0, "age_years": 30.0, "housing": "rent", "purpose": "car",
       "checking_status": "<0"}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Applicants of the other bank's table, missing purposes and unseen categories included."""
    frame = applicant_frame().head(200)[COLUMNS].reset_index(drop=True)
    frame.loc[3, "housing"] = "houseboat"  # a category no training row had
    frame.loc[4, "checking_status"] = None
    return frame


def app_for(uri: str, model: str | None = None, **config):
    """Return a test client of serving on the store, serving SERVING_MODEL=model (the default when None)."""
    settings = {"MLFLOW_TRACKING_URI": uri, "WATCH": False, **config}
    if model:
        settings["SERVING_MODEL"] = model
    return create_app(settings).test_client()


@pytest.fixture(scope="module")
def byo(applicant_store):
    return app_for(applicant_store, f"{APPLICANT_MODEL}@champion")


def stock(uri: str, model: str, frame: pd.DataFrame) -> np.ndarray:
    """Score with stock MLflow's pyfunc, as `mlflow models serve` does."""
    store.configure(uri)
    return np.asarray(mlflow.pyfunc.load_model(f"models:/{model}").predict(frame), dtype=float)


def records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_serving_encodes_rows_exactly_as_the_pipeline_trained():
    frame = applicant_frame().head(300)
    ours = encode(records(frame[COLUMNS]), tuple(COLUMNS), {}, APPLICANT_CATEGORICAL)
    assert ours.tolist() == feature_matrix(frame, APPLICANT_SPEC).tolist()


def test_ready_version_and_ping(byo):
    # The store's applicant-risk@challenger (version 2) is scored in the shadow: /ready names it.
    assert byo.get("/ready").json == {"ready": True, "version": "1", "last_reload_error": None,
                                      "shadow_version": "2", "shadow_error": None}
    ping = byo.get("/ping")
    assert (ping.status_code, ping.data, ping.mimetype) == (200, b"\n", "application/json")
    v = byo.get("/version").json
    assert (v["name"], v["alias"], v["version"], v["threshold"]) == (APPLICANT_MODEL, "champion", "1",
                                                                     APPLICANT_THRESHOLD)
    assert v["features"] == COLUMNS and v["categorical"] == list(APPLICANT_CATEGORICAL)
    assert v["scorer"] == "scikit-learn predict_proba"  # gradient boosting on categories is not compiled


def test_every_format_scores_as_stock_mlflow(byo, applicant_store, rows):
    expected = stock(applicant_store, f"{APPLICANT_MODEL}@champion", rows)
    assert len(set(expected.round(12))) > 50
    parquet = io.BytesIO()
    rows.to_parquet(parquet)
    bodies = [
        ({"dataframe_split": {"columns": COLUMNS, "data": [list(r.values()) for r in records(rows)]}}, None),
        ({"dataframe_records": records(rows)}, None),
        ({"instances": records(rows)}, None),
        ({"instances": [list(r.values()) for r in records(rows)]}, None),
        ({"inputs": {c: [r[c] for r in records(rows)] for c in COLUMNS}}, None),
        ({"inputs": records(rows)}, None),
        (rows.to_csv(index=False), "text/csv"),
        (parquet.getvalue(), "application/vnd.apache.parquet"),
    ]
    for body, content_type in bodies:
        r = (byo.post("/invocations", json=body) if content_type is None
             else byo.post("/invocations", data=body, content_type=content_type))
        assert r.status_code == 200, (content_type, r.json)
        np.testing.assert_allclose(r.json["predictions"], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("change,words", [
    ({"housing": 3}, "housing must be a category"),
    ({"housing": True}, "housing must be a category"),
    ({"age_years": "thirty"}, "age_years must be a number"),
    ({"age_years": 17}, "outside [18, 100]"),
    ({"duration_months": None}, "must be a number"),
])
def test_values_serving_refuses(byo, change, words):
    r = byo.post("/invocations", json={"dataframe_records": [ROW | change]})
    assert r.status_code == 400 and words in r.json["message"], r.json


def test_a_missing_category_is_the_pipelines_missing(byo):
    scores = [byo.post("/invocations", json={"dataframe_records": [ROW | {"purpose": value}]}).json["predictions"]
              for value in (None, "missing")]
    assert scores[0] == scores[1]


REASON = re.compile(r"^(housing|purpose|checking status) = (.+) \(approved applicants near the cut-off: (.+)\)$")


def test_decisions_name_categorical_features_in_words(byo, rows):
    r = byo.post("/v1/decisions", json={"rows": records(rows)})
    assert r.status_code == 200, r.json
    decisions = r.json["decisions"]
    invocations = byo.post("/invocations", json={"dataframe_records": records(rows)}).json["predictions"]
    np.testing.assert_allclose([d["score"] for d in decisions], invocations, rtol=0, atol=1e-12)
    assert {d["approved"] for d in decisions} == {True, False}
    categorical = [reason for d in decisions for reason in d["reasons"] if reason["feature"] in APPLICANT_CATEGORICAL]
    assert len(categorical) > 20
    for reason in categorical:
        label, value, reference = REASON.match(reason["text"]).groups()
        assert label == reason["feature"].replace("_", " ")
        assert (value, reference) == (reason["value"], reason["reference"]) and value != reference
    rejected = [d for d in decisions if not d["approved"]]
    assert all(d["reasons"] for d in rejected)
    for d in rejected:
        assert all(reason["contribution"] <= 0 for reason in d["reasons"] if reason["code"] == "lowered_score"), d


def test_a_rented_home_is_named_against_owners(byo):
    reasons = byo.post("/v1/decisions", json={"rows": [ROW]}).json["decisions"][0]["reasons"]
    housing = next(r for r in reasons if r["feature"] == "housing")
    assert housing["text"] == "housing = rent (approved applicants near the cut-off: own)"
    assert housing["code"] == "lowered_score"


def test_any_alias_of_any_name(applicant_store, rows):
    client = app_for(applicant_store, f"{APPLICANT_MODEL}@challenger")
    v = client.get("/version").json
    assert (v["name"], v["alias"], v["version"]) == (APPLICANT_MODEL, "challenger", "2")
    assert v["scorer"] == "compiled, exact"  # logistic regression over a one-hot encoding: compiled exactly
    got = client.post("/invocations", json={"dataframe_records": records(rows)}).json["predictions"]
    expected = stock(applicant_store, f"{APPLICANT_MODEL}@challenger", rows)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    info = client.get("/v1/model").json
    assert info["serving"]["name"] == APPLICANT_MODEL and info["registry"]["champion"]["version"] == "2"


def test_credit_approval_is_untouched_by_the_other_model(applicant_store, byo):
    credit = app_for(applicant_store)
    v = credit.get("/version").json
    assert (v["name"], v["alias"], v["version"], v["features"]) == ("credit-approval", "champion", "1", FEATURES)
    assert registry.champion_version(tracking_uri=applicant_store) == "1"
    assert registry.describe(tracking_uri=applicant_store)["history"] == ["1"]
    assert byo.get("/version").json["name"] == APPLICANT_MODEL
    # Each service scores its own model's rows and refuses the other's.
    assert credit.post("/invocations", json={"dataframe_records": [ROW]}).status_code == 400
    assert byo.post("/invocations", json={"dataframe_records": [dict.fromkeys(FEATURES, 90.0)]}).status_code == 400


def test_replay_of_the_served_models_version(byo, rows):
    sample = records(rows.head(5))
    live = byo.post("/invocations", json={"dataframe_records": sample}).json["predictions"]
    r = byo.post("/v1/replay", json={"version": "2", "rows": sample})
    assert r.status_code == 200 and len(r.json["scores"]) == 5
    assert byo.post("/v1/replay", json={"version": "1", "rows": sample}).json["scores"] == live


def test_ping_stays_open_when_scoring_needs_the_token(applicant_store):
    client = app_for(applicant_store, f"{APPLICANT_MODEL}@champion", SERVING_TOKEN="s3cret")
    assert client.get("/ping").status_code == 200
    assert client.post("/invocations", json={"dataframe_records": [ROW]}).status_code == 401
    r = client.post("/invocations", json={"dataframe_records": [ROW]}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200


def test_an_alias_nobody_holds_means_not_ready(applicant_store):
    client = app_for(applicant_store, f"{APPLICANT_MODEL}@nobody")
    assert client.get("/ready").status_code == 503 and client.get("/ping").status_code == 404
    assert client.get("/version").json["name"] == APPLICANT_MODEL


@pytest.mark.parametrize("value", ["credit-approval", "@champion", "credit-approval@", ""])
def test_serving_model_must_be_name_at_alias(value):
    with pytest.raises(ValueError, match="name@alias"):
        model_ref(value)


def test_only_a_feature_that_can_fall_short_is_named_or_closest_to_the_cutoff():
    features, x_row = ("age_years", "housing"), [30.0, "own"]
    profile, contrib = np.array([40.0, "own"], dtype=object), [0.002, 0.0]
    labels = feature_labels({"spec": {"monotone_increasing": ["age_years"]}}, {}, ("housing",))
    explainer = Explainer(features, profile, labels)
    # A monotone feature below the cut-off profile falls short (every year below the bar is named).
    (reason,) = explainer.reasons(x_row, contrib, False, 2026)
    assert (reason["code"], reason["feature"]) == ("lowered_score", "age_years")
    (reason,) = explainer.reasons([40.0, "own"], contrib, False, 2026)  # at the bar
    assert (reason["code"], reason["feature"]) == ("closest_to_cutoff", "age_years")
    unlabelled = Explainer(features, profile, feature_labels({}, {}, ("housing",)))
    (reason,) = unlabelled.reasons(x_row, contrib, False, 2026)
    assert (reason["feature"], reason["text"]) == ("housing", "housing = own (most common in training: own)")
