"""Shared fixtures: a migrated ledger on SQLite and (when switched on) PostgreSQL, apps and clients.

PostgreSQL tests run when PostgreSQL answers on 127.0.0.1:5432; with
TEST_POSTGRES=1 (as CI sets) an unreachable server fails them instead of
skipping. Each test gets a throwaway database of its own: a copy of a template
migrated once per run.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest
from sqlalchemy import create_engine, text

from portal.cli import migrate
from portal.db import Database


def pytest_configure(config):
    """Keep every test away from the developer's var/ (ledger, MLflow store, secret key)."""
    scratch = tempfile.mkdtemp(prefix="credit-tests-")
    os.environ["VAR_DIR"] = scratch
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"


PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_REQUIRED = os.environ.get("TEST_POSTGRES") == "1"



def _pg_admin():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_available():
    """Tell whether PostgreSQL answers; fail instead of skipping when it is required."""
    try:
        engine = _pg_admin()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
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
    """Create a PostgreSQL template database migrated to head; drop it at the end."""
    if not pg_available:
        pytest.skip("PostgreSQL not reachable (set TEST_POSTGRES=1 to make this a failure)")
    name = f"credit_tmpl_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    migrate(_pg_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def new_database_url(kind: str, request, tmp_path) -> str:
    """Create a fresh migrated ledger of `kind` for one test; dropped afterwards."""
    if kind == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    template = request.getfixturevalue("pg_template")
    name = f"credit_test_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    return _pg_url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, migrated, empty ledger: once on SQLite, once on PostgreSQL."""
    return new_database_url(request.param, request, tmp_path)


@pytest.fixture
def db(db_url):
    """A Database on the fresh ledger."""
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def app(db_url):
    """A portal app on the fresh ledger."""
    from portal import create_app

    # SERVING_URL: a port nobody listens on, so no test reaches a decision service by accident.
    app = create_app({"SECRET_KEY": "test-secret", "DATABASE_URL": db_url, "TESTING": True,
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
