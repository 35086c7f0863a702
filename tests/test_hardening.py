"""Issue 13's attack review, one test per row of its table (the row number is in the name), on both engines."""
from __future__ import annotations

import json
import re
from datetime import date

import pytest

from model_registry import registry
from model_registry.__main__ import main as registry_cli
from pipeline import simulate
from pipeline.features import FEATURES
from portal import create_app
from portal.db import Database
from portal.models import MAX_ID
from serving import create_app as create_serving
from testing.audit import snapshot
from tests.factories import form_token

A, B = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.9"}


def api_login(client, password: str, customer_id: int = 101, address: dict = A):
    return client.post("/api/customer/login", json={"id": customer_id, "password": password}, environ_base=address)


def form_login(client, password: str, customer_id: int = 101, address: dict = A):
    token = form_token(client, "/customer/login")
    return client.post("/customer/login", data={"csrf_token": token, "id": str(customer_id), "password": password},
                       environ_base=address)


def test_row01_failures_count_once_across_the_api_and_the_form(client, ledger):
    codes = [api_login(client, "nope").status_code for _ in range(3)]
    codes += [form_login(client, "nope").status_code for _ in range(2)]
    assert codes == [401] * 5
    assert form_login(client, "nope").status_code == 429  # the sixth guess, whichever way it comes
    assert api_login(client, "customer123").status_code == 429


def test_row02_a_throttled_address_cannot_lock_the_customer_out(client, ledger):
    for _ in range(5):
        api_login(client, "nope", address=A)
    assert api_login(client, "customer123", address=A).status_code == 429
    assert api_login(client, "customer123", address=B).status_code == 200  # the customer, elsewhere


def test_row02_many_addresses_together_meet_a_per_account_ceiling(app, client, ledger):
    app.config["LOGIN_ID_LIMITS"] = "8 per hour"
    for i in range(8):
        assert api_login(client, "nope", address={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code == 401
    assert api_login(client, "nope", address={"REMOTE_ADDR": "192.0.2.99"}).status_code == 429


def test_row14_retry_after_only_on_429(client, ledger):
    ok, bad = api_login(client, "customer123"), api_login(client, "nope")
    assert (ok.status_code, bad.status_code) == (200, 401)
    assert "Retry-After" not in ok.headers and "Retry-After" not in bad.headers
    assert not any(h.lower().startswith("x-ratelimit") for h in ok.headers.keys())
    for _ in range(4):
        api_login(client, "nope")
    refused = api_login(client, "nope")
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 61
    page = form_login(client, "nope")
    assert page.status_code == 429 and 1 <= int(page.headers["Retry-After"]) <= 61


def _cli(db_url: str):
    return create_app({"SECRET_KEY": "x", "DATABASE_URL": db_url}).test_cli_runner()


def test_row03_production_never_creates_demo_logins(db_url, tmp_path, monkeypatch):
    assert simulate.main(["--customers", "20", "--out", str(tmp_path / "data")]) == 0
    monkeypatch.setenv("APP_ENV", "production")
    runner = _cli(db_url)
    assert runner.invoke(args=["wants-demo"]).exit_code == 1
    refused = runner.invoke(args=["import-data", str(tmp_path / "data"), "--demo"])
    assert refused.exit_code != 0 and "production" in refused.output
    assert runner.invoke(args=["ensure-demo"]).exit_code != 0
    db = Database(db_url)
    assert snapshot(db)["customers"][0] == 0 and _managers(db) == 0
    db.dispose()


def test_row03_an_imported_ledger_never_gets_the_demo_manager(db_url, tmp_path):
    assert simulate.main(["--customers", "20", "--out", str(tmp_path / "data")]) == 0
    runner = _cli(db_url)
    assert runner.invoke(args=["import-data", str(tmp_path / "data")]).exit_code == 0  # a bank's export
    assert runner.invoke(args=["wants-demo"]).exit_code == 1  # so `make data` seeds nothing more
    db = Database(db_url)
    assert _managers(db) == 0
    db.dispose()


def _managers(db) -> int:
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT COUNT(*) FROM managers").scalar_one()


DEEP = '{"id": 101, "password": "x", "z": ' + "[" * 1000 + "]" * 1000 + "}"


def test_row04_a_deeply_nested_body_is_a_400_on_every_json_endpoint(client, customer, manager):
    headers = {"Content-Type": "application/json"}
    for path in ("/api/customer/login", "/api/manager/login"):
        r = client.post(path, data=DEEP, headers=headers)
        assert r.status_code == 400 and r.json["error"] == "the JSON body is nested too deeply"
    for path, auth in (("/api/customer/payment", customer), ("/api/customer/credit-request", customer),
                       ("/api/manager/customers", manager)):
        r = client.post(path, data=DEEP, headers={**headers, **auth})
        assert r.status_code == 400 and "nested too deeply" in r.json["error"]


def test_row05_nul_and_control_characters_are_a_422_naming_the_field(client, ledger, manager):
    before = snapshot(ledger)
    r = client.post("/api/manager/customers", headers=manager, json={"name": "Ann\x00", "password": "long-enough"})
    assert r.status_code == 422 and r.json["field"] == "name"
    r = client.get("/api/manager/portfolio?q=a%00b", headers=manager)
    assert r.status_code == 422 and r.json["field"] == "q"
    r = client.post("/api/manager/payments/1/reversal", headers=manager, json={"reason": "bounced\x00"})
    assert r.status_code == 422 and r.json["field"] == "reason"
    assert snapshot(ledger) == before


def test_row06_a_payment_above_the_maximum_is_a_422(app, client, customer, ledger):
    before = snapshot(ledger)
    r = client.post("/api/customer/payment", headers=customer,
                    json={"year": 2024, "month": 1, "amount": "999999999999.99"})
    assert r.status_code == 422 and r.json["field"] == "amount" and "at most 1000000.00" in r.json["error"]
    assert snapshot(ledger) == before
    app.config["MAX_PAYMENT_CENTS"] = 10_000
    r = client.post("/api/customer/payment", headers=customer, json={"year": 2024, "month": 1, "amount": "100.01"})
    assert r.status_code == 422 and "at most 100.00" in r.json["error"]


def test_row07_payments_and_credit_requests_have_separate_key_spaces(client, customer, ledger):
    paid = client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": "10.00"},
                       headers={**customer, "Idempotency-Key": "credit:zz"})
    asked = client.post("/api/customer/credit-request", headers={**customer, "Idempotency-Key": "zz"},
                        json={"year": date.today().year + 1, "month": 1, "amount": "10.00", "method": "percentage"})
    assert (paid.status_code, asked.status_code) == (200, 200)


def test_row08_replaying_a_reversed_payment_says_so(client, customer, manager, ledger):
    body, key = {"year": 2024, "month": 1, "amount": "10.00"}, {"Idempotency-Key": "pay-once"}
    first = client.post("/api/customer/payment", json=body, headers={**customer, **key}).json
    assert first["reversed"] is False and first["reversed_at"] is None
    client.post(f"/api/manager/payments/{first['payment_id']}/reversal", headers=manager, json={"reason": "bounced"})
    again = client.post("/api/customer/payment", json=body, headers={**customer, **key}).json
    assert again["replayed"] is True and again["reversed"] is True and again["reversed_at"]
    assert again["payment_id"] == first["payment_id"]


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_row09_every_timestamp_has_an_offset(client, customer, manager, ledger):
    client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": "10.00"}, headers=customer)
    client.post("/api/customer/credit-request", headers=customer,
                json={"year": date.today().year + 1, "month": 1, "amount": "10.00", "method": "percentage"})
    stamps = [p["created_at"] for p in client.get("/api/customer/payments/101", headers=customer).json["payments"]]
    stamps += [d["created_at"] for d in client.get("/api/manager/decisions", headers=manager).json["decisions"]]
    assert len(stamps) == 2 and all(RFC3339.match(s) for s in stamps), stamps


def test_row10_ids_stay_in_the_documented_range(client, ledger, manager):
    top = client.post("/api/manager/customers", headers=manager,
                      json={"id": MAX_ID, "name": "Last", "password": "long-enough"})
    assert top.status_code == 201 and top.json["id"] == MAX_ID
    nxt = client.post("/api/manager/customers", headers=manager, json={"name": "Next", "password": "long-enough"})
    assert nxt.status_code == 409 and nxt.json["field"] == "id"
    over = client.post("/api/manager/customers", headers=manager,
                       json={"id": MAX_ID + 1, "name": "Over", "password": "long-enough"})
    assert over.status_code == 422 and over.json["field"] == "id"


@pytest.mark.parametrize("body,field", [
    ({"name": "   ", "password": "long-enough"}, "name"),
    ({"name": "Ann\nLee", "password": "long-enough"}, "name"),
    ({"name": "Ann", "password": " " * 8}, "password"),
])
def test_row11_blank_names_and_passwords_are_refused(client, ledger, manager, body, field):
    r = client.post("/api/manager/customers", headers=manager, json=body)
    assert r.status_code == 422 and r.json["field"] == field


@pytest.mark.parametrize("amount", [" 100 ", "\u00a0100", "100\n", "१००", "100.0 "])
def test_row11_amounts_exactly_as_the_pattern_says(client, customer, ledger, amount):
    r = client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": amount}, headers=customer)
    assert r.status_code == 422 and r.json["field"] == "amount"


@pytest.mark.parametrize("path", ["/api/customer/data/101/२०२४", "/api/customer/summary/१०१",
                                  "/customers/१०१", "/api/customer/data/101/²⁰²⁴"])
def test_row11_ascii_digits_only_in_paths(client, customer, ledger, path):
    assert client.get(path, headers=customer).status_code == 404


def test_row12_who_you_are_is_checked_before_the_body(app, client, customer, ledger):
    anonymous = app.test_client()
    assert anonymous.post("/api/manager/customers", json={"bogus": 1}).status_code == 401
    assert anonymous.post("/api/customer/payment", json={"bogus": 1}).status_code == 401
    assert anonymous.get("/api/manager/portfolio?bogus=1").status_code == 401
    r = client.post("/api/manager/customers", json={"bogus": 1}, headers=customer)
    assert r.status_code == 403


@pytest.mark.parametrize("path", ["/customers/101", "/customers/101/history.csv", "/customers/101/statement.pdf",
                                  "/pay", "/credit"])
def test_row13_authenticated_pages_and_downloads_are_not_stored(client, auth, ledger, path):
    auth.web_login("customer", 101, "customer123")
    r = client.get(path)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"


ROW = dict.fromkeys(FEATURES, 90.0)


def _serving(uri: str):
    app = create_serving({"MLFLOW_TRACKING_URI": uri, "WATCH": False})
    return app, app.test_client()


@pytest.mark.slow
def test_row15_an_alias_that_no_longer_resolves_is_named_by_a_running_and_a_fresh_service(store_copy):
    app, running = _serving(store_copy)
    c = registry.client(store_copy)
    v2 = registry.register(c.get_model_version("credit-approval", "1").source, tracking_uri=store_copy)
    registry.promote(v2, who="test", why="to lose it", tracking_uri=store_copy)
    assert app.extensions["model_holder"].refresh() and running.get("/version").json["version"] == v2
    c.delete_model_version("credit-approval", v2)  # the alias goes with it: it points at no version
    assert app.extensions["model_holder"].refresh() is False
    version, ready = running.get("/version").json, running.get("/ready")
    assert version["version"] == v2 and "credit-approval@champion does not resolve" in version["last_reload_error"]
    assert ready.status_code == 200 and ready.json["last_reload_error"] == version["last_reload_error"]
    assert running.post("/invocations", json={"instances": [list(ROW.values())]}).status_code == 200
    _, fresh = _serving(store_copy)
    ready = fresh.get("/ready")
    assert ready.status_code == 503 and ready.json["ready"] is False
    assert "credit-approval@champion does not resolve" in ready.json["last_reload_error"]
    assert ready.json["reason"] == ready.json["last_reload_error"] == fresh.get("/version").json["last_reload_error"]
    registry.promote("1", who="test", why="back", tracking_uri=store_copy)  # a good version again: nothing to report
    assert app.extensions["model_holder"].refresh() and running.get("/ready").json["last_reload_error"] is None


@pytest.mark.slow
def test_row15_a_fresh_service_names_an_artifact_that_does_not_load(store_copy):
    broken = registry.client(store_copy).create_model_version("credit-approval", source="/nonexistent/model").version
    registry.promote(broken, who="test", why="broken on purpose", tracking_uri=store_copy)
    _, fresh = _serving(store_copy)
    ready, version = fresh.get("/ready"), fresh.get("/version").json
    assert ready.status_code == 503 and ready.json["ready"] is False and version["version"] is None
    assert ready.json["last_reload_error"] == version["last_reload_error"] and version["last_reload_error"]


@pytest.mark.slow
def test_row15_promote_refuses_a_version_whose_artifact_does_not_load(store_copy, capsys):
    c = registry.client(store_copy)
    broken = str(c.create_model_version("credit-approval", source="/nonexistent/model").version)
    assert registry_cli(["--tracking-uri", store_copy, "promote", broken, "--why", "try it"]) == 1
    assert f"version {broken} cannot be served: cannot load" in capsys.readouterr().err
    assert registry.champion_version(tracking_uri=store_copy) == "1"
    assert registry_cli(["--tracking-uri", store_copy, "promote", "99", "--why", "no such version"]) == 1
    good = registry.register(c.get_model_version("credit-approval", "1").source, tracking_uri=store_copy)
    assert registry_cli(["--tracking-uri", store_copy, "promote", good, "--why", "it loads"]) == 0
    assert registry.champion_version(tracking_uri=store_copy) == good


@pytest.mark.slow
def test_row17_more_rows_than_the_documented_limit_is_a_413_with_a_json_error(trained_store):
    app, service = _serving(trained_store[0])
    limit = app.config["MAX_ROWS"]
    assert limit == 1000  # the default docs/serving.md and the README give
    rows = [ROW] * limit
    assert service.post("/v1/decisions", json={"rows": rows}).status_code == 200
    assert service.post("/invocations", json={"dataframe_records": rows}).status_code == 200
    csv = ",".join(FEATURES) + "\n" + "\n".join(",".join(str(v) for v in ROW.values()) for _ in range(limit + 1))
    for path, body in (("/v1/decisions", {"rows": [*rows, ROW]}), ("/invocations", {"dataframe_records": [*rows, ROW]}),
                       ("/invocations", {"instances": [list(ROW.values())] * (limit + 1)})):
        r = service.post(path, json=body)
        assert r.status_code == 413 and r.json["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert r.json["message"].startswith(f"at most {limit} rows per request")
    r = service.post("/invocations", data=csv, content_type="text/csv")
    assert r.status_code == 413 and r.json["message"].startswith(f"at most {limit} rows per request")
    huge = '{"rows": [' + ",".join([json.dumps(ROW)] * (app.config["MAX_CONTENT_LENGTH"] // 100)) + "]}"
    r = service.post("/v1/decisions", data=huge, content_type="application/json")
    assert r.status_code == 413 and r.json["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "larger than" in r.json["message"]
