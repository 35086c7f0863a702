"""Login throttling, sessions, token revocation, CSRF, security headers, password hashing."""
import re

import pytest
from argon2 import PasswordHasher

from portal.auth.passwords import HASHER
from tests.factories import add_customer, add_manager, login


@pytest.fixture
def ledger(app):
    db = app.extensions["ledger_db"]
    add_customer(db, 101, password="customer123")
    add_customer(db, 102, password="other-pw")
    add_manager(db, 1, password="manager123")
    return db


def test_repeated_failures_for_an_id_get_429(client, ledger):
    codes = [client.post("/api/customer/login", json={"id": 101, "password": "nope"}).status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    r = client.post("/api/customer/login", json={"id": 101, "password": "customer123"})
    assert r.status_code == 429 and "too many failed logins" in r.json["error"] and r.headers.get("Retry-After")
    # Another id is not locked out by 101's failures.
    assert client.post("/api/customer/login", json={"id": 102, "password": "other-pw"}).status_code == 200


def test_successful_logins_are_not_counted(client, ledger):
    for _ in range(8):
        assert client.post("/api/customer/login", json={"id": 101, "password": "customer123"}).status_code == 200


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
    from sqlalchemy import select

    from portal.models import Customer

    with ledger.sessions() as s:
        stored = s.scalar(select(Customer.password_hash).where(Customer.id == 101))
    assert stored.startswith("$argon2id$")
    m, t, p = map(int, re.search(r"m=(\d+),t=(\d+),p=(\d+)", stored).groups())
    # OWASP: argon2id with at least 19 MiB, 2 iterations, 1 lane.
    assert m >= 19 * 1024 and t >= 2 and p >= 1
    assert isinstance(HASHER, PasswordHasher)


def test_production_needs_a_secret_key(monkeypatch, tmp_path):
    from portal.config import load_config

    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        load_config()
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    config = load_config()
    assert config["SESSION_COOKIE_SECURE"] is True and config["DEBUG"] is False


def test_local_secret_key_is_generated_and_kept(monkeypatch, tmp_path):
    from portal.config import load_config

    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.delenv("FLASK_ENV", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    first = load_config()["SECRET_KEY"]
    assert len(first) >= 64 and load_config()["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_database_down_is_a_503_with_retry_after(app, client, ledger, monkeypatch):
    from sqlalchemy.exc import OperationalError

    headers = login(client, "customer", 101, "customer123")

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr("portal.ledger.payments.lock_customer", down)
    r = client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": "1.00"}, headers=headers)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and "retry" in r.json["error"]
