"""Ledgers with data in them: simulated demo customers, imported the way `make data` does it."""
from __future__ import annotations

from pipeline.simulate import simulate
from portal.cli import migrate
from portal.db import Database
from portal.importer import import_ledger


def simulated_ledger(url: str, customers: int = 1000, seed: int = 42) -> str:
    """Migrate the empty ledger at `url` and import `customers` simulated customers into it; return `url`."""
    migrate(url)
    db = Database(url)
    try:
        import_ledger(db, simulate(customers, seed), progress=False)
    finally:
        db.dispose()
    return url
