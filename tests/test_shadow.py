"""Shadow scoring: the challenger alias (audited), serving scoring it beside the champion, the portal storing it."""
from __future__ import annotations

import re
import shutil
from datetime import date

import mlflow
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, select, text

import model_registry
from model_registry import package
from model_registry import store as mlflow_store
from model_registry.__main__ import main as registry_cli
from pipeline import dataset as ds
from pipeline import train as tr
from pipeline.features import FEATURES, feature_years
from pipeline.run import RunConfig, run
from portal import create_app as create_portal
from portal.models import CreditDecision
from serving import create_app
from testing.people import add_customer, add_manager
from testing.servers import Gunicorn
from tests.factories import login, web_login

pytestmark = pytest.mark.slow

QUIET = {"out": lambda line: None}
YEARS = feature_years(date.today().year)
NEXT_YEAR = date.today().year + 1


def copy_store(uri: str, folder) -> str:
    """Return a private copy of a SQLite MLflow store (its artifacts stay shared, read-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(uri.removeprefix("sqlite:///"), folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def two_versions(trained_store, demo_ledger_url, tmp_path_factory):
    """A store where version 1 is the champion and version 2 (trained on shuffled labels) is only registered."""
    uri = copy_store(trained_store[0], tmp_path_factory.mktemp("shadow-store"))
    frame = ds.load(database_url=demo_ledger_url).frame
    test_ids = set(tr.split(frame).test["customer_id"])
    noisy = frame.copy()
    outside = ~noisy["customer_id"].isin(test_ids)
    noisy.loc[outside, "result"] = np.random.default_rng(0).permutation(noisy.loc[outside, "result"].to_numpy())
    worse = run(RunConfig(tracking_uri=uri, params=tr.TrainParams(cv_repeats=1)), frame=noisy, **QUIET)
    assert worse.version == "2" and not worse.promoted
    return uri


@pytest.fixture
def store(two_versions, tmp_path):
    return copy_store(two_versions, tmp_path / "store")


@pytest.fixture(scope="module")
def demo_rows(demo_ledger_url):
    engine = create_engine(demo_ledger_url)
    with engine.connect() as conn:
        frame = pd.read_sql(text("SELECT * FROM year_percentage ORDER BY customer_id LIMIT 200"), conn)
    engine.dispose()
    return frame[FEATURES].astype(float).to_dict("records")


def moves(uri: str) -> list[tuple]:
    return [(e["event"], e["from_version"], e["to_version"], e["who"])
            for e in model_registry.describe(tracking_uri=uri)["events"]]


def test_challenge_and_promote_move_the_aliases_with_an_audited_reason(store, capsys):
    with pytest.raises(SystemExit):  # no reason: refused
        registry_cli(["--tracking-uri", store, "challenge", "2"])
    with pytest.raises(model_registry.RegistryError, match="a reason is required to move the challenger"):
        model_registry.challenge("2", why=" ", tracking_uri=store)
    assert registry_cli(["--tracking-uri", store, "challenge", "1", "--why", "x"]) == 1  # the champion itself
    assert "is the champion" in capsys.readouterr().err
    assert registry_cli(["--tracking-uri", store, "challenge", "9", "--why", "x"]) == 1
    assert registry_cli(["--tracking-uri", store, "challenge", "2", "--who", "ds", "--why", "watch it live"]) == 0
    assert "credit-approval@challenger -> version 2" in capsys.readouterr().out
    info = model_registry.describe(tracking_uri=store)
    assert info["challenger"] == "2" and info["champion"] == "1"
    assert next(v for v in info["versions"] if v["version"] == "2")["aliases"] == ["challenger"]
    assert model_registry.champion_version(tracking_uri=store, alias="challenger") == "2"
    assert model_registry.challenge("2", why="again", tracking_uri=store)["changed"] is False

    # Promoting the challenger: it becomes the champion and the challenger alias goes (audited as such).
    model_registry.promote("2", who="ds", why="better live", tracking_uri=store)
    info = model_registry.describe(tracking_uri=store)
    assert (info["champion"], info["challenger"]) == ("2", None)
    assert moves(store)[-3:] == [("challenge", None, "2", "ds"), ("promote", "1", "2", "ds"),
                                 ("unchallenge", "2", "-", "ds")]
    assert info["events"][-1]["why"] == "promoted to champion: better live"
    # The former champion is still the one a rollback returns to: challenger moves are not champions.
    assert info["history"] == ["1", "2"]
    model_registry.rollback(who="ds", why="worse after all", tracking_uri=store)
    assert model_registry.champion_version(tracking_uri=store) == "1"

    # Put it back in the shadow, then clear it (make challenge VERSION=none WHY=...).
    model_registry.challenge("2", who="ds", why="one more look", tracking_uri=store)
    assert registry_cli(["--tracking-uri", store, "challenge", "--clear", "--who", "ds", "--why", "done"]) == 0
    assert model_registry.champion_version(tracking_uri=store, alias="challenger") is None
    assert moves(store)[-2:] == [("challenge", None, "2", "ds"), ("unchallenge", "2", "-", "ds")]
    with pytest.raises(SystemExit):  # a version and --clear together make no sense
        registry_cli(["--tracking-uri", store, "challenge", "2", "--clear", "--why", "x"])
    assert registry_cli(["--tracking-uri", store, "describe"]) == 0
    table = capsys.readouterr().out
    assert "unchallenge v2 -> -" in table and "challenge v2" not in table.replace("unchallenge v2", "")
    assert model_registry.describe(tracking_uri=store)["history"] == ["1"]  # promote, rollback: back to 1 alone


def test_serving_scores_the_challenger_in_the_shadow_without_changing_the_answer(store, demo_rows):
    plain = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False}).test_client()
    before = plain.post("/v1/decisions", json={"rows": demo_rows, "decision_year": 2026}).json
    assert all("shadow" not in d for d in before["decisions"])  # no challenger: answers as before
    assert plain.get("/version").json["shadow"] == {"enabled": True, "alias": "challenger", "version": None,
                                                    "threshold": None, "scorer": None, "error": None}

    model_registry.challenge("2", who="ds", why="shadow it", tracking_uri=store)
    app = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False})
    client = app.test_client()
    after = client.post("/v1/decisions", json={"rows": demo_rows, "decision_year": 2026}).json
    shadows = [d.pop("shadow") for d in after["decisions"]]
    assert after == before  # the champion's answer, untouched
    challenger = model_registry.load_version("2", tracking_uri=store)
    expected = challenger.predict(np.array([[r[f] for f in FEATURES] for r in demo_rows]))
    np.testing.assert_allclose([s["score"] for s in shadows], expected, rtol=0, atol=1e-12)
    assert all(s["version"] == "2" and s["approved"] == (s["score"] >= challenger.threshold) for s in shadows)
    assert sum(s["approved"] != d["approved"] for s, d in zip(shadows, after["decisions"])) > 0  # another model
    assert client.get("/ready").json == {"ready": True, "version": "1", "last_reload_error": None,
                                         "shadow_version": "2", "shadow_error": None}
    v = client.get("/version").json["shadow"]
    assert (v["version"], v["threshold"], v["error"]) == ("2", challenger.threshold, None)
    # MLflow's protocol is the champion's alone.
    scores = client.post("/invocations", json={"dataframe_records": demo_rows[:5]}).json
    assert scores == plain.post("/invocations", json={"dataframe_records": demo_rows[:5]}).json

    off = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False, "SERVING_SHADOW": "off"}).test_client()
    assert all("shadow" not in d for d in off.post("/v1/decisions", json={"rows": demo_rows[:3]}).json["decisions"])
    assert off.get("/version").json["shadow"]["enabled"] is False

    # The alias goes away: the next poll drops the shadow.
    model_registry.challenge(None, who="ds", why="seen enough", tracking_uri=store)
    assert app.extensions["shadow_holder"].refresh() is True
    assert all("shadow" not in d for d in client.post("/v1/decisions", json={"rows": demo_rows[:3]}).json["decisions"])


def test_a_broken_challenger_leaves_the_answers_alone_and_is_reported(store, demo_rows):
    client_ = model_registry.registry.client(store)
    broken = client_.create_model_version("credit-approval", source="/nonexistent/model").version
    model_registry.challenge(broken, who="ds", why="broken on purpose", tracking_uri=store)
    plain = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False, "SERVING_SHADOW": "off"}).test_client()
    client = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False}).test_client()
    body = {"rows": demo_rows[:50], "decision_year": 2026}
    answer = client.post("/v1/decisions", json=body)
    assert answer.status_code == 200
    got = dict(answer.json)
    error = got.pop("shadow_error")
    assert "MLmodel" in error  # what failed to load
    assert got == plain.post("/v1/decisions", json=body).json
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["shadow_version"] is None and ready.json["shadow_error"] == error
    assert client.get("/version").json["shadow"]["error"] == error
    page = client.get("/metrics").get_data(as_text=True)
    assert float(re.search(r'^serving_shadow_errors_total\{kind="load"\} (\S+)$', page, re.M).group(1)) >= 1


def register_narrower_copy(uri: str, feature: str) -> tuple[str, float]:
    """Register version 1's model again with a higher lower bound on one feature; return (version, that bound).

    The lower bound is the smallest value of the feature in the logged input example, so
    the version passes the servable check, but a row below it is refused by its row rules.
    """
    v1 = model_registry.load_version("1", tracking_uri=uri)
    example = pd.DataFrame(v1.input_example)
    low = float(example[feature].min())
    spec = dict(v1.metadata["spec"])
    spec["bounds"] = {**(spec.get("bounds") or {}), feature: [low, 100.0]}
    model_registry.configure(uri)
    with mlflow.start_run(experiment_id=mlflow_store.ensure_experiment(uri, "shadow-tests")) as active:
        info = package.log_model(v1.pipeline, {**v1.metadata, "spec": spec}, v1.reference, example)
    return model_registry.register(info.model_uri, run_id=active.info.run_id, tracking_uri=uri), low


def test_a_challenger_that_fails_on_a_request_is_skipped_for_it(store, demo_rows):
    feature = FEATURES[-1]
    version, low = register_narrower_copy(store, feature)
    model_registry.challenge(version, who="ds", why="stricter input rules", tracking_uri=store)
    client = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False}).test_client()
    plain = create_app({"MLFLOW_TRACKING_URI": store, "WATCH": False, "SERVING_SHADOW": "off"}).test_client()
    inside = {**demo_rows[0], feature: 100.0}
    below = {**demo_rows[0], feature: low / 2}
    fine = client.post("/v1/decisions", json={"rows": [inside], "decision_year": 2026}).json
    assert fine["decisions"][0]["shadow"]["version"] == version and "shadow_error" not in fine

    body = {"rows": [inside, below], "decision_year": 2026}
    answer = client.post("/v1/decisions", json=body)
    assert answer.status_code == 200
    got = dict(answer.json)
    assert f"version {version} failed to score" in got.pop("shadow_error") and feature in answer.json["shadow_error"]
    assert got == plain.post("/v1/decisions", json=body).json  # the champion's answer, whole and untouched
    page = client.get("/metrics").get_data(as_text=True)
    assert float(re.search(r'^serving_shadow_errors_total\{kind="score"\} (\S+)$', page, re.M).group(1)) >= 1
    assert client.get("/ready").json["shadow_version"] == version  # still loaded: one request failed, not the model


# --------------------------------------------------------------------------- the portal, with a live serving

TOKEN = "shared-secret-of-portal-and-serving"
PORTAL_THRESHOLD = 0.8


def history(paid_share: dict[int, float], monthly: int = 10_000):
    """Dues for the five feature years, each year paid to the given share (1.0 when not named)."""
    dues = {(y, m): monthly for y in YEARS for m in range(1, 13)}
    paid = {(y, m): int(monthly * paid_share.get(y, 1.0)) for y in YEARS for m in range(1, 13)}
    return dues, paid


# Customers from a clean record to a poor one: the two models should not agree on all of them.
SHARES = [1.0, 0.97, 0.93, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.3]


def portal_app(db_url: str, serving_url: str):
    app = create_portal({"SECRET_KEY": "test-secret-at-least-32-bytes-long!", "DATABASE_URL": db_url,
                         "TESTING": True, "SERVING_URL": serving_url, "RATELIMIT_STORAGE_URI": "memory://",
                         "SERVING_TOKEN": TOKEN, "CREDIT_LIMIT_MULTIPLE": 100.0, "ML_THRESHOLD": PORTAL_THRESHOLD})
    db = app.extensions["ledger_db"]
    for i, share in enumerate(SHARES):
        dues, paid = history({YEARS[-1]: share, YEARS[-2]: min(1.0, share + 0.05), YEARS[0]: share})
        add_customer(db, 101 + i, dues, paid, password="customer123")
    add_manager(db, 1, password="manager123")
    return app


def ask(client, customer_id, method="ml"):
    headers = login(client, "customer", customer_id, "customer123")
    return client.post("/api/customer/credit-request", headers=headers,
                       json={"year": NEXT_YEAR, "month": 1, "amount": "100.00", "method": method})


def stored(app) -> list:
    with app.extensions["ledger_db"].sessions() as s:
        return s.scalars(select(CreditDecision).order_by(CreditDecision.id)).all()


@pytest.fixture(scope="module")
def challenged_store(two_versions, tmp_path_factory):
    uri = copy_store(two_versions, tmp_path_factory.mktemp("challenged"))
    model_registry.challenge("2", who="tests", why="watch it live", tracking_uri=uri)
    return uri


@pytest.fixture(scope="module")
def serving_with_challenger(challenged_store):
    with Gunicorn("serving:create_app()", {"MLFLOW_TRACKING_URI": challenged_store, "SERVING_TOKEN": TOKEN},
                  workers=1, ready_path="/ready") as server:
        yield server.url


def test_every_ml_decision_stores_the_challengers_score_and_the_page_compares_them(
        db_url, serving_with_challenger, challenged_store):
    app = portal_app(db_url, serving_with_challenger)
    client = app.test_client()
    for i in range(len(SHARES)):
        assert ask(client, 101 + i).status_code == 200
    assert ask(client, 101, method="percentage").status_code == 200
    rows = stored(app)
    ml = [r for r in rows if r.method == "ml"]
    assert len(ml) == len(SHARES)
    challenger = model_registry.load_version("2", tracking_uri=challenged_store)
    expected = challenger.predict(np.array([[r.inputs["features"][f] for f in challenger.features] for r in ml]))
    for row, score in zip(ml, expected):
        assert row.model_version == "1" and row.shadow_version == "2"
        assert row.shadow_score == pytest.approx(score, abs=1e-12)
        assert row.shadow_approved == (row.shadow_score >= PORTAL_THRESHOLD)
    percentage = next(r for r in rows if r.method == "percentage")
    assert (percentage.shadow_version, percentage.shadow_score, percentage.shadow_approved) == (None, None, None)

    # The comparison, computed here from the stored rows, is what the API and the page show.
    differ = [r for r in ml if (r.score >= r.threshold) != (r.shadow_score >= r.threshold)]
    assert differ, "a model trained on shuffled labels should disagree with the champion somewhere"
    manager = login(client, "manager", 1, "manager123")
    report = client.get("/api/manager/model/shadow", headers=manager).json
    assert (report["champion_version"], report["challenger_version"], report["count"]) == ("1", "2", len(ml))
    assert report["agreement_rate"] == pytest.approx(1 - len(differ) / len(ml))
    assert report["champion"]["approval_rate"] == pytest.approx(sum(r.score >= r.threshold for r in ml) / len(ml))
    assert report["challenger"]["approval_rate"] == pytest.approx(sum(r.shadow_approved for r in ml) / len(ml))
    assert {d["customer_id"] for d in report["disagreements"]} == {r.customer_id for r in differ}
    assert sum(b["count"] for b in report["challenger"]["score_histogram"]) == len(ml)
    assert report["serving"] == {"available": True, "champion": "1", "enabled": True, "alias": "challenger",
                                 "version": "2", "threshold": challenger.threshold,
                                 "scorer": report["serving"]["scorer"], "error": None}
    assert client.get("/api/manager/model/shadow?challenger=x", headers=manager).status_code in (400, 422)

    web_login(client, "manager", 1, "manager123")
    assert 'id="shadow-link"' in client.get("/manager/model").get_data(as_text=True)
    page = client.get("/manager/model/shadow")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<script" not in html.split("</main>")[0].split("<main")[-1]
    assert "version <strong>" not in html and "version 1</strong>" in html and "version 2</strong>" in html
    table = html.split('id="disagreements"')[1].split("</table>")[0]
    assert set(map(int, re.findall(r'href="/customers/(\d+)"', table))) == {r.customer_id for r in differ}
    assert '<svg viewBox="0 0 720 250"' in html and "bar-challenger" in html
    app.extensions["ledger_db"].dispose()


def test_the_shadow_page_is_for_managers_only(db_url, serving_with_challenger):
    app = portal_app(db_url, serving_with_challenger)
    client = app.test_client()
    anonymous = client.get("/manager/model/shadow")
    assert anonymous.status_code == 302 and "/manager/login" in anonymous.headers["Location"]
    assert client.get("/api/manager/model/shadow").status_code == 401
    customer = login(client, "customer", 101, "customer123")
    assert client.get("/api/manager/model/shadow", headers=customer).status_code == 403
    web_login(client, "customer", 101, "customer123")
    assert client.get("/manager/model/shadow").status_code == 403
    app.extensions["ledger_db"].dispose()


def test_a_broken_challenger_leaves_the_decisions_alone_and_the_page_says_so(db_url, two_versions, tmp_path):
    uri = copy_store(two_versions, tmp_path / "broken")
    broken = model_registry.registry.client(uri).create_model_version("credit-approval",
                                                                      source="/nonexistent/model").version
    model_registry.challenge(broken, who="tests", why="broken on purpose", tracking_uri=uri)
    with Gunicorn("serving:create_app()", {"MLFLOW_TRACKING_URI": uri, "SERVING_TOKEN": TOKEN}, workers=1,
                  ready_path="/ready") as server:
        app = portal_app(db_url, server.url)
        client = app.test_client()
        answers = [ask(client, 101 + i) for i in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        rows = stored(app)
        assert len(rows) == 3 and all(r.method == "ml" and r.model_version == "1" and r.score is not None
                                      for r in rows)
        assert all((r.shadow_version, r.shadow_score, r.shadow_approved) == (None, None, None) for r in rows)
        web_login(client, "manager", 1, "manager123")
        html = client.get("/manager/model/shadow").get_data(as_text=True)
        assert 'id="shadow-error"' in html and "cannot be scored" in html and "MLmodel" in html
        assert "No ML decision has a shadow score yet." in html
        app.extensions["ledger_db"].dispose()
