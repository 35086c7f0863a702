"""Where runtime state lives and where the ledger is, read from the environment (never at import time)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Return the runtime state folder (``VAR_DIR``, default ``var/`` in the checkout), creating it if needed."""
    path = Path(os.environ.get("VAR_DIR") or ROOT / "var")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sqlalchemy_url(url: str) -> str:
    """Return a SQLAlchemy URL: the common ``postgres://`` spellings get the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def database_url() -> str:
    """Return ``DATABASE_URL`` as a SQLAlchemy URL, defaulting to the SQLite ledger under ``var/``."""
    url = os.environ.get("DATABASE_URL")
    return sqlalchemy_url(url) if url else f"sqlite:///{var_dir() / 'credit.db'}"
