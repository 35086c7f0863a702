"""Shared fixtures: a fresh migrated ledger per test, the app and its clients, a small ledger with people to log in.

PostgreSQL tests run when PostgreSQL answers on 127.0.0.1:5432; with
TEST_POSTGRES=1 (as CI sets) an unreachable server fails them instead of
skipping. Each test gets a throwaway database of its own: a copy of a template
migrated once per run. The MLflow fixtures (the demo ledger, stores, a trained
model) come from the plugin ``tests/plugins/mlflow_stores.py``.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from portal import create_app
from portal.cli import migrate
from portal.db import Database
from testing.databases import ping_postgres, throwaway_database
from testing.people import add_customer, add_manager
from tests.factories import login, web_login

pytest_plugins = ["tests.plugins.mlflow_stores"]

PG_REQUIRED = os.environ.get("TEST_POSTGRES") == "1"


def pytest_configure(config):
    """Keep every test away from the developer's var/ (ledger, MLflow store, secret key)."""
    scratch = tempfile.mkdtemp(prefix="credit-tests-")
    os.environ["VAR_DIR"] = scratch
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"


# --------------------------------------------------------------------------- fresh ledgers

@pytest.fixture(scope="session")
def pg_available():
    """Tell whether PostgreSQL answers; fail instead of skipping when it is required."""
    try:
        ping_postgres()
        return True
    except Exception as exc:  # noqa: BLE001 - any connection failure means unavailable
        if PG_REQUIRED:
            pytest.fail(f"TEST_POSTGRES=1 but PostgreSQL is unreachable: {exc}")
        return False


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """Return the path of a SQLite ledger migrated to head, to copy per test."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_available):
    """Return the URL of a PostgreSQL database migrated to head, to copy per test; dropped at the end."""
    if not pg_available:
        pytest.skip("PostgreSQL not reachable (set TEST_POSTGRES=1 to make this a failure)")
    with throwaway_database("postgres", "credit_tmpl", migrated=True) as url:
        yield url


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    """A fresh, migrated, empty SQLite ledger for one test (a copy of the template)."""
    path = tmp_path / "ledger.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url(pg_template):
    """A fresh, migrated, empty PostgreSQL ledger for one test (a copy of the template), dropped afterwards."""
    with throwaway_database("postgres", "credit_test", template=pg_template) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request):
    """A fresh, migrated, empty ledger: once on SQLite, once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def db(db_url):
    """A Database on the fresh ledger."""
    database = Database(db_url)
    yield database
    database.dispose()


# --------------------------------------------------------------------------- the app

@pytest.fixture
def app(db_url):
    """A portal app on the fresh ledger."""
    # SERVING_URL: a port nobody listens on, so no test reaches a decision service by accident.
    app = create_app({"SECRET_KEY": "test-secret-at-least-32-bytes-long!", "DATABASE_URL": db_url, "TESTING": True,
                      "RATELIMIT_STORAGE_URI": "memory://", "SERVING_URL": "http://127.0.0.1:9"})
    yield app
    app.extensions["ledger_db"].dispose()


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner of the app."""
    return app.test_cli_runner()


class AuthActions:
    """Log people in on the `client` fixture: through the JSON API or through a login page."""

    def __init__(self, client):
        self._client = client

    def login(self, role: str, user_id: int, password: str) -> dict:
        """Log in through the API; return the bearer header (the client also keeps the session cookie)."""
        return login(self._client, role, user_id, password)

    def web_login(self, role: str, user_id: int, password: str, next_path: str | None = None):
        """Submit the login page's form; return the response."""
        return web_login(self._client, role, user_id, password, next_path)


@pytest.fixture
def auth(client):
    """Log people in on `client`."""
    return AuthActions(client)


# --------------------------------------------------------------------------- people

@pytest.fixture
def ledger(app):
    """Customer 101 owes all of 2024 and January 2025, 102 paid January 2024 of a dearer 2024; manager 1."""
    db = app.extensions["ledger_db"]
    add_customer(db, 101, {(2024, m): 10_000 for m in range(1, 13)} | {(2025, 1): 10_000}, password="customer123")
    add_customer(db, 102, {(2024, m): 20_000 for m in range(1, 13)}, paid={(2024, 1): 20_000}, password="other-pw")
    add_manager(db, 1, password="manager123")
    return db


@pytest.fixture
def customer(auth, ledger) -> dict:
    """Log customer 101 in on `client`; return the bearer header for API calls."""
    return auth.login("customer", 101, "customer123")


@pytest.fixture
def manager(auth, ledger) -> dict:
    """Log manager 1 in on `client`; return the bearer header for API calls."""
    return auth.login("manager", 1, "manager123")
