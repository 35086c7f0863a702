"""CLI commands: ``flask --app portal migrate | import-data | wants-demo | ledger-is-empty | ensure-demo |
settle-bank-credit | replay`` and ``mailer`` (the email sender)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import with_appcontext

from contracts import ledger_export
from contracts.settings import var_dir
from portal.config import is_production
from portal.db import get_db
from portal.demo import DEMO_CUSTOMER_PASSWORD, DemoRefused, ensure_demo_users, refuse_in_production
from portal.importer import LedgerImportError, import_ledger, ledger_is_empty
from portal.ledger.bank_credit import settle_everyone
from portal.mail import sender
from portal.replay import replay

ROOT = Path(__file__).resolve().parent.parent


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the ledger at `url` to a revision with Alembic."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "portal" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


@click.command("migrate")
@with_appcontext
def migrate_command():
    """Apply the ledger's migrations (Alembic) up to head."""
    migrate(current_app.config["DATABASE_URL"])
    click.echo("ledger migrated to head")


@click.command("import-data")
@with_appcontext
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--demo", is_flag=True, help=f"the demo: every customer gets the password {DEMO_CUSTOMER_PASSWORD}, "
              "and the demo logins are made (refused in production)")
@click.option("--if-empty", is_flag=True, help="do nothing when the ledger has customers")
def import_command(directory, demo, if_empty):
    """Import a ledger export (customers, dues, outcomes as Parquet files) into the ledger."""
    db = get_db()
    try:
        if demo:
            refuse_in_production()
        if if_empty and not ledger_is_empty(db):
            click.echo("ledger already has customers: not importing")
            return
        stats = import_ledger(db, ledger_export.read(directory), demo_password=DEMO_CUSTOMER_PASSWORD if demo else None)
        if demo:
            ensure_demo_users(db)
    except (LedgerImportError, DemoRefused) as exc:
        raise click.ClickException(f"import refused: {exc}") from exc
    click.echo(f"imported: {stats}" + ("; demo logins: manager 1 / manager123, customer 101 / customer123"
                                       if demo else ""))


@click.command("wants-demo")
@with_appcontext
def wants_demo_command():
    """Exit 0 when the demo should be seeded (an empty ledger, not in production), 1 otherwise (for make data)."""
    if is_production():
        click.echo("production (APP_ENV=production): no demo data, no demo logins")
        sys.exit(1)
    if not ledger_is_empty(get_db()):
        click.echo("ledger already has customers: not seeding the demo")
        sys.exit(1)
    sys.exit(0)


@click.command("ledger-is-empty")
@with_appcontext
def ledger_is_empty_command():
    """Exit 0 when the ledger has no customers yet, 1 otherwise (for scripts)."""
    sys.exit(0 if ledger_is_empty(get_db()) else 1)


@click.command("ensure-demo")
@with_appcontext
def ensure_demo_command():
    """Make sure the demo logins of a demo ledger (manager 1, customer 101) exist with their passwords."""
    try:
        ensure_demo_users(get_db())
    except DemoRefused as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("demo logins ready: manager 1 / manager123, customer 101 / customer123")


@click.command("settle-bank-credit")
@with_appcontext
def settle_bank_credit_command():
    """Apply bank credit held while owing to the months owed (ledgers written before that rule)."""
    with get_db().sessions() as session:
        settled = settle_everyone(session)
    if settled:
        click.echo(f"bank credit applied to the dues of {settled} customer(s)")


@click.command("replay")
@with_appcontext
@click.argument("request_id")
def replay_command(request_id):
    """Replay a stored credit decision against the rule or model version that made it."""
    with get_db().sessions() as session:
        result = replay(session, request_id, current_app.extensions["decision_service"])
    for key, value in result.items():
        click.echo(f"{key:18} {value}")
    sys.exit(0 if result["match"] else 1)


@click.command("mailer")
@with_appcontext
@click.option("--once", is_flag=True, help="send what is due now, then exit (else keep polling until SIGTERM/Ctrl-C)")
def mailer_command(once):
    """Deliver the email outbox: SMTP_URL, or .eml files under VAR_DIR/mail without it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mailer %(levelname)s %(message)s")
    where = "the SMTP server of SMTP_URL" if current_app.config["SMTP_URL"] else f".eml files in {var_dir() / 'mail'}"
    click.echo(f"mailer: delivering the outbox to {where}" + ("" if once else " (Ctrl-C stops)"))
    total = sender.run(sender.stop_on_signals(), once=once)
    click.echo(f"mailer: {total.sent} sent, {total.retrying} to retry, {total.failed} failed")


COMMANDS = (migrate_command, import_command, wants_demo_command, ledger_is_empty_command, ensure_demo_command,
            settle_bank_credit_command, replay_command, mailer_command)


def register(app: Flask) -> None:
    """Register the commands on an app."""
    for cmd in COMMANDS:
        app.cli.add_command(cmd)
