"""The decision service: MLflow's protocol, decisions with reasons, alias moves and failed reloads."""
import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from model_registry import registry, store
from pipeline.features import FEATURES, feature_years
from serving import create_app
from serving.holder import ModelHolder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_rows(demo_ledger_url):
    engine = create_engine(demo_ledger_url)
    with engine.connect() as conn:
        frame = pd.read_sql(text("SELECT * FROM year_percentage ORDER BY customer_id LIMIT 300"), conn)
    engine.dispose()
    return frame[FEATURES].astype(float)


@pytest.fixture(scope="module")
def service(trained_store):
    uri, _ = trained_store
    return create_app({"MLFLOW_TRACKING_URI": uri, "WATCH": False}).test_client()


def stock_predictions(uri: str, frame: pd.DataFrame) -> np.ndarray:
    store.configure(uri)
    return np.asarray(mlflow.pyfunc.load_model("models:/credit-approval@champion").predict(frame), dtype=float)


def test_health_ready_version(service):
    assert service.get("/health").json == {"status": "ok"}
    assert service.get("/ready").json == {"ready": True, "version": "1", "last_reload_error": None}
    v = service.get("/version").json
    assert (v["name"], v["alias"], v["version"], v["threshold"]) == ("credit-approval", "champion", "1", 0.8)
    assert v["features"] == FEATURES


def test_every_scoring_format_equals_stock_mlflow(service, trained_store, demo_rows):
    expected = stock_predictions(trained_store[0], demo_rows)
    records = demo_rows.to_dict("records")
    payloads = [
        {"dataframe_split": {"columns": FEATURES, "data": demo_rows.to_numpy().tolist()}},
        {"dataframe_records": records},
        {"instances": demo_rows.to_numpy().tolist()},
        {"instances": records},
        {"inputs": {k: demo_rows[k].tolist() for k in FEATURES}},
    ]
    for payload in payloads:
        r = service.post("/invocations", json=payload)
        assert r.status_code == 200, r.json
        np.testing.assert_allclose(r.json["predictions"], expected, rtol=0, atol=1e-12)


def test_columns_in_any_order(service, demo_rows):
    shuffled = demo_rows[FEATURES[::-1]].head(5)
    split = {"columns": list(shuffled.columns), "data": shuffled.to_numpy().tolist()}
    a = service.post("/invocations", json={"dataframe_split": split})
    b = service.post("/invocations", json={"dataframe_records": demo_rows.head(5).to_dict("records")})
    assert a.json == b.json


GOOD = dict.fromkeys(FEATURES, 90.0)


def test_extra_columns_never_change_the_rows_of_column_oriented_input(service):
    two = {k: [v, v] for k, v in GOOD.items()}
    for extra in ([], [1, 2, 3], "x"):
        r = service.post("/invocations", json={"inputs": {**two, "extra": extra}})
        assert r.status_code == 200 and len(r.json["predictions"]) == 2, r.json


@pytest.mark.parametrize("body,content_type,status,words", [
    ("a,b\n1,2", "text/csv", 400, "missing column"),
    ("a,b\n1,2", "text/plain", 415, "content types"),
    ("{nope", "application/json", 400, "not valid JSON"),
    ('{"dataframe_records": [{"paid_pct_5y_ago": NaN}]}', "application/json", 400, "missing column"),
    (json.dumps({"dataframe_records": [{k: v for k, v in GOOD.items() if k != FEATURES[0]}]}),
     "application/json", 400, "missing column"),
    (json.dumps({"dataframe_records": [GOOD | {FEATURES[0]: 101}]}), "application/json", 400, "outside"),
    (json.dumps({"dataframe_records": [GOOD | {FEATURES[0]: -1}]}), "application/json", 400, "outside"),
    (json.dumps({"dataframe_records": [GOOD | {FEATURES[0]: "90"}]}), "application/json", 400, "number"),
    (json.dumps({"dataframe_records": [GOOD | {FEATURES[0]: None}]}), "application/json", 400, "number"),
    (json.dumps({"dataframe_records": [GOOD | {FEATURES[0]: True}]}), "application/json", 400, "number"),
    ('{"dataframe_records": [' + json.dumps(GOOD)[:-1] + ', "x": 1}, {"paid_pct_5y_ago": Infinity}]}',
     "application/json", 400, "missing column"),
    (json.dumps({"instances": [[1, 2, 3]]}), "application/json", 400, "expected 5 values"),
    (json.dumps({"instances": []}), "application/json", 400, "no rows"),
    (json.dumps({"instances": [list(GOOD.values())], "inputs": []}), "application/json", 400, "exactly one"),
    (json.dumps({"dataframe_split": {"columns": FEATURES, "data": [[1, 2]]}}), "application/json", 400, "values"),
    (json.dumps([1, 2]), "application/json", 400, "JSON object"),
    (json.dumps({"inputs": {**GOOD, FEATURES[0]: [90.0, 90.0], FEATURES[1]: [90.0]}}), "application/json", 400,
     "lists of one length"),
    (json.dumps({"dataframe_split": {"columns": FEATURES, "data": [list(GOOD.values())], "index": "0"}}),
     "application/json", 400, "'index'"),
])
def test_bad_input_is_a_400_in_mlflow_style(service, body, content_type, status, words):
    r = service.post("/invocations", data=body, content_type=content_type)
    assert r.status_code == status, r.data
    if status == 415:  # MLflow answers an unread content type in plain text
        assert r.mimetype == "text/plain" and words in r.text
        return
    assert set(r.json) == {"error_code", "message", "error_class", "sqlstate"} and words in r.json["message"], r.json


def test_nan_value_is_refused(service):
    body = '{"dataframe_records": [' + json.dumps(GOOD)[:-1].replace("90.0}", "90.0") + "}]}"
    body = body.replace(f'"{FEATURES[0]}": 90.0', f'"{FEATURES[0]}": NaN')
    r = service.post("/invocations", data=body, content_type="application/json")
    assert r.status_code == 400 and "finite" in r.json["message"]


READ = re.compile(r"^You paid (\d+(?:\.\d)?)% of what was due in (\d{4}); "
                  r"approved customers typically paid (\d+(?:\.\d)?)% or more\.$")


def test_decisions_with_reasons(service, demo_rows):
    r = service.post("/v1/decisions", json={"rows": demo_rows.to_dict("records"), "decision_year": 2026})
    assert r.status_code == 200
    body = r.json
    assert body["model_version"] == "1" and body["threshold"] == 0.8
    years = dict(zip(FEATURES, feature_years(2026)))
    # The bar each year is compared with: the version's near-cut-off profile, the same in every reason.
    profile = {x["feature"]: x["reference"] for d in body["decisions"] for x in d["reasons"]}
    assert set(profile) == set(FEATURES)
    rejected = 0
    for row, decision in zip(demo_rows.to_dict("records"), body["decisions"]):
        assert decision["approved"] == (decision["score"] >= decision["threshold"])
        reasons = decision["reasons"]
        assert len(reasons) <= len(FEATURES)
        # References come rounded to 2 decimals: a value within that rounding of the bar may go either way.
        below = {f for f in FEATURES if round(row[f], 2) < profile[f]}
        at_or_below = {f for f in FEATURES if round(row[f], 2) <= profile[f]}
        named = {x["feature"] for x in reasons if x["code"] == "lowered_score"}
        strong = {x["feature"] for x in reasons if x["code"] == "raised_score"}
        assert below - strong <= named <= at_or_below - strong, "every year below the bar is named"
        if not decision["approved"]:
            rejected += 1
            assert reasons, f"a rejection without reasons: {row}"
            assert not any(x["code"] == "raised_score" for x in reasons)
        for code in ("raised_score", "lowered_score"):
            contributions = [abs(x["contribution"]) for x in reasons if x["code"] == code]
            assert contributions == sorted(contributions, reverse=True), "reasons are ranked"
        for reason in reasons:
            assert reason["feature"] in FEATURES  # only features the model scored
            value, year, reference = READ.match(reason["text"]).groups()
            assert int(year) == years[reason["feature"]]
            digits = 1 if "." in value else 0
            assert float(value) == round(row[reason["feature"]], digits)
            assert float(reference) == round(reason["reference"], digits)
            if reason["code"] == "lowered_score":
                assert reason["contribution"] <= 0 and row[reason["feature"]] < reason["reference"]
            if reason["code"] == "raised_score":
                assert decision["approved"] and reason["contribution"] > 0
    assert rejected > 20


def test_decisions_equal_invocations(service, demo_rows):
    rows = demo_rows.head(20).to_dict("records")
    scores = service.post("/invocations", json={"dataframe_records": rows}).json["predictions"]
    decided = [d["score"] for d in service.post("/v1/decisions", json={"rows": rows}).json["decisions"]]
    np.testing.assert_allclose(decided, scores, rtol=0, atol=1e-12)


def test_a_body_the_server_ends_is_read_as_it_is_and_the_limit_still_holds(service, demo_rows):
    # gunicorn says it ends request bodies itself (wsgi.input_terminated): within the limit the
    # body is read from its stream as it is, above it the request is still a 413.
    terminated = {"wsgi.input_terminated": True}
    rows = demo_rows.head(3).to_dict("records")
    plain = service.post("/invocations", json={"dataframe_records": rows})
    direct = service.post("/invocations", json={"dataframe_records": rows}, environ_overrides=terminated)
    assert direct.status_code == 200 and direct.json == plain.json
    limit = service.application.config["MAX_CONTENT_LENGTH"]
    huge = json.dumps({"dataframe_records": [rows[0]] * (limit // 100)})
    r = service.post("/invocations", data=huge, content_type="application/json", environ_overrides=terminated)
    assert len(huge) > limit and r.status_code == 413 and "larger than" in r.json["message"]


def test_metrics_page(service):
    service.post("/invocations", json={"instances": [list(GOOD.values())]})
    page = service.get("/metrics")
    assert page.status_code == 200 and page.content_type.startswith("text/plain")
    text_ = page.get_data(as_text=True)
    for name in ("serving_requests_total", "serving_request_seconds_bucket", "serving_model_version",
                 "serving_errors_total"):
        assert name in text_


def test_alias_move_is_picked_up_and_a_bad_reload_keeps_the_last_good_model(store_copy):
    app = create_app({"MLFLOW_TRACKING_URI": store_copy, "WATCH": False})
    holder: ModelHolder = app.extensions["model_holder"]
    client = app.test_client()
    assert client.get("/version").json["version"] == "1"
    source = registry.client(store_copy).get_model_version("credit-approval", "1").source
    v2 = registry.register(source, tracking_uri=store_copy)
    registry.promote(v2, who="test", why="alias move", tracking_uri=store_copy)
    assert holder.refresh() is True
    assert client.get("/version").json["version"] == v2
    # A version whose artifacts are missing: the reload fails, version 2 keeps serving.
    v3 = registry.client(store_copy).create_model_version("credit-approval", source="/nonexistent/model").version
    registry.promote(v3, who="test", why="broken", tracking_uri=store_copy)
    assert holder.refresh() is False
    v = client.get("/version").json
    assert v["version"] == v2 and v["last_reload_error"]
    page = client.get("/metrics").get_data(as_text=True)
    failures = float(re.search(r"^serving_model_reload_failures_total (\S+)$", page, re.M).group(1))
    assert failures >= 1 and f"serving_model_version {float(v2)}" in page
    assert client.get("/ready").status_code == 200
    assert client.post("/invocations", json={"instances": [list(GOOD.values())]}).status_code == 200


def test_no_champion_means_not_ready(mlflow_uri):
    client = create_app({"MLFLOW_TRACKING_URI": mlflow_uri, "WATCH": False}).test_client()
    assert client.get("/ready").status_code == 503
    r = client.post("/invocations", json={"instances": [list(GOOD.values())]})
    assert r.status_code == 503 and r.json["error_code"] == "SERVICE_UNAVAILABLE"
    assert client.get("/health").status_code == 200


def test_model_endpoint_gives_the_live_version_and_its_registry_entry(service):
    info = service.get("/v1/model").json
    assert info["serving"]["version"] == "1" and info["serving"]["threshold"] == 0.8
    entry = info["registry"]
    assert entry["available"] and entry["champion"]["version"] == "1" and entry["history"] == ["1"]
    assert 0.5 < entry["champion"]["metrics"]["test_auc"] <= 1


def test_replay_scores_with_the_named_version(service, demo_rows):
    rows = demo_rows.head(3).to_dict("records")
    live = service.post("/invocations", json={"dataframe_records": rows}).json["predictions"]
    r = service.post("/v1/replay", json={"version": "1", "rows": rows})
    assert r.status_code == 200 and r.json["version"] == "1" and r.json["threshold"] == 0.8
    np.testing.assert_allclose(r.json["scores"], live, rtol=0, atol=1e-12)


@pytest.mark.parametrize("body,status,words", [
    ({"version": "99", "rows": [GOOD]}, 404, "no registered version 99"),
    ({"version": 1, "rows": [GOOD]}, 400, "version must be"),
    ({"version": "\u0661", "rows": [GOOD]}, 400, "version must be"),  # a digit, but not an ASCII one
    ({"version": "1\n", "rows": [GOOD]}, 400, "version must be"),
    ({"version": "1", "rows": [GOOD | {FEATURES[0]: 101}]}, 400, "outside"),
    ({"version": "1"}, 400, "rows"),
])
def test_replay_refuses_what_it_cannot_score(service, body, status, words):
    r = service.post("/v1/replay", json=body)
    assert r.status_code == status and words in r.json["message"], r.json


@pytest.mark.parametrize("year,status", [(2026.0, 200), (2026.5, 400), ("2026", 400), (2200, 400)])
def test_decision_year_is_a_whole_number_in_range(service, year, status):
    r = service.post("/v1/decisions", json={"rows": [GOOD], "decision_year": year})
    assert r.status_code == status, r.json
    assert status == 400 or r.json["decision_year"] == 2026


@pytest.mark.parametrize("body", [
    {"rows": [1]},
    {"rows": [{FEATURES[0]: "90"}]},
    {"rows": [{FEATURES[0]: True}]},
    {"rows": [{FEATURES[0]: float("inf")}]},
    {"rows": [{FEATURES[0]: 10 ** 400}]},  # an integer beyond float's range
    {"rows": [GOOD], "version": 1},
    {"rows": [GOOD], "version": None},
])
def test_drift_refuses_rows_and_versions_it_cannot_compare(service, body):
    r = service.post("/v1/drift", json=body)
    assert r.status_code == 400 and r.json["error_code"] == "BAD_REQUEST", r.json


def test_drift_of_values_near_the_limit_of_floats_is_still_json(service):
    r = service.post("/v1/drift", json={"rows": [{FEATURES[0]: 1e308}, {FEATURES[0]: 1e308}]})
    assert r.status_code == 200 and "Infinity" not in r.text
    assert r.json["table"][0]["feature"] == FEATURES[0] and r.json["table"][0]["current_mean"] is None


def test_drift_of_recent_inputs_against_the_training_data(service, demo_rows):
    few = service.post("/v1/drift", json={"rows": demo_rows.head(20).to_dict("records")}).json
    assert few["version"] == "1" and few["rows"] == 20
    assert [row["feature"] for row in few["table"]] == FEATURES
    assert {row["band"] for row in few["table"]} == {"too few (< 100)"}
    shifted = (demo_rows.head(300) * 0.5).to_dict("records")
    table = service.post("/v1/drift", json={"rows": shifted}).json["table"]
    assert {row["band"] for row in table} == {"shifted"}
    same = service.post("/v1/drift", json={"rows": demo_rows.to_dict("records")}).json["table"]
    assert all(row["psi"] < 0.25 for row in same)
