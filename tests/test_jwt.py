"""Bearer tokens are RFC 7519 JWTs (PyJWT, HS256 with the app's key) whose jti is the server-side login record.

Every way a token can be wrong answers 401: no algorithm, another algorithm, another key,
expired, a revoked or unknown login record, claims that disagree with the record, a
missing claim, a user deactivated or whose password was reset since. The payment endpoint,
which reads the login record in its batch's transaction rather than before the request, too.
"""
from __future__ import annotations

import base64
import json
import sys
import threading
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from freezegun import freeze_time
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy import func, select

from portal.auth import accounts, sessions
from portal.models import Payment
from tests.factories import tampered

SUMMARY = "/api/customer/summary/101"
PAYMENT = "/api/customer/payment"


def token_of(headers: dict) -> str:
    return headers["Authorization"][7:]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def claims_of(app, token: str) -> dict:
    return jwt.decode(token, app.config["SECRET_KEY"], algorithms=["HS256"])


def sign(app, claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # A forger signing HS384/HS512 with the app's 32-byte-plus key: PyJWT warns that the key is
        # short for those algorithms, which is the forger's problem, not the app's.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key or app.config["SECRET_KEY"], algorithm=algorithm)


def unsigned(claims: dict) -> str:
    """A token with alg none: header and claims, no signature."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_the_login_token_is_a_jwt_the_apps_key_verifies(app, client, ledger, customer):
    token = token_of(customer)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = claims_of(app, token)
    assert set(claims) == {"sub", "role", "jti", "iat", "exp"}
    assert claims["sub"] == "101" and claims["role"] == "customer"
    assert claims["exp"] - claims["iat"] == app.config["TOKEN_MAX_AGE"] == 900
    assert app.test_client().get(SUMMARY, headers=customer).status_code == 200


def test_the_openapi_document_declares_a_jwt_bearer_scheme(client):
    schemes = client.get("/api/openapi.json").json["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def forged(app, claims: dict) -> list[tuple[str, str]]:
    """Tokens carrying a live login's jti that must all be refused."""
    now = datetime.now(UTC)
    other_key = "another-key-that-is-also-32-bytes-long"
    return [
        ("alg none", unsigned(claims)),
        ("HS512 with the app's key", sign(app, claims, algorithm="HS512")),
        ("HS384 with the app's key", sign(app, claims, algorithm="HS384")),
        ("another key", sign(app, claims, key=other_key)),
        ("expired", sign(app, {**claims, "iat": now - timedelta(hours=1), "exp": now - timedelta(seconds=1)})),
        ("issued in the future", sign(app, {**claims, "iat": now + timedelta(hours=1)})),
        ("unknown jti", sign(app, {**claims, "jti": "no-such-login"})),
        ("role claim changed", sign(app, {**claims, "role": "manager"})),
        ("another user's id", sign(app, {**claims, "sub": "102"})),
        ("no jti", sign(app, {k: v for k, v in claims.items() if k != "jti"})),
        ("no role", sign(app, {k: v for k, v in claims.items() if k != "role"})),
        ("no exp", sign(app, {k: v for k, v in claims.items() if k != "exp"})),
        ("jti not a string", sign(app, {**claims, "jti": 12345})),
        ("not a JWT", "abc.def.ghi"),
        ("the token with a byte changed", tampered(sign(app, claims))),
    ]


def test_forged_and_tampered_tokens_get_401(app, client, ledger, customer):
    claims = claims_of(app, token_of(customer))
    fresh = app.test_client()
    for name, token in forged(app, claims):
        r = fresh.get(SUMMARY, headers=bearer(token))
        assert r.status_code == 401, name
    # A manager's endpoint with a customer's login record and a manager role claim.
    manager_claims = {**claims, "role": "manager", "sub": "1"}
    assert fresh.get("/api/manager/me", headers=bearer(sign(app, manager_claims))).status_code == 401
    assert fresh.get(SUMMARY, headers=customer).status_code == 200  # the real one still works


def test_a_token_expires_after_token_max_age(app, ledger):
    client = app.test_client()
    with freeze_time(datetime.now(UTC)) as clock:
        r = client.post("/api/customer/login", json={"id": 101, "password": "customer123"})
        headers = bearer(r.json["token"])
        api = app.test_client()
        clock.tick(899)
        assert api.get(SUMMARY, headers=headers).status_code == 200
        clock.tick(2)
        assert api.get(SUMMARY, headers=headers).status_code == 401


def test_a_verified_token_is_not_decoded_again_and_only_under_its_own_key(app, client, ledger, customer,
                                                                          monkeypatch):
    decoded = []
    real = jwt.decode
    monkeypatch.setattr(sessions.jwt, "decode", lambda *a, **k: decoded.append(1) or real(*a, **k))
    monkeypatch.setattr(sessions, "_verified", {})
    for _ in range(3):
        assert client.get(SUMMARY, headers=customer).status_code == 200
    assert len(decoded) == 1  # verified once; the next requests find it verified (the login record is still read)
    key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another-key-that-is-also-32-bytes-long"
    try:
        with app.app_context():
            assert sessions.token_claim(token_of(customer)) is None  # kept for its key only
    finally:
        app.config["SECRET_KEY"] = key


def test_a_refused_token_is_not_remembered(app, client, ledger, customer):
    claims = claims_of(app, token_of(customer))
    with freeze_time(datetime.now(UTC)) as clock:
        early = sign(app, {**claims, "iat": datetime.now(UTC) + timedelta(seconds=30)})
        assert client.get(SUMMARY, headers=bearer(early)).status_code == 401  # not yet valid (a clock skew)
        clock.tick(31)
        assert client.get(SUMMARY, headers=bearer(early)).status_code == 200


def test_the_verified_tokens_are_bounded(app, ledger, monkeypatch):
    monkeypatch.setattr(sessions, "VERIFIED_TOKENS_MAX", 3)
    monkeypatch.setattr(sessions, "_verified", {})
    api = app.test_client()
    tokens = [api.post("/api/customer/login", json={"id": 101, "password": "customer123"}).json["token"]
              for _ in range(5)]
    with app.app_context():
        assert all(sessions.token_claim(t) is not None for t in tokens)
        assert [token for _, token in sessions._verified] == tokens[2:]  # the oldest went first
        assert sessions.token_claim(tokens[0]) is not None  # and verifies again when it comes back


def test_the_verified_tokens_hold_under_threads_that_fill_and_evict_at_once(app, monkeypatch):
    monkeypatch.setattr(sessions, "VERIFIED_TOKENS_MAX", 4)
    monkeypatch.setattr(sessions, "_verified", {})
    with app.app_context():
        tokens = [sessions.issue_token(sessions.Principal("customer", 101, "n", f"jti-{i}"))[0] for i in range(40)]
    failures = []

    def verify(first: int) -> None:
        with app.app_context():
            try:
                for i in range(3000):
                    assert sessions.token_claim(tokens[(first + i) % len(tokens)]) is not None
            except Exception as failed:  # noqa: BLE001 - any failure in a thread is the test's failure
                failures.append(failed)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows within the run
    try:
        threads = [threading.Thread(target=verify, args=(5 * k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures[:3]
    assert len(sessions._verified) <= 4


def test_refresh_gives_a_live_login_a_new_token_until_logout(app, ledger):
    api = app.test_client()
    with freeze_time(datetime.now(UTC)) as clock:
        login = api.post("/api/customer/login", json={"id": 101, "password": "customer123"}).json
        clock.tick(600)
        fresh = api.post("/api/token", headers=bearer(login["token"]))
        assert fresh.status_code == 200
        new = fresh.json["token"]
        assert claims_of(app, new)["jti"] == claims_of(app, login["token"])["jti"]
        clock.tick(600)  # the first token has expired, the refreshed one has not
        assert api.get(SUMMARY, headers=bearer(login["token"])).status_code == 401
        assert api.get(SUMMARY, headers=bearer(new)).status_code == 200
        assert api.post("/api/token", headers=bearer(login["token"])).status_code == 401  # expired: log in again
        assert api.post("/api/logout", headers=bearer(new)).status_code == 200
        assert api.post("/api/token", headers=bearer(new)).status_code == 401


def test_logout_revokes_the_jti_at_once(app, client, ledger, customer):
    api = app.test_client()
    assert api.post("/api/logout", headers=customer).status_code == 200
    assert api.get(SUMMARY, headers=customer).status_code == 401


def test_a_password_reset_revokes_every_token_of_the_customer(app, client, ledger, customer):
    api = app.test_client()
    manager = api.post("/api/manager/login", json={"id": 1, "password": "manager123"}).json["token"]
    assert api.post("/api/manager/customers/101/password", headers=bearer(manager),
                    json={"password": "a-brand-new-one"}).status_code == 200
    assert app.test_client().get(SUMMARY, headers=customer).status_code == 401


@pytest.mark.parametrize("role,user_id,password,path", [
    ("customer", 101, "customer123", SUMMARY), ("manager", 2, "manager-two", "/api/manager/me")])
def test_deactivation_revokes_tokens_and_login_answers_like_a_wrong_password(app, ledger, role, user_id, password,
                                                                             path):
    from testing.people import add_manager

    add_manager(ledger, 2, password="manager-two")
    api = app.test_client()
    token = api.post(f"/api/{role}/login", json={"id": user_id, "password": password}).json["token"]
    with ledger.sessions() as s:
        accounts.set_active(s, role, user_id, False, by=1)
    assert api.get(path, headers=bearer(token)).status_code == 401
    refused = api.post(f"/api/{role}/login", json={"id": user_id, "password": password})
    wrong = api.post(f"/api/{role}/login", json={"id": user_id, "password": "not-the-password"})
    assert refused.status_code == wrong.status_code == 401 and refused.json == wrong.json
    with ledger.sessions() as s:
        accounts.set_active(s, role, user_id, True, by=1)
    assert api.post(f"/api/{role}/login", json={"id": user_id, "password": password}).status_code == 200
    assert api.get(path, headers=bearer(token)).status_code == 401  # the old login stays ended


def test_a_payment_with_any_wrong_token_gets_401_and_pays_nothing(app, client, ledger, customer):
    # The payment endpoint checks a token's login record in its batch (portal.api.customer.write_payments),
    # not before the request as the other endpoints do: every way a token can be wrong must still be a 401.
    def pay(token: str):
        return app.test_client().post(PAYMENT, json={"year": 2024, "month": 1, "amount": "10.00"},
                                      headers=bearer(token))

    token = token_of(customer)
    for name, forgery in forged(app, claims_of(app, token)):
        r = pay(forgery)
        assert (r.status_code, r.json["error"]) == (401, "login required"), name
    other = app.test_client().post("/api/customer/login", json={"id": 102, "password": "other-pw"}).json["token"]
    with ledger.sessions() as s:
        accounts.set_active(s, "customer", 102, False, by=1)
    assert pay(other).status_code == 401  # deactivated
    manager = app.test_client().post("/api/manager/login", json={"id": 1, "password": "manager123"}).json["token"]
    assert pay(manager).status_code == 403  # a live manager login: customers only
    assert app.test_client().post("/api/logout", headers=bearer(token)).status_code == 200
    assert pay(token).status_code == 401  # revoked
    # The schema's refusals come before the batch's login check, the ledger's after it (README).
    late = app.test_client().post(PAYMENT, json={"year": 2024, "month": 1, "amount": "abc"}, headers=bearer(token))
    assert (late.status_code, late.json["field"]) == (422, "amount")
    zero = app.test_client().post(PAYMENT, json={"year": 2024, "month": 1, "amount": "0"}, headers=bearer(token))
    assert zero.status_code == 401
    with ledger.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0
