"""Write a validated export in one transaction with the driver's bulk path: executemany (SQLite), COPY (PostgreSQL)."""
from __future__ import annotations

import numpy as np
from sqlalchemy import DateTime
from tqdm import tqdm

from portal.db import Database
from portal.importer.validation import LedgerImportError, Prepared
from portal.models import utcnow

CHUNK_ROWS = 200_000
CUSTOMER_COLUMNS = ("id", "name", "email", "age", "phone", "password_hash", "created_at",
                    "total_due_cents", "total_paid_cents", "bank_credit_cents", "opening_bank_credit_cents")
DUE_COLUMNS = ("customer_id", "year", "month", "due_cents", "paid_cents", "opening_paid_cents")
OUTCOME_COLUMNS = ("customer_id", "result", "true_probability")


def _customer_rows(p: Prepared, password_hash: str | None, created_at) -> list[tuple]:
    """Return the customers' rows in CUSTOMER_COLUMNS order."""
    ids, name, email, age, phone, total_due, total_paid, bank_credit = p.customers
    n = len(ids)
    return list(zip(ids.tolist(), name, email, age, phone, [password_hash] * n, [created_at] * n,
                    total_due.tolist(), total_paid.tolist(), bank_credit.tolist(), bank_credit.tolist()))


def _existing_customers(cursor, ids: np.ndarray, placeholder: str) -> np.ndarray:
    """Return the ids among ``ids`` that the ledger already has."""
    if not len(ids):
        return ids
    cursor.execute(f"SELECT id FROM customers WHERE id BETWEEN {placeholder} AND {placeholder}",
                   (int(ids.min()), int(ids.max())))
    found = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    return ids[np.isin(ids, found)]


def refuse_existing(existing: np.ndarray) -> None:
    if len(existing):
        shown = ", ".join(str(i) for i in existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise LedgerImportError(f"{len(existing)} customer id(s) already in the ledger ({shown}); "
                                "import into an empty ledger or use other ids", "customers", "customer_id")


def write_sqlite(db: Database, p: Prepared, password_hash: str | None, bar: tqdm) -> None:
    """Insert with executemany in one IMMEDIATE transaction, without fsync during the load."""
    dialect = db.engine.dialect
    to_db = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    created_at = to_db(utcnow()) if to_db else utcnow()
    raw = db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        cur = conn.cursor()
        synchronous = cur.execute("PRAGMA synchronous").fetchone()[0]
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("BEGIN IMMEDIATE")
        try:
            refuse_existing(_existing_customers(cur, p.customers[0], "?"))
            _sqlite_insert(cur, "customers", CUSTOMER_COLUMNS, _customer_rows(p, password_hash, created_at), bar)
            dues = p.dues
            for start in range(0, len(dues[0]), CHUNK_ROWS):
                chunk = [a[start:start + CHUNK_ROWS].tolist() for a in dues]
                _sqlite_insert(cur, "dues", DUE_COLUMNS, zip(*chunk), bar, len(chunk[0]))
            ids, result, probability = p.outcomes
            _sqlite_insert(cur, "outcomes", OUTCOME_COLUMNS, list(zip(ids.tolist(), result.tolist(), probability)), bar)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.execute(f"PRAGMA synchronous={int(synchronous)}")
            cur.close()
    finally:
        raw.close()


def _sqlite_insert(cur, table: str, columns: tuple, rows, bar: tqdm, count: int | None = None) -> None:
    marks = ", ".join("?" * len(columns))
    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    bar.update(count if count is not None else len(rows))


# Binary COPY field types for the dues table, in DUE_COLUMNS order.
_DUE_BINARY = (">i8", ">i2", ">i2", ">i8", ">i8", ">i8")
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8


def write_postgres(db: Database, p: Prepared, password_hash: str | None, bar: tqdm) -> None:
    """Insert with COPY FROM STDIN (binary for the dues) in one transaction.

    The dues table is locked for the load (its foreign keys are re-added at the end).
    """
    raw = db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        try:
            with conn.cursor() as cur:
                refuse_existing(_existing_customers(cur, p.customers[0], "%s"))
                with cur.copy(f"COPY customers ({', '.join(CUSTOMER_COLUMNS)}) FROM STDIN") as copy:
                    for row in _customer_rows(p, password_hash, utcnow()):
                        copy.write_row(row)
                bar.update(len(p.customers[0]))
                # PostgreSQL checks a foreign key with a trigger per row (most of the load's
                # time); drop the dues' foreign keys for the load and add them back, which
                # checks every row in one join, in the same transaction.
                cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                            " WHERE conrelid = 'dues'::regclass AND contype = 'f'")
                foreign_keys = cur.fetchall()
                for name, _definition in foreign_keys:
                    cur.execute(f'ALTER TABLE dues DROP CONSTRAINT "{name}"')
                with cur.copy(f"COPY dues ({', '.join(DUE_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(_COPY_SIGNATURE)
                    for start in range(0, len(p.dues[0]), CHUNK_ROWS):
                        chunk = [a[start:start + CHUNK_ROWS] for a in p.dues]
                        copy.write(_binary_rows(chunk, _DUE_BINARY))
                        bar.update(len(chunk[0]))
                    copy.write(b"\xff\xff")
                for name, definition in foreign_keys:
                    cur.execute(f'ALTER TABLE dues ADD CONSTRAINT "{name}" {definition}')
                with cur.copy(f"COPY outcomes ({', '.join(OUTCOME_COLUMNS)}) FROM STDIN") as copy:
                    ids, result, probability = p.outcomes
                    for row in zip(ids.tolist(), result.tolist(), probability):
                        copy.write_row(row)
                bar.update(len(ids))
                cur.execute("ANALYZE customers, dues, outcomes")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    finally:
        raw.close()


def _binary_rows(columns: list[np.ndarray], types: tuple[str, ...]) -> bytes:
    """Encode non-null columns as PostgreSQL binary COPY rows (no header or trailer)."""
    fields = [("count", ">i2")]
    for i, t in enumerate(types):
        fields += [(f"len{i}", ">i4"), (f"v{i}", t)]
    rows = np.empty(len(columns[0]), dtype=np.dtype(fields))
    rows["count"] = len(types)
    for i, (values, t) in enumerate(zip(columns, types)):
        rows[f"len{i}"] = np.dtype(t).itemsize
        rows[f"v{i}"] = values
    return rows.tobytes()
