"""Importing an export into the ledger: totals, the features view, validation, atomicity."""
import shutil

import numpy as np
import pandas as pd
import psycopg
import pytest

from contracts import ledger_export
from pipeline import simulate as sim
from pipeline.features import FEATURES, TARGET, TRUE_PROBABILITY, feature_years, yearly_percentages
from portal import create_app
from portal.auth.passwords import verify_password
from portal.db import Database
from portal.demo import ensure_demo_users
from portal.importer import LedgerImportError, import_ledger, ledger_is_empty, writers

TABLES = ("customers", "dues", "outcomes", "managers", "payments", "allocations")


@pytest.fixture
def sqlite_ledger(sqlite_url):
    """A fresh migrated SQLite ledger."""
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def pg_ledger(postgres_url):
    """A fresh migrated PostgreSQL ledger."""
    database = Database(postgres_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def empty_ledger(sqlite_template, tmp_path_factory):
    """One migrated SQLite ledger for the tests that must leave it empty."""
    path = tmp_path_factory.mktemp("empty") / "ledger.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def data():
    # The view's features are the five years before the database's current year.
    return sim.simulate(150, seed=5)


def copy(data):
    return {name: frame.copy() for name, frame in data.items()}


def counts(db):
    with db.engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one() for t in TABLES}


def check_imported(db, data, managers=0):
    """Assert the ledger holds exactly the frames, with consistent totals and features."""
    dues = data["dues"]
    assert counts(db) == {"customers": len(data["customers"]), "dues": len(dues), "outcomes": len(data["outcomes"]),
                          "managers": managers, "payments": 0, "allocations": 0}
    with db.engine.connect() as conn:
        customers = pd.read_sql("SELECT id, total_due_cents, total_paid_cents, bank_credit_cents, password_hash"
                                " FROM customers ORDER BY id", conn).set_index("id")
        ledger_dues = pd.read_sql("SELECT customer_id, year, month, due_cents, paid_cents, opening_paid_cents"
                                  " FROM dues ORDER BY customer_id, year, month", conn)
        view = pd.read_sql("SELECT * FROM year_percentage ORDER BY customer_id", conn)
    sums = dues.groupby("customer_id")[["due_cents", "paid_cents"]].sum()
    assert customers["total_due_cents"].astype("int64").tolist() == sums["due_cents"].tolist()
    assert customers["total_paid_cents"].astype("int64").tolist() == sums["paid_cents"].tolist()
    assert customers["total_due_cents"].sum() == dues["due_cents"].sum()
    assert customers["bank_credit_cents"].astype("int64").tolist() == data["customers"]["bank_credit_cents"].tolist()
    assert ledger_dues["paid_cents"].tolist() == dues["paid_cents"].tolist()
    assert ledger_dues["opening_paid_cents"].tolist() == dues["paid_cents"].tolist()
    assert ledger_dues["due_cents"].tolist() == dues["due_cents"].tolist()

    # The view is the contract with the model: its columns are the pipeline's features, in order,
    # and its values the pipeline's definition of them (the paid share of each year before this one).
    assert list(view.columns) == ["customer_id", "decision_year", *FEATURES, TARGET, TRUE_PROBABILITY]
    assert len(view) == len(data["customers"]) and view["customer_id"].is_unique
    features = view[FEATURES].astype(float)
    assert features.notna().all().all()
    assert ((features >= 0) & (features <= 100)).all().all()
    expected = yearly_percentages(dues).reindex(columns=feature_years(int(view["decision_year"].iloc[0])))
    np.testing.assert_allclose(features.to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert view[TARGET].astype(int).tolist() == data["outcomes"]["result"].tolist()
    return customers


def test_import_sets_opening_balances_totals_and_features(db, data):
    report = import_ledger(db, data, progress=False)
    assert report["customers"] == 150 and report["dues"] == 150 * 60 and report["outcomes"] == 150
    assert report["seconds"] >= 0
    customers = check_imported(db, data)
    assert customers["password_hash"].isna().all()  # cannot log in until a manager sets a password


def test_demo_password_is_hashed_once_and_shared(db, data):
    import_ledger(db, data, demo_password="s3cret", progress=False)
    with db.engine.connect() as conn:
        hashes = [row[0] for row in conn.exec_driver_sql("SELECT password_hash FROM customers")]
    assert len(set(hashes)) == 1
    assert verify_password(hashes[0], "s3cret")
    assert not verify_password(hashes[0], "wrong")


def test_refuses_customers_already_in_ledger(db, data):
    import_ledger(db, data, progress=False)
    before = counts(db)
    overlapping = copy(data)
    shift = 100  # half of the ids are new, half exist
    for name in ledger_export.FILES:
        overlapping[name]["customer_id"] += shift
    with pytest.raises(LedgerImportError, match=r"already in the ledger \(\d+"):
        import_ledger(db, overlapping, progress=False)
    assert counts(db) == before


def test_disjoint_import_adds_to_ledger(db, data):
    import_ledger(db, data, progress=False)
    other = sim.simulate(20, seed=9)
    for name in ledger_export.FILES:
        other[name]["customer_id"] += 10_000
    import_ledger(db, other, progress=False)
    assert counts(db)["customers"] == 170


def test_sqlite_failure_while_writing_leaves_nothing(sqlite_ledger, data, monkeypatch):
    real = writers._sqlite_insert

    def failing(cur, table, *args, **kwargs):
        if table == "outcomes":
            raise RuntimeError("disk on fire")
        return real(cur, table, *args, **kwargs)

    monkeypatch.setattr(writers, "_sqlite_insert", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_ledger(sqlite_ledger, data, progress=False)
    assert counts(sqlite_ledger) == dict.fromkeys(TABLES, 0)
    monkeypatch.undo()
    import_ledger(sqlite_ledger, data, progress=False)  # the connection is usable again
    check_imported(sqlite_ledger, data)


def _drop(name, column):
    def mutate(d):
        d[name] = d[name].drop(columns=[column])
    return mutate


def _set(name, column, row, value):
    def mutate(d):
        frame = d[name]
        if not pd.api.types.is_object_dtype(frame[column].dtype) and value is None:
            frame[column] = frame[column].astype(object)
        frame.loc[frame.index[row], column] = value
    return mutate


def _append_copy_of_row(name, row):
    def mutate(d):
        d[name] = pd.concat([d[name], d[name].iloc[[row]]], ignore_index=True)
    return mutate


def _astype(name, column, dtype):
    def mutate(d):
        d[name][column] = d[name][column].astype(dtype)
    return mutate


def _missing_frame(name):
    def mutate(d):
        del d[name]
    return mutate


INVALID = {
    "no customers file": (_missing_frame("customers"), r"^customers: missing"),
    "missing dues column": (_drop("dues", "paid_cents"), r"dues: missing column\(s\) paid_cents"),
    "missing customers column": (_drop("customers", "name"), r"customers: missing column\(s\) name"),
    "missing outcomes column": (_drop("outcomes", "result"), r"outcomes: missing column\(s\) result"),
    "negative due": (_set("dues", "due_cents", 5, -1), r"dues\.due_cents: negative amount -1 at row 5"),
    "negative paid": (_set("dues", "paid_cents", 7, -30), r"dues\.paid_cents: negative amount"),
    "negative bank credit": (_set("customers", "bank_credit_cents", 2, -5), r"customers\.bank_credit_cents: negative"),
    "bank credit while owing": (_set("customers", "bank_credit_cents", 0, 500),
                                r"customers\.bank_credit_cents: customer 101 holds bank credit 500 while owing"),
    "paid above due": (_set("dues", "paid_cents", 3, 10**12), r"dues\.paid_cents: paid_cents 1000000000000 exceeds"),
    "month 13": (_set("dues", "month", 4, 13), r"dues\.month: value above 12"),
    "month 0": (_set("dues", "month", 4, 0), r"dues\.month: value below 1"),
    "duplicate month": (_append_copy_of_row("dues", 10), r"dues: duplicate month at row \d+: customer 101"),
    "dues of unknown customer": (_set("dues", "customer_id", 60, 999_999),
                                 r"dues\.customer_id: unknown customer 999999 at row 60"),
    "outcome of unknown customer": (_set("outcomes", "customer_id", 0, 5),
                                    r"outcomes\.customer_id: unknown customer 5"),
    "result not 0/1": (_set("outcomes", "result", 1, 2), r"outcomes\.result: value above 1"),
    "negative result": (_set("outcomes", "result", 1, -1), r"outcomes\.result: value below 0"),
    "duplicate outcome": (_append_copy_of_row("outcomes", 3), r"outcomes\.customer_id: duplicate customer_id"),
    "duplicate customer": (_append_copy_of_row("customers", 3), r"customers\.customer_id: duplicate customer_id 104"),
    "float money": (_astype("dues", "due_cents", "float64"), r"dues\.due_cents: must be integer minor units"),
    "text money": (_astype("dues", "paid_cents", "str"), r"dues\.paid_cents: must be integers"),
    "missing customer id": (_set("dues", "customer_id", 8, None), r"dues\.customer_id: missing value at row 8"),
    "missing name": (_set("customers", "name", 1, None), r"customers\.name: missing or empty at row 1"),
    "too young": (_set("customers", "age", 0, 17), r"customers\.age: value below 18"),
    "probability above 1": (_set("outcomes", "true_probability", 0, 1.5),
                            r"outcomes\.true_probability: must be a number in 0\.\.1"),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_input_is_refused_before_writing(empty_ledger, data, case):
    mutate, message = INVALID[case]
    bad = copy(data)
    mutate(bad)
    with pytest.raises(LedgerImportError, match=message):
        import_ledger(empty_ledger, bad, progress=False)
    assert counts(empty_ledger) == dict.fromkeys(TABLES, 0)


def test_outcomes_are_optional(db, data):
    without = {"customers": data["customers"], "dues": data["dues"]}
    assert import_ledger(db, without, progress=False)["outcomes"] == 0
    assert counts(db)["outcomes"] == 0


def test_ensure_demo_users_creates_and_is_idempotent(db):
    done = ensure_demo_users(db)
    assert done["manager_created"] and done["customer_created"]
    with db.engine.connect() as conn:
        manager_hash = conn.exec_driver_sql("SELECT password_hash FROM managers WHERE id = 1").scalar_one()
        customer_hash = conn.exec_driver_sql("SELECT password_hash FROM customers WHERE id = 101").scalar_one()
    assert verify_password(manager_hash, "manager123")
    assert verify_password(customer_hash, "customer123")
    assert not any(ensure_demo_users(db).values())
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT password_hash FROM managers WHERE id = 1").scalar_one() == manager_hash
    assert counts(db)["managers"] == 1 and counts(db)["customers"] == 1


def test_ensure_demo_users_sets_missing_password_of_imported_customer(db, data):
    import_ledger(db, data, progress=False)
    done = ensure_demo_users(db)
    assert done == {"manager_created": True, "manager_password_set": True,
                    "customer_created": False, "customer_password_set": True}
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, password_hash FROM customers WHERE id IN (101, 102)").all()
    hashes = dict(rows)
    assert verify_password(hashes[101], "customer123")
    assert hashes[102] is None


def test_demo_seeding_simulator_files_then_portal_import(db, tmp_path):
    # `make data`: the simulator writes an export; the portal's CLI imports it and adds the demo logins.
    assert sim.main(["--customers", "40", "--seed", "1", "--out", str(tmp_path / "data")]) == 0
    assert (tmp_path / "data" / "dues.parquet").exists()
    runner = create_app({"SECRET_KEY": "x", "DATABASE_URL": db.url}).test_cli_runner()
    assert runner.invoke(args=["wants-demo"]).exit_code == 0
    result = runner.invoke(args=["import-data", str(tmp_path / "data"), "--demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["ensure-demo"]).exit_code == 0  # idempotent
    assert runner.invoke(args=["wants-demo"]).exit_code == 1
    assert runner.invoke(args=["ledger-is-empty"]).exit_code == 1
    again = runner.invoke(args=["import-data", str(tmp_path / "data"), "--demo", "--if-empty"])
    assert "not importing" in again.output
    with db.engine.connect() as conn:
        manager_hash = conn.exec_driver_sql("SELECT password_hash FROM managers WHERE id = 1").scalar_one()
        customer_hash = conn.exec_driver_sql("SELECT password_hash FROM customers WHERE id = 101").scalar_one()
    assert verify_password(manager_hash, "manager123")
    assert verify_password(customer_hash, "customer123")
    check_imported(db, ledger_export.read(tmp_path / "data"), managers=1)


def test_cli_import_refuses_a_bad_export_with_a_message(db, data, tmp_path):
    bad = copy(data)
    bad["dues"].loc[3, "paid_cents"] = bad["dues"].loc[3, "due_cents"] + 1
    ledger_export.write(bad, tmp_path)
    runner = create_app({"SECRET_KEY": "x", "DATABASE_URL": db.url}).test_cli_runner()
    result = runner.invoke(args=["import-data", str(tmp_path)])
    assert result.exit_code != 0 and "import refused" in result.output and "paid_cents" in result.output
    assert counts(db)["customers"] == 0


def test_ledger_is_empty(empty_ledger):
    assert ledger_is_empty(empty_ledger)


def test_import_from_written_files(sqlite_ledger, data, tmp_path):
    import_ledger(sqlite_ledger, ledger_export.read(ledger_export.write(data, tmp_path)), progress=False)
    check_imported(sqlite_ledger, data)


@pytest.mark.postgres
def test_postgres_import_restores_foreign_keys(pg_ledger, data):
    report = import_ledger(pg_ledger, data, demo_password="pw", progress=False)
    assert report["dues"] == len(data["dues"])
    customers = check_imported(pg_ledger, data)
    assert verify_password(customers["password_hash"].iloc[0], "pw")
    with pg_ledger.engine.connect() as conn:  # the foreign keys dropped for the load are back
        fks = conn.exec_driver_sql("SELECT conname FROM pg_constraint WHERE conrelid = 'dues'::regclass"
                                   " AND contype = 'f'").scalars().all()
    assert fks == ["fk_dues_customer_id_customers"]
    ensure_demo_users(pg_ledger)
    with pytest.raises(LedgerImportError, match="already in the ledger"):
        import_ledger(pg_ledger, data, progress=False)


@pytest.mark.postgres
def test_postgres_failure_while_writing_leaves_nothing(pg_ledger, data, monkeypatch):
    original = writers._binary_rows
    # Truncate the dues' COPY data: the database rejects it after the customers are in.
    monkeypatch.setattr(writers, "_binary_rows", lambda columns, types: original(columns, types)[:-3])
    with pytest.raises(psycopg.Error):
        import_ledger(pg_ledger, data, progress=False)
    assert counts(pg_ledger) == dict.fromkeys(TABLES, 0)
    with pg_ledger.engine.connect() as conn:  # the dues' foreign key is still there
        fks = conn.exec_driver_sql("SELECT count(*) FROM pg_constraint WHERE conrelid = 'dues'::regclass"
                                   " AND contype = 'f'").scalar_one()
    assert fks == 1
    monkeypatch.undo()
    import_ledger(pg_ledger, data, progress=False)
    check_imported(pg_ledger, data)
