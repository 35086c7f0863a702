"""CLI commands: `flask --app portal migrate | seed | import-data | create-manager | ensure-demo`."""
from __future__ import annotations

import time
from pathlib import Path

import click
from flask import Flask

from portal.db import get_db


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the ledger at `url` to a revision with Alembic."""
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "portal" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def register(app: Flask) -> None:
    """Register the commands on an app."""

    @app.cli.command("migrate")
    def migrate_command():
        """Apply the ledger's migrations (Alembic) up to head."""
        migrate(app.config["DATABASE_URL"])
        click.echo("ledger migrated to head")

    @app.cli.command("seed")
    @click.option("--customers", default=1000, show_default=True, help="simulated customers")
    @click.option("--seed", "seed_", default=42, show_default=True, help="random seed")
    @click.option("--if-empty", is_flag=True, help="do nothing when the ledger has customers")
    def seed_command(customers, seed_, if_empty):
        """Migrate, simulate demo customers and import them, with the demo logins."""
        from portal.importer import ledger_is_empty, seed_demo

        migrate(app.config["DATABASE_URL"])
        db = get_db()
        if if_empty and not ledger_is_empty(db):
            click.echo("ledger already has customers: not seeding")
            return
        started = time.perf_counter()
        stats = seed_demo(db, n_customers=customers, seed=seed_)
        click.echo(f"seeded {customers} customers in {time.perf_counter() - started:.1f} s: {stats}")

    @app.cli.command("import-data")
    @click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--demo-password", default=None, help="give every imported customer this password (demo only)")
    def import_command(directory, demo_password):
        """Import customers, dues and outcomes (Parquet files, e.g. a bank's export) into the ledger."""
        from pipeline.simulate import read
        from portal.importer import import_ledger

        stats = import_ledger(get_db(), read(directory), demo_password=demo_password)
        click.echo(f"imported: {stats}")

    @app.cli.command("replay")
    @click.argument("request_id")
    def replay_command(request_id):
        """Replay a stored credit decision against the rule or model version that made it."""
        from portal.replay import replay

        with get_db().sessions() as session:
            result = replay(session, request_id, app.config.get("MLFLOW_TRACKING_URI"))
        for key, value in result.items():
            click.echo(f"{key:18} {value}")
        raise SystemExit(0 if result["match"] else 1)

    @app.cli.command("ensure-demo")
    def ensure_demo_command():
        """Make sure the demo logins (manager 1, customer 101) exist with their passwords."""
        from portal.importer import ensure_demo_users

        ensure_demo_users(get_db())
        click.echo("demo logins ready: manager 1 / manager123, customer 101 / customer123")
