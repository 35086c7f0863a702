"""Migrations from empty to head (and back) on both engines; the models match the migrations."""
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from testing.databases import throwaway_database

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"customers", "managers", "dues", "payments", "allocations", "payment_reversals", "credit_decisions",
          "idempotency_records", "api_tokens", "outcomes", "bank_credit_entries"}


def _config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "portal" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL not reachable")
    with throwaway_database("postgres", "credit_mig") as url:
        yield url


def test_empty_to_head_and_back(empty_url):
    cfg = _config(empty_url)
    command.upgrade(cfg, "head")
    engine = create_engine(empty_url)
    inspector = inspect(engine)
    assert TABLES <= set(inspector.get_table_names())
    assert "year_percentage" in inspector.get_view_names()
    command.check(cfg)  # raises if the models and the migrations disagree
    command.downgrade(cfg, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    command.upgrade(cfg, "head")
    engine.dispose()


def test_constraints_are_enforced_by_the_database(empty_url):
    command.upgrade(_config(empty_url), "head")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customers (id, name, total_due_cents, total_paid_cents, bank_credit_cents,"
                          " created_at) VALUES (1, 'A', 100, 0, 0, CURRENT_TIMESTAMP)"))
    bad = [
        "INSERT INTO dues (customer_id, year, month, due_cents, paid_cents, opening_paid_cents)"
        " VALUES (1, 2024, 1, 100, 101, 0)",
        "INSERT INTO dues (customer_id, year, month, due_cents, paid_cents, opening_paid_cents)"
        " VALUES (1, 2024, 13, 100, 0, 0)",
        "INSERT INTO dues (customer_id, year, month, due_cents, paid_cents, opening_paid_cents)"
        " VALUES (1, 2024, 1, -1, 0, 0)",
        "UPDATE customers SET bank_credit_cents = -1",
        "UPDATE customers SET total_paid_cents = 101",
    ]
    for statement in bad:
        with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 - IntegrityError, per driver
            conn.execute(text(statement))
    engine.dispose()
