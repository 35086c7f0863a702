"""Schemathesis against /api/openapi.json with every check (`--checks all`), as a customer, a manager
and anonymously: no 5xx, answers and refusals match the document, and nobody but a manager sees
another customer's data. The few state-dependent ledger rules are declared in tests/schemathesis.toml.

Each operation of the document is fuzzed with valid (positive) and invalid (negative) data, and
sent schemathesis' coverage phase (every boundary and every violation of the document; both in
tests/fuzzing.py).
"""
import pytest
import schemathesis
from schemathesis import GenerationMode

from portal import create_app
from testing.people import add_customer, add_manager
from tests.fuzzing import Caller, config, cover, fuzz

OTHER_CUSTOMER_MARKERS = ("c102@example.com", "Customer 102")
LOGINS = {"customer": ("customer", 101, "customer123"), "manager": ("manager", 1, "manager123")}
CONFIG = config("schemathesis.toml")


def _operations():
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    return sorted(op.ok().label for op in schema.get_all_operations())


@pytest.fixture
def fuzz_app(app):
    db = app.extensions["ledger_db"]
    add_customer(db, 101, {(2024, m): 10_000 for m in range(1, 13)}, password="customer123")
    add_customer(db, 102, {(2024, m): 10_000 for m in range(1, 13)}, password="other-pw")
    add_manager(db, 1, password="manager123")
    return app


def _token(app, role: str, user_id: int, password: str) -> str:
    response = app.test_client().post(f"/api/{role}/login", json={"id": user_id, "password": password})
    assert response.status_code == 200, response.json
    return response.json["token"]


def _caller(app, label: str) -> Caller:
    """Send as a customer, a manager or anonymously; log in again after a logout; no other customer's data."""
    tokens = {role: _token(app, *login) for role, login in LOGINS.items()}

    def headers(role):
        return {} if role == "anonymous" else {"Authorization": f"Bearer {tokens[role]}"}

    def answered(role, response):
        if response.status_code == 401 and label == "POST /api/logout" and role != "anonymous":
            tokens[role] = _token(app, *LOGINS[role])
        if role != "manager":
            assert not any(m in response.text for m in OTHER_CUSTOMER_MARKERS), response.text[:500]

    return Caller(["customer", "manager", "anonymous"], headers, answered=answered)


def _schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("label", _operations())
def test_operation(fuzz_app, label, mode):
    fuzz(_schema(fuzz_app).find_operation_by_label(label), mode, _caller(fuzz_app, label))


@pytest.mark.slow
@pytest.mark.parametrize("label", _operations())
def test_operation_coverage(fuzz_app, label):
    """Schemathesis' coverage phase: every boundary of the document and every violation of it."""
    schema = _schema(fuzz_app)
    assert cover(schema, schema.find_operation_by_label(label), _caller(fuzz_app, label)) > 0
