"""Login throttling, sessions, token revocation, CSRF, security headers, password hashing."""
import os
import re
import uuid

import pytest
import redis
from argon2 import PasswordHasher
from flask_limiter.util import get_qualified_name
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from portal import create_app
from portal.auth.passwords import HASHER
from portal.config import load_config
from portal.extensions import limiter
from portal.models import Customer, Due
from testing.people import add_customer
from tests.factories import login


def test_repeated_failures_for_an_id_get_429(client, ledger):
    codes = [client.post("/api/customer/login", json={"id": 101, "password": "nope"}).status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    r = client.post("/api/customer/login", json={"id": 101, "password": "customer123"})
    assert r.status_code == 429 and "too many failed logins" in r.json["error"] and r.headers.get("Retry-After")
    # Another id is not locked out by 101's failures.
    assert client.post("/api/customer/login", json={"id": 102, "password": "other-pw"}).status_code == 200


def test_only_throttled_login_views_carry_limits_so_the_limiter_skips_no_limited_request(app):
    # portal.auth.throttle lets every request but a `throttled` view's skip the limiter: a limit declared
    # on any other view would never be checked. The limiter keeps the views it limits by qualified name.
    limited = {name for name, view in app.view_functions.items()
               if get_qualified_name(view) in limiter._marked_for_limiting}
    assert limited == {"auth.customer_login", "auth.manager_login",
                       "web_auth.customer_login", "web_auth.manager_login"}
    assert all(getattr(app.view_functions[name], "throttled", False) for name in limited)


def test_successful_logins_are_not_counted(client, ledger):
    for _ in range(8):
        assert client.post("/api/customer/login", json={"id": 101, "password": "customer123"}).status_code == 200


def test_the_session_cookie_is_set_at_login_and_not_resent_on_every_answer(client, ledger):
    login = client.post("/api/customer/login", json={"id": 101, "password": "customer123"})
    assert "session=" in login.headers.get("Set-Cookie", "")
    answer = client.get("/api/customer/summary/101")  # the cookie's login, as a page's request
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    bearer = client.get("/api/customer/summary/101", headers={"Authorization": f"Bearer {login.json['token']}"})
    assert bearer.status_code == 200 and "Set-Cookie" not in bearer.headers


def test_new_session_on_login(client, ledger):
    with client.session_transaction() as s:
        s["planted"] = "by an attacker"
    client.post("/api/customer/login", json={"id": 101, "password": "customer123"})
    with client.session_transaction() as s:
        assert "planted" not in s and "_user_id" in s


def test_logout_revokes_token_and_session(app, ledger):
    api_client, browser = app.test_client(), app.test_client()
    headers = login(api_client, "customer", 101, "customer123")
    csrf = browser.post("/api/customer/login", json={"id": 101, "password": "customer123"}).json["csrf_token"]
    assert api_client.post("/api/logout", headers=headers).status_code == 200
    assert app.test_client().get("/api/customer/summary/101", headers=headers).status_code == 401
    # The browser's login is another session: alive until it logs out too.
    assert browser.get("/api/customer/summary/101").status_code == 200
    stolen = browser.get_cookie("session").value
    assert browser.post("/api/logout", headers={"X-CSRFToken": csrf}).status_code == 200
    assert browser.get("/api/customer/summary/101").status_code == 401
    # A copy of the cookie taken before logout is dead too: the login record is revoked.
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/api/customer/summary/101").status_code == 401


def test_tampered_or_foreign_token_is_refused(app, client, ledger):
    headers = login(client, "customer", 101, "customer123")
    token = headers["Authorization"][7:]
    fresh = app.test_client()
    assert fresh.get("/api/customer/summary/101", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert fresh.get("/api/customer/summary/101", headers={"Authorization": "Bearer abc.def.ghi"}).status_code == 401
    assert fresh.get("/api/customer/summary/101", headers=headers).status_code == 200


COOKIE_WRITES = [
    ("/api/customer/payment", {"year": 2024, "month": 1, "amount": "1.00"}),
    ("/api/customer/credit-request", {"year": 2100, "month": 1, "amount": "1.00", "method": "percentage"}),
    ("/api/logout", None),
]


@pytest.mark.parametrize("path,body", COOKIE_WRITES)
def test_cookie_writes_need_csrf(client, ledger, path, body):
    csrf = client.post("/api/customer/login", json={"id": 101, "password": "customer123"}).json["csrf_token"]
    r = client.post(path, json=body)
    assert r.status_code == 400 and r.json["field"] == "csrf_token"
    r = client.post(path, json=body, headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400
    r = client.post(path, json=body, headers={"X-CSRFToken": csrf})
    assert r.status_code in (200, 422), r.json  # 422: a year outside the schedule, past the CSRF check


MANAGER_WRITES = [
    ("/api/manager/customers", {"name": "X", "password": "long-enough"}),
    ("/api/manager/customers/101/password", {"password": "long-enough"}),
    ("/api/manager/payments/1/reversal", {"reason": "x"}),
]


@pytest.mark.parametrize("path,body", MANAGER_WRITES)
def test_manager_cookie_writes_need_csrf(client, ledger, path, body):
    client.post("/api/manager/login", json={"id": 1, "password": "manager123"})
    r = client.post(path, json=body)
    assert r.status_code == 400 and r.json["field"] == "csrf_token"


def test_security_headers(client, ledger):
    r = client.get("/api/openapi.json")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Referrer-Policy"] == "same-origin"
    r = client.post("/api/customer/login", json={"id": 101, "password": "customer123"})
    assert r.headers["Cache-Control"] == "no-store"


def test_password_hash_parameters(ledger):
    with ledger.sessions() as s:
        stored = s.scalar(select(Customer.password_hash).where(Customer.id == 101))
    assert stored.startswith("$argon2id$")
    m, t, p = map(int, re.search(r"m=(\d+),t=(\d+),p=(\d+)", stored).groups())
    # OWASP: argon2id with at least 19 MiB, 2 iterations, 1 lane.
    assert m >= 19 * 1024 and t >= 2 and p >= 1
    assert isinstance(HASHER, PasswordHasher)


def test_production_needs_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        load_config()
    monkeypatch.setenv("SECRET_KEY", "too-short-for-hs256")
    with pytest.raises(RuntimeError, match="at least 32"):
        load_config()
    monkeypatch.setenv("SECRET_KEY", "from-the-environment-and-32-chars-long")
    config = load_config()
    assert config["SESSION_COOKIE_SECURE"] is True and config["DEBUG"] is False


def test_local_secret_key_is_generated_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.delenv("FLASK_ENV", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    first = load_config()["SECRET_KEY"]
    assert len(first) >= 64 and load_config()["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_the_other_parts_addresses_follow_their_port_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name in ("SERVING_URL", "WORKBENCH_URL", "PORTAL_URL", "SERVING_PORT", "WORKBENCH_PORT", "PORTAL_PORT"):
        monkeypatch.delenv(name, raising=False)
    config = load_config()
    assert (config["SERVING_URL"], config["WORKBENCH_URL"], config["PORTAL_URL"]) == (
        "http://127.0.0.1:5001", "http://127.0.0.1:5003", "http://127.0.0.1:5000")
    monkeypatch.setenv("SERVING_PORT", "6001")
    monkeypatch.setenv("WORKBENCH_PORT", "6003")
    monkeypatch.setenv("PORTAL_PORT", "6000")
    config = load_config()
    assert (config["SERVING_URL"], config["WORKBENCH_URL"], config["PORTAL_URL"]) == (
        "http://127.0.0.1:6001", "http://127.0.0.1:6003", "http://127.0.0.1:6000")
    monkeypatch.setenv("WORKBENCH_URL", "http://workbench.internal:80")  # an explicit address wins
    assert load_config()["WORKBENCH_URL"] == "http://workbench.internal:80"


def test_database_down_is_a_503_with_retry_after(app, client, ledger, monkeypatch):
    headers = login(client, "customer", 101, "customer123")

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr("portal.ledger.payments.lock_customers", down)
    r = client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": "1.00"}, headers=headers)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and "retry" in r.json["error"]


SQL_PAYLOADS = ["' OR '1'='1", "'; DROP TABLE customers; --", '" OR ""="', "101; DELETE FROM dues", "%' --",
                "\\'; SELECT pg_sleep(5); --", "名前' UNION SELECT password_hash FROM customers --"]


@pytest.mark.parametrize("payload", SQL_PAYLOADS)
def test_sql_metacharacters_in_every_string_field(app, client, ledger, payload):
    with ledger.sessions() as s:
        before = (s.scalar(select(func.count()).select_from(Customer)), s.scalar(select(func.count()).select_from(Due)))
    # Login: the password and (as a string) the id.
    assert client.post("/api/customer/login", json={"id": 101, "password": payload}).status_code == 401
    assert client.post("/api/customer/login", json={"id": payload, "password": "x"}).status_code == 422
    manager = login(client, "manager", 1, "manager123")
    customer = login(app.test_client(), "customer", 101, "customer123")
    # Search: the payload matches nobody's name, and never everybody.
    found = client.get("/api/manager/portfolio", query_string={"q": payload}, headers=manager)
    assert found.status_code == 200 and found.json["total"] == 0
    # Every string a manager can write, stored and read back verbatim.
    created = client.post("/api/manager/customers", headers=manager,
                          json={"name": payload, "password": payload + "-long-enough", "phone": "555 0100"})
    assert created.status_code == 201 and created.json["name"] == payload.strip()
    new_id = created.json["id"]
    assert client.post(f"/api/manager/customers/{new_id}/password", headers=manager,
                       json={"password": payload + "-again!"}).status_code == 200
    assert client.post("/api/customer/login", json={"id": new_id, "password": payload + "-again!"}).status_code == 200
    bad_email = client.post("/api/manager/customers", headers=manager,
                            json={"name": "X", "password": "long-enough", "email": payload})
    assert bad_email.status_code == 422 and bad_email.json["field"] == "email"
    # A payment's idempotency key and a reversal's reason.
    paid = client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": "1.00"},
                       headers={**customer, "Idempotency-Key": payload})
    assert paid.status_code == 200
    again = client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": "1.00"},
                        headers={**customer, "Idempotency-Key": payload})
    assert again.json["payment_id"] == paid.json["payment_id"]
    reversal = client.post(f"/api/manager/payments/{paid.json['payment_id']}/reversal", headers=manager,
                           json={"reason": payload})
    assert reversal.status_code == 201 and reversal.json["reason"] == payload.strip()
    # Amounts and filters refuse it cleanly.
    assert client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": payload},
                       headers=customer).status_code == 422
    assert client.get("/api/manager/decisions", query_string={"method": payload},
                      headers=manager).status_code == 422
    with ledger.sessions() as s:
        after = (s.scalar(select(func.count()).select_from(Customer)), s.scalar(select(func.count()).select_from(Due)))
    assert after == (before[0] + 1, before[1])


def test_login_throttling_shared_through_redis(db_url):
    """With REDIS_URL set, every worker counts the same failures (checked with two apps)."""
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Redis not reachable")
    config = {"SECRET_KEY": "x", "DATABASE_URL": db_url, "REDIS_URL": "redis://127.0.0.1:6379/0"}
    first, second = create_app(config), create_app(config)
    assert first.config["RATELIMIT_STORAGE_URI"].startswith("redis://")
    # Redis outlives the test: a fresh id per run keeps earlier runs' counts out of this one.
    user_id = 10**9 + uuid.uuid4().int % 10**9
    add_customer(first.extensions["ledger_db"], user_id, password="customer123")
    codes = [app.test_client().post("/api/customer/login", json={"id": user_id, "password": "nope"}).status_code
             for app in (first, second, first, second, first, second)]
    assert codes == [401] * 5 + [429]
