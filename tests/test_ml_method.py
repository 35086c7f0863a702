"""The ML credit method end to end: the portal asks a live decision service (gunicorn) and stores the answer."""
import http.server
import json
import re
import threading
import time
from datetime import date

import pytest
import requests

from contracts.signing import signature
from pipeline.features import FEATURES, feature_years
from portal import create_app
from portal.decision_service import DecisionService
from testing.audit import check_invariants, snapshot
from testing.people import add_customer, add_manager
from testing.servers import Gunicorn, free_port
from tests.factories import login

pytestmark = pytest.mark.slow
YEARS = feature_years(date.today().year)
NEXT_YEAR = date.today().year + 1


TOKEN = "shared-secret-of-portal-and-serving"


@pytest.fixture(scope="module")
def serving_url(trained_store):
    env = {"MLFLOW_TRACKING_URI": trained_store[0], "SERVING_TOKEN": TOKEN}
    with Gunicorn("serving:create_app()", env, ready_path="/ready") as server:
        yield server.url


def history(paid_share: dict[int, float], monthly: int = 10_000):
    """Dues for the five feature years, each year paid to the given share."""
    dues = {(y, m): monthly for y in YEARS for m in range(1, 13)}
    paid = {(y, m): int(monthly * paid_share.get(y, 1.0)) for y in YEARS for m in range(1, 13)}
    return dues, paid


def make_app(db_url, serving_url, timeout=2.0, token=TOKEN):
    app = create_app({"SECRET_KEY": "test-secret-at-least-32-bytes-long!", "DATABASE_URL": db_url, "TESTING": True,
                      "SERVING_URL": serving_url,
                      "SERVING_TIMEOUT": timeout, "RATELIMIT_STORAGE_URI": "memory://", "SERVING_TOKEN": token,
                      # Generous limits: these tests are about the model's answers, test_credit_policy about limits.
                      "CREDIT_LIMIT_MULTIPLE": 100.0})
    db = app.extensions["ledger_db"]
    good_dues, good_paid = history({})
    add_customer(db, 101, good_dues, good_paid, password="customer123")
    bad_dues, bad_paid = history({YEARS[-1]: 0.3, YEARS[-2]: 0.4})
    add_customer(db, 102, bad_dues, bad_paid, password="customer123")
    add_customer(db, 103, {(YEARS[-1], 1): 10_000}, password="customer123")  # one year of history only
    add_manager(db, 1, password="manager123")
    return app


@pytest.fixture
def app_live(db_url, serving_url, trained_store):
    app = make_app(db_url, serving_url)
    app.config["MLFLOW_TRACKING_URI"] = trained_store[0]
    yield app
    app.extensions["ledger_db"].dispose()


def ask(client, customer_id, method="ml", amount="1000.00"):
    headers = login(client, "customer", customer_id, "customer123")
    return client.post("/api/customer/credit-request", headers=headers,
                       json={"year": NEXT_YEAR, "month": 1, "amount": amount, "method": method})


def test_approved_by_the_model(app_live):
    client = app_live.test_client()
    r = ask(client, 101)
    assert r.status_code == 200, r.json
    d = r.json
    assert d["method"] == "ml" and d["approved"] is True and d["score"] >= d["threshold"] == 0.8
    assert d["model_version"] == "1"
    assert [y["year"] for y in d["yearly_percentages"]] == YEARS
    assert all(y["percentage"] == 100.0 for y in d["yearly_percentages"])
    assert d["reasons"] and all(str(r["feature"]) in FEATURES for r in d["reasons"])
    headers = login(client, "customer", 101, "customer123")
    months = client.get(f"/api/customer/data/101/{NEXT_YEAR}", headers=headers).json["months"]
    assert months[0]["amount_to_pay"] == "1000.00"  # the approved credit became a due
    check_invariants(app_live.extensions["ledger_db"])


def test_rejected_by_the_model_with_reasons_in_real_years(app_live):
    client = app_live.test_client()
    db = app_live.extensions["ledger_db"]
    before = snapshot(db)
    d = ask(client, 102).json
    assert d["approved"] is False and d["score"] < 0.8
    texts = " / ".join(r["text"] for r in d["reasons"])
    assert f"You paid 30% of what was due in {YEARS[-1]}; approved customers typically paid" in texts
    assert f"You paid 40% of what was due in {YEARS[-2]}; approved customers typically paid" in texts
    after = snapshot(db)
    assert after["decisions"] == before["decisions"] + 1 and after["dues"] == before["dues"]


def test_manager_sees_the_decision_replays_it_and_the_model_page(app_live):
    client = app_live.test_client()
    request_id = ask(client, 102).json["request_id"]
    manager = login(client, "manager", 1, "manager123")
    log = client.get("/api/manager/decisions?method=ml", headers=manager).json
    assert log["total"] == 1 and log["decisions"][0]["request_id"] == request_id
    replay = client.post(f"/api/manager/decisions/{request_id}/replay", headers=manager).json
    assert replay["match"] is True and replay["replayed_score"] == replay["stored_score"]
    model = client.get("/api/manager/model", headers=manager).json
    assert model["serving"]["available"] and model["serving"]["version"] == "1"
    assert model["registry"]["champion"]["version"] == "1" and model["registry"]["champion"]["metrics"]
    assert model["recent"]["count"] == 1 and model["recent"]["approval_rate"] == 0.0
    assert {row["feature"] for row in model["drift"]} == set(FEATURES)


def test_history_too_short_for_the_model(app_live):
    r = ask(app_live.test_client(), 103)
    assert r.status_code == 422 and r.json["field"] == "method" and "five" in r.json["error"]


def test_serving_refuses_calls_without_the_shared_token(serving_url):
    rows = {"rows": [dict.fromkeys(FEATURES, 90.0)]}
    assert requests.post(f"{serving_url}/v1/decisions", json=rows, timeout=5).status_code == 401
    bad = requests.post(f"{serving_url}/v1/decisions", json=rows, timeout=5, headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401 and bad.json()["error_code"] == "UNAUTHENTICATED"
    good = requests.post(f"{serving_url}/v1/decisions", json=rows, timeout=5,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200 and good.headers["X-Serving-Signature"] == signature(TOKEN, good.content)
    assert requests.get(f"{serving_url}/ready", timeout=5).status_code == 200  # health checks stay open


def _decision(**fields) -> bytes:
    return json.dumps({"decisions": [{"score": 0.95, "approved": True, "threshold": 0.8, "model_version": "9",
                                      "reasons": []} | fields]}).encode()


class _Stub(http.server.BaseHTTPRequestHandler):
    """A stand-in on SERVING_URL that misbehaves in the way `behaviour` says (signing like serving, or not)."""

    behaviour = "garbage"
    BODIES = {
        "garbage": (200, b"<html>not json</html>"),
        "no_model": (503, b'{"error_code": "SERVICE_UNAVAILABLE", "message": "no model is loaded"}'),
        "loading": (503, b'{"error_code": "SERVICE_UNAVAILABLE", "message": "no model is loaded"}'),
        "slow": (200, b"{}"),
        "score_above_one": (200, _decision(score=1.7)),
        "no_version": (200, _decision(model_version=None)),
        "empty_version": (200, _decision(model_version="")),
        "unsigned": (200, _decision()),
        # Answers that say "approved": the portal judges the score itself, with its own threshold.
        "approves_a_low_score": (200, _decision(score=0.1, approved=True)),
        "lowers_the_threshold": (200, _decision(score=0.02, threshold=0.01, approved=True)),
    }

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.behaviour == "slow":
            time.sleep(1.5)
        status, body = self.BODIES[self.behaviour]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if self.behaviour != "unsigned":
            self.send_header("X-Serving-Signature", signature(TOKEN, body))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - /ready: 503 while "loading", as serving answers before its model is loaded
        status = 503 if self.behaviour == "loading" else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b'{"ready": false}' if status == 503 else b'{"ready": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize("behaviour", ["down", "garbage", "no_model", "slow", "score_above_one", "no_version",
                                       "empty_version", "unsigned"])
def test_ml_unavailable_approves_nothing_and_percentage_still_works(db_url, stub, behaviour):
    _Stub.behaviour = behaviour
    url = f"http://127.0.0.1:{free_port()}" if behaviour == "down" else f"http://127.0.0.1:{stub.server_port}"
    app = make_app(db_url, url, timeout=0.5)
    client = app.test_client()
    db = app.extensions["ledger_db"]
    before = snapshot(db)
    r = ask(client, 101)
    assert r.status_code == 503 and "ML method unavailable" in r.json["error"], r.json
    assert snapshot(db) == before
    r = ask(client, 101, method="percentage")
    assert r.status_code == 200 and r.json["approved"] is True
    app.extensions["ledger_db"].dispose()


def test_a_service_still_loading_its_model_says_so(db_url, stub):
    _Stub.behaviour = "loading"
    app = make_app(db_url, f"http://127.0.0.1:{stub.server_port}")
    r = ask(app.test_client(), 101)
    assert r.status_code == 503 and "the model is still loading" in r.json["error"], r.json
    app.extensions["ledger_db"].dispose()


@pytest.mark.parametrize("behaviour", ["approves_a_low_score", "lowers_the_threshold"])
def test_the_portal_decides_with_its_own_threshold(db_url, stub, behaviour):
    _Stub.behaviour = behaviour
    app = make_app(db_url, f"http://127.0.0.1:{stub.server_port}")
    client = app.test_client()
    dues_before = snapshot(app.extensions["ledger_db"])["dues"]
    r = ask(client, 101)
    assert r.status_code == 200 and r.json["approved"] is False and r.json["threshold"] == 0.8
    assert r.json["failed_checks"] == ["score"] and r.json["model_version"] == "9"
    assert snapshot(app.extensions["ledger_db"])["dues"] == dues_before  # no credit was added
    app.extensions["ledger_db"].dispose()


def test_a_failing_service_opens_the_circuit_and_later_closes_it(db_url, stub):
    _Stub.behaviour = "no_model"
    app = make_app(db_url, f"http://127.0.0.1:{stub.server_port}")
    app.extensions["decision_service"] = DecisionService(f"http://127.0.0.1:{stub.server_port}", token=TOKEN,
                                                         breaker_failures=2, breaker_seconds=1.0)
    client = app.test_client()
    first, second = ask(client, 101), ask(client, 101)
    assert "answered 503" in first.json["error"] and "answered 503" in second.json["error"]
    _Stub.behaviour = "approves_a_low_score"  # healthy again, but the circuit is open: not even asked
    third = ask(client, 101)
    assert third.status_code == 503 and "failing" in third.json["error"]
    time.sleep(1.1)  # after the reset time one trial call goes through and closes the circuit
    assert ask(client, 101).status_code == 200
    app.extensions["ledger_db"].dispose()


def test_manager_model_page_and_replay_button(app_live):
    client = app_live.test_client()
    request_id = ask(client, 102).json["request_id"]
    assert client.get("/manager/model").status_code == 403  # this client is customer 102
    login_page = client.get("/manager/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page.get_data(as_text=True)).group(1)
    form = {"csrf_token": token, "id": "1", "password": "manager123"}
    assert client.post("/manager/login", data=form).status_code == 302
    html = client.get("/manager/model").get_data(as_text=True)
    assert "credit-approval version 1" in html and "Recent ML decisions" in html
    assert "1 year back (" in html and "paid_pct_1y_ago" not in html  # features and metrics in words
    assert "Calibration error (ECE)" in html and "test_ece" not in html
    decision_page = client.get(f"/decisions/{request_id}").get_data(as_text=True)
    assert "Replay this decision" in decision_page
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', decision_page).group(1)
    assert client.post(f"/manager/decisions/{request_id}/replay").status_code == 400  # no CSRF token
    result = client.post(f"/manager/decisions/{request_id}/replay", data={"csrf_token": csrf})
    assert result.status_code == 200 and "Same answer" in result.get_data(as_text=True)
