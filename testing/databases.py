"""Throwaway databases for tests and benchmarks: a uniquely named PostgreSQL database or a SQLite file."""
from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from portal.cli import migrate

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _admin_execute(statement: str, admin_url: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server of `admin_url`."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def ping_postgres(admin_url: str = PG_ADMIN_URL) -> None:
    """Raise if the PostgreSQL server of `admin_url` does not answer."""
    _admin_execute("SELECT 1", admin_url)


def create_postgres(prefix: str = "credit", *, template: str | None = None, admin_url: str = PG_ADMIN_URL) -> str:
    """Create a uniquely named, empty database (a copy of the database at URL `template` if given); return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy_of = f' TEMPLATE "{make_url(template).database}"' if template else ""
    _admin_execute(f'CREATE DATABASE "{name}"{copy_of}', admin_url)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Drop the database at `url`, ending any connection still open to it."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)', admin_url)


@contextmanager
def throwaway_database(kind: str, prefix: str = "credit", *, migrated: bool = False, template: str | None = None,
                       admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """Yield the URL of a new database of `kind` ("sqlite" or "postgres"), migrated to head if asked; drop it after.

    SQLite: a file in a temporary folder. PostgreSQL: a uniquely named database
    on the server of `admin_url`, a copy of `template` (a database URL) if given.
    """
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-sqlite-") as folder:
            url = f"sqlite:///{folder}/ledger.db"
            if migrated:
                migrate(url)
            yield url
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    url = create_postgres(prefix, template=template, admin_url=admin_url)
    try:
        if migrated:
            migrate(url)
        yield url
    finally:
        drop_postgres(url, admin_url)
