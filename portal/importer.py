"""Load a bank's export (or the simulator's files) into the ledger, fast and all at once.

The input is three frames, the shape ``pipeline.simulate`` writes:

* ``customers``: customer_id, name [, email, age, phone, bank_credit_cents]
* ``dues``: customer_id, year, month, due_cents, paid_cents
* ``outcomes`` (optional): customer_id, result [, true_probability]

Imported history is an **opening balance**: each month's ``paid_cents`` is
stored as both ``paid_cents`` and ``opening_paid_cents``, with no Payment or
Allocation rows (those record only payments made in this ledger). Each
customer's running totals are set from the same rows.

Everything is validated before anything is written (errors name the file, the
column and the first offending row, counted from 0), and written in one
transaction with the driver's bulk path (``executemany`` on SQLite, binary
``COPY`` on PostgreSQL): an error leaves the ledger as it was.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import DateTime
from tqdm import tqdm

from portal.auth.passwords import hash_password
from portal.db import Database, write_transaction
from portal.models import Customer, Manager, utcnow

DEMO_MANAGER_ID, DEMO_MANAGER_PASSWORD = 1, "manager123"
DEMO_CUSTOMER_ID, DEMO_CUSTOMER_PASSWORD = 101, "customer123"

REQUIRED = {
    "customers": ["customer_id", "name"],
    "dues": ["customer_id", "year", "month", "due_cents", "paid_cents"],
    "outcomes": ["customer_id", "result"],
}
TEXT_LIMITS = {"name": 120, "email": 254, "phone": 32}
MONEY = {"due_cents", "paid_cents", "bank_credit_cents"}
CHUNK_ROWS = 200_000

CUSTOMER_COLUMNS = ("id", "name", "email", "age", "phone", "password_hash", "created_at",
                    "total_due_cents", "total_paid_cents", "bank_credit_cents")
DUE_COLUMNS = ("customer_id", "year", "month", "due_cents", "paid_cents", "opening_paid_cents")
OUTCOME_COLUMNS = ("customer_id", "result", "true_probability")


class LedgerImportError(ValueError):
    """The input cannot be imported; the message names the file, the column and the problem."""

    def __init__(self, message: str, file: str | None = None, column: str | None = None):
        where = ".".join(part for part in (file, column) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.column = file, column


@dataclass
class _Prepared:
    """Validated input as plain arrays and lists, ready for the bulk writers."""

    customers: list[np.ndarray | list]   # CUSTOMER_COLUMNS without password_hash and created_at
    dues: list[np.ndarray]               # in DUE_COLUMNS order
    outcomes: list[np.ndarray | list]    # in OUTCOME_COLUMNS order

    @property
    def counts(self) -> dict[str, int]:
        return {"customers": len(self.customers[0]), "dues": len(self.dues[0]),
                "outcomes": len(self.outcomes[0])}


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
    writer = _write_sqlite if db.is_sqlite else _write_postgres
    with tqdm(total=sum(prepared.counts.values()), unit="rows", desc="import", disable=not progress,
              unit_scale=True, leave=False) as bar:
        writer(db, prepared, password_hash, bar)
    done = time.perf_counter()
    return {**prepared.counts, "validate_seconds": round(validated - started, 3),
            "write_seconds": round(done - validated, 3), "seconds": round(done - started, 3)}


def validate(data: dict[str, pd.DataFrame]) -> _Prepared:
    """Check every rule the ledger enforces, naming the first offending row; return arrays."""
    for name in ("customers", "dues"):
        if data.get(name) is None:
            raise LedgerImportError("missing (no such file or frame)", name)
    outcomes = data.get("outcomes")
    if outcomes is None:
        outcomes = pd.DataFrame({"customer_id": np.array([], np.int64), "result": np.array([], np.int64)})
    frames = {"customers": data["customers"], "dues": data["dues"], "outcomes": outcomes}
    for name, frame in frames.items():
        missing = [c for c in REQUIRED[name] if c not in frame.columns]
        if missing:
            raise LedgerImportError(f"missing column(s) {', '.join(missing)}", name)
    customers = _customers(frames["customers"])
    ids = customers[0]
    order = np.argsort(ids, kind="stable")
    dues, total_due, total_paid = _dues(frames["dues"], ids, order)
    return _Prepared(customers=customers[:5] + [total_due, total_paid] + customers[5:], dues=dues,
                     outcomes=_outcomes(frames["outcomes"], ids, order))


def _customers(c: pd.DataFrame) -> list:
    """Return id, name, email, age, phone and bank credit, checked."""
    ids = _ints(c, "customers", "customer_id", low=1)
    _unique(ids, "customers")
    texts = {col: _texts(c, "customers", col, required=col == "name") for col in TEXT_LIMITS}
    age = _ints(c, "customers", "age", low=18, high=120, nullable=True) if "age" in c else [None] * len(c)
    bank_credit = (_ints(c, "customers", "bank_credit_cents", low=0) if "bank_credit_cents" in c
                   else np.zeros(len(c), np.int64))
    return [ids, texts["name"], texts["email"], age, texts["phone"], bank_credit]


def _dues(d: pd.DataFrame, ids: np.ndarray, order: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """Return the dues' columns (paid twice: paid and opening paid) and each customer's totals."""
    customer_id = _ints(d, "dues", "customer_id")
    year = _ints(d, "dues", "year", low=1000, high=9999)
    month = _ints(d, "dues", "month", low=1, high=12)
    due = _ints(d, "dues", "due_cents", low=0)
    paid = _ints(d, "dues", "paid_cents", low=0)
    over = np.flatnonzero(paid > due)
    if len(over):
        i = over[0]
        raise LedgerImportError(f"paid_cents {paid[i]} exceeds due_cents {due[i]} at row {i} "
                                f"(customer {customer_id[i]}, {year[i]}-{month[i]:02d})", "dues", "paid_cents")
    owner = _owners(ids, order, customer_id, "dues")
    _unique_months(customer_id, year, month)
    sums = pd.DataFrame({"owner": owner, "due": due, "paid": paid}).groupby("owner").sum()
    total_due = np.zeros(len(ids), np.int64)
    total_paid = np.zeros(len(ids), np.int64)
    total_due[sums.index.to_numpy()] = sums["due"].to_numpy()
    total_paid[sums.index.to_numpy()] = sums["paid"].to_numpy()
    return [customer_id, year, month, due, paid, paid], total_due, total_paid


def _outcomes(o: pd.DataFrame, ids: np.ndarray, order: np.ndarray) -> list:
    """Return the outcomes' customer ids, results and true probabilities (None if unknown)."""
    outcome_ids = _ints(o, "outcomes", "customer_id")
    _unique(outcome_ids, "outcomes")
    _owners(ids, order, outcome_ids, "outcomes")
    result = _ints(o, "outcomes", "result", low=0, high=1)
    probability = [None] * len(o)
    if "true_probability" in o:
        given = o["true_probability"]
        p = pd.to_numeric(given, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        bad = np.flatnonzero(given.notna().to_numpy() & ~((p >= 0) & (p <= 1)))
        if len(bad):
            raise LedgerImportError(f"must be a number in 0..1 (row {bad[0]}: {given.iloc[bad[0]]!r})",
                                    "outcomes", "true_probability")
        probability = [None if np.isnan(x) else x for x in p.tolist()]
    return [outcome_ids, result, probability]


def _ints(frame: pd.DataFrame, file: str, column: str, low: int | None = None, high: int | None = None,
          nullable: bool = False):
    """Return a column as int64 (a list with None where nullable); reject floats for money."""
    series = frame[column]
    present = series.notna().to_numpy()
    if not nullable and not present.all():
        raise LedgerImportError(f"missing value at row {np.flatnonzero(~present)[0]}", file, column)
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise LedgerImportError(f"must be integers, got {dtype}", file, column)
    if pd.api.types.is_float_dtype(dtype):
        if column in MONEY:
            raise LedgerImportError(f"must be integer minor units (cents), got {dtype}", file, column)
        values = series.to_numpy(np.float64, na_value=0.0)
        bad = np.flatnonzero((values != np.round(values)) | (np.abs(values) >= 2.0**62))
        if len(bad):
            raise LedgerImportError(f"must be integers (row {bad[0]}: {values[bad[0]]})", file, column)
    elif dtype.kind == "u" or getattr(dtype, "numpy_dtype", dtype).kind == "u":
        values = series.to_numpy(np.uint64, na_value=0)
        if len(values) and values.max() >= 2**63:
            raise LedgerImportError("value too large", file, column)
    else:
        values = series.to_numpy(np.int64, na_value=0)
    values = values.astype(np.int64)
    if low is not None:
        rows = np.flatnonzero(present & (values < low))
        if len(rows):
            what = "negative amount" if column in MONEY else f"value below {low}"
            raise LedgerImportError(f"{what} {values[rows[0]]} at row {rows[0]}", file, column)
    if high is not None:
        rows = np.flatnonzero(present & (values > high))
        if len(rows):
            raise LedgerImportError(f"value above {high}: {values[rows[0]]} at row {rows[0]}", file, column)
    if nullable:
        return [int(v) if ok else None for v, ok in zip(values.tolist(), present)]
    return values


def _texts(frame: pd.DataFrame, file: str, column: str, required: bool) -> list:
    """Return a text column as a list of str (None where missing and allowed)."""
    if column not in frame:
        if required:
            raise LedgerImportError("missing column", file, column)
        return [None] * len(frame)
    series = frame[column]
    present = series.notna().to_numpy()
    values = series.astype(object).where(present, None).tolist()
    wrong = [i for i, v in enumerate(values) if v is not None and not isinstance(v, str)]
    if wrong:
        raise LedgerImportError(f"must be text (row {wrong[0]}: {values[wrong[0]]!r})", file, column)
    if required:
        empty = [i for i, v in enumerate(values) if v is None or not v.strip()]
        if empty:
            raise LedgerImportError(f"missing or empty at row {empty[0]}", file, column)
    too_long = [i for i, v in enumerate(values) if v is not None and len(v) > TEXT_LIMITS[column]]
    if too_long:
        raise LedgerImportError(f"longer than {TEXT_LIMITS[column]} characters at row {too_long[0]}", file, column)
    return values


def _unique(ids: np.ndarray, file: str) -> None:
    """Reject a repeated customer id, naming it."""
    ordered = np.sort(ids)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        raise LedgerImportError(f"duplicate customer_id {repeated[0]}", file, "customer_id")


def _owners(ids: np.ndarray, order: np.ndarray, refs: np.ndarray, file: str) -> np.ndarray:
    """Reject references to customers not in the customers file; return each one's row there."""
    if not len(ids):
        if len(refs):
            raise LedgerImportError(f"unknown customer {refs[0]} at row 0 (not in customers)", file, "customer_id")
        return np.zeros(0, np.int64)
    ordered = ids[order]
    position = np.minimum(np.searchsorted(ordered, refs), len(ordered) - 1)
    unknown = np.flatnonzero(ordered[position] != refs)
    if len(unknown):
        i = unknown[0]
        raise LedgerImportError(f"unknown customer {refs[i]} at row {i} (not in customers)", file, "customer_id")
    return order[position]


def _unique_months(customer_id: np.ndarray, year: np.ndarray, month: np.ndarray) -> None:
    """Reject two rows for the same (customer, year, month)."""
    if len(customer_id) < 2:
        return
    if customer_id.min() >= 0 and customer_id.max() < 2**40:
        key = (customer_id * 10_000 + year) * 16 + month  # year < 10,000 and month < 16: one int64
        if np.all(key[1:] > key[:-1]):  # sorted and distinct: the usual export, checked in O(n)
            return
    repeated = np.flatnonzero(pd.DataFrame({"c": customer_id, "y": year, "m": month}).duplicated().to_numpy())
    if len(repeated):
        i = repeated[0]
        raise LedgerImportError(f"duplicate month at row {i}: customer {customer_id[i]}, {year[i]}-{month[i]:02d}",
                                "dues")


def _customer_rows(p: _Prepared, password_hash: str | None, created_at) -> list[tuple]:
    """Return the customers' rows in CUSTOMER_COLUMNS order."""
    ids, name, email, age, phone, total_due, total_paid, bank_credit = p.customers
    n = len(ids)
    return list(zip(ids.tolist(), name, email, age, phone, [password_hash] * n, [created_at] * n,
                    total_due.tolist(), total_paid.tolist(), bank_credit.tolist()))


def _existing_customers(cursor, ids: np.ndarray, placeholder: str) -> np.ndarray:
    """Return the ids among ``ids`` that the ledger already has."""
    if not len(ids):
        return ids
    cursor.execute(f"SELECT id FROM customers WHERE id BETWEEN {placeholder} AND {placeholder}",
                   (int(ids.min()), int(ids.max())))
    found = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    return ids[np.isin(ids, found)]


def _refuse_existing(existing: np.ndarray) -> None:
    if len(existing):
        shown = ", ".join(str(i) for i in existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise LedgerImportError(f"{len(existing)} customer id(s) already in the ledger ({shown}); "
                                "import into an empty ledger or use other ids", "customers", "customer_id")


def _write_sqlite(db: Database, p: _Prepared, password_hash: str | None, bar: tqdm) -> None:
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
            _refuse_existing(_existing_customers(cur, p.customers[0], "?"))
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


def _write_postgres(db: Database, p: _Prepared, password_hash: str | None, bar: tqdm) -> None:
    """Insert with COPY FROM STDIN (binary for the dues) in one transaction.

    The dues table is locked for the load (its foreign keys are re-added at the end).
    """
    raw = db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        try:
            with conn.cursor() as cur:
                _refuse_existing(_existing_customers(cur, p.customers[0], "%s"))
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


def ensure_demo_users(db: Database) -> dict:
    """Make sure the demo manager 1 and customer 101 exist and can log in (idempotent).

    A missing user is created and a NULL password is set to the demo one; a
    password someone has already set is left alone.
    """
    done = {"manager_created": False, "manager_password_set": False,
            "customer_created": False, "customer_password_set": False}
    with db.sessions() as session, write_transaction(session):
        manager = session.get(Manager, DEMO_MANAGER_ID)
        if manager is None:
            session.add(Manager(id=DEMO_MANAGER_ID, name="Demo Manager", email="manager@example.com",
                                password_hash=hash_password(DEMO_MANAGER_PASSWORD)))
            done["manager_created"] = done["manager_password_set"] = True
        elif manager.password_hash is None:
            manager.password_hash = hash_password(DEMO_MANAGER_PASSWORD)
            done["manager_password_set"] = True
        customer = session.get(Customer, DEMO_CUSTOMER_ID)
        if customer is None:
            session.add(Customer(id=DEMO_CUSTOMER_ID, name="Demo Customer", email="customer@example.com",
                                 password_hash=hash_password(DEMO_CUSTOMER_PASSWORD),
                                 total_due_cents=0, total_paid_cents=0, bank_credit_cents=0))
            done["customer_created"] = done["customer_password_set"] = True
        elif customer.password_hash is None:
            customer.password_hash = hash_password(DEMO_CUSTOMER_PASSWORD)
            done["customer_password_set"] = True
    return done


def ledger_is_empty(db: Database) -> bool:
    """Tell whether the ledger has no customers yet."""
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT 1 FROM customers LIMIT 1").first() is None


def seed_demo(db: Database, n_customers: int = 1000, seed: int = 42, out_dir: str | Path | None = None,
              progress: bool = True) -> dict:
    """Simulate the demo data, write its files, import it and ensure the demo logins."""
    from pipeline import simulate as sim

    started = time.perf_counter()
    data = sim.simulate(n_customers, seed)
    simulated = time.perf_counter()
    folder = sim.write(data, out_dir)
    written = time.perf_counter()
    counts = import_ledger(db, data, demo_password=DEMO_CUSTOMER_PASSWORD, progress=progress)
    ensure_demo_users(db)
    return {**counts, "files": str(folder), "simulate_seconds": round(simulated - started, 3),
            "files_seconds": round(written - simulated, 3), "import_seconds": counts["seconds"],
            "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    """Import Parquet files into DATABASE_URL's ledger, or seed the demo ledger."""
    from portal.config import database_url

    parser = argparse.ArgumentParser(prog="python -m portal.importer", description=main.__doc__)
    parser.add_argument("directory", nargs="?", type=Path, help="folder with customers/dues/outcomes.parquet")
    parser.add_argument("--demo", action="store_true", help="simulate and import the demo ledger instead")
    parser.add_argument("--customers", type=int, default=1000, help="demo customers (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="demo seed (default 42)")
    args = parser.parse_args(argv)
    if not args.demo and args.directory is None:
        parser.error("give a directory or --demo")
    db = Database(database_url())
    try:
        if args.demo:
            report = seed_demo(db, args.customers, args.seed)
        else:
            from pipeline.simulate import read

            report = import_ledger(db, read(args.directory))
    except LedgerImportError as exc:
        print(f"import refused: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(", ".join(f"{k} {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
