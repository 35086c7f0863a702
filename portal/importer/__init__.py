"""Load a bank's export (or the simulator's files) into the ledger, fast and all at once.

The input is a ledger export (``contracts.ledger_export``: customers, dues and
optional outcomes, as frames or read from its Parquet files).

Imported history is an **opening balance**: each month's ``paid_cents`` is
stored as both ``paid_cents`` and ``opening_paid_cents``, with no Payment or
Allocation rows (those record only payments made in this ledger). Each
customer's running totals are set from the same rows, and a customer's bank
credit is kept as their opening bank credit (refused while any due is owed:
bank credit is what is left after every due is cleared).

Everything is validated before anything is written (errors name the file, the
column and the first offending row, counted from 0), and written in one
transaction with the driver's bulk path (``executemany`` on SQLite, binary
``COPY`` on PostgreSQL): an error leaves the ledger as it was.
"""
from __future__ import annotations

import time

import pandas as pd
from tqdm import tqdm

from portal.auth.passwords import hash_password
from portal.db import Database
from portal.importer.validation import LedgerImportError, validate
from portal.importer.writers import write_postgres, write_sqlite

__all__ = ["LedgerImportError", "import_ledger", "ledger_is_empty", "validate"]


def import_ledger(db: Database, data: dict[str, pd.DataFrame], demo_password: str | None = None,
                  progress: bool = True) -> dict:
    """Validate and insert customers, dues and outcomes; return the counts and seconds.

    ``demo_password`` is for the demo only: it is hashed once and every imported
    customer gets that same hash. Without it ``password_hash`` stays NULL and a
    customer cannot log in until a manager sets a password.
    """
    started = time.perf_counter()
    prepared = validate(data)
    validated = time.perf_counter()
    password_hash = hash_password(demo_password) if demo_password is not None else None
    writer = write_sqlite if db.is_sqlite else write_postgres
    with tqdm(total=sum(prepared.counts.values()), unit="rows", desc="import", disable=not progress,
              unit_scale=True, leave=False) as bar:
        writer(db, prepared, password_hash, bar)
    done = time.perf_counter()
    return {**prepared.counts, "validate_seconds": round(validated - started, 3),
            "write_seconds": round(done - validated, 3), "seconds": round(done - started, 3)}


def ledger_is_empty(db: Database) -> bool:
    """Tell whether the ledger has no customers yet."""
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT 1 FROM customers LIMIT 1").first() is None
