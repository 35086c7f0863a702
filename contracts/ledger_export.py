"""A ledger export: the files a bank's export (or the simulator) hands to the portal's importer.

Three Parquet files in one folder; money in integer minor units (cents):

* ``customers.parquet``: customer_id, name [, email, age, phone, bank_credit_cents]
* ``dues.parquet``: customer_id, year, month, due_cents, paid_cents
* ``outcomes.parquet`` (optional): customer_id, result [, true_probability]

``pipeline.simulate`` writes them; ``portal.importer`` validates and loads them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from contracts.settings import var_dir

FILES = ("customers", "dues", "outcomes")
REQUIRED = {
    "customers": ("customer_id", "name"),
    "dues": ("customer_id", "year", "month", "due_cents", "paid_cents"),
    "outcomes": ("customer_id", "result"),
}
OPTIONAL_FILES = ("outcomes",)


def default_dir() -> Path:
    """Return the folder the demo export lives in (``var/data/``)."""
    return var_dir() / "data"


def write(data: dict[str, pd.DataFrame], directory: str | Path | None = None) -> Path:
    """Write the frames as ``<name>.parquet`` files in a folder; return the folder."""
    folder = Path(directory) if directory is not None else default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if name in data:
            data[name].to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def read(directory: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Read an export folder; an optional file that is absent is left out of the result."""
    folder = Path(directory) if directory is not None else default_dir()
    frames = {}
    for name in FILES:
        path = folder / f"{name}.parquet"
        if path.exists() or name not in OPTIONAL_FILES:
            frames[name] = pd.read_parquet(path)
    return frames
