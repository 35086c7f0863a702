"""The ``year_percentage`` view: the ledger's contract with the model, read with SQL.

One row per customer (created by migration 0001, frozen there): ``decision_year``
(this year), the paid share of each of the five complete years before it,
oldest first, as ``paid_pct_5y_ago`` ... ``paid_pct_1y_ago`` (NULL for a year
with nothing due), and the outcome label. The pipeline trains on the same
columns; the decision service picks the ones its model was trained on.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from portal.ledger.errors import NotFound

HISTORY_YEARS = 5
# The view's yearly columns, oldest first, with how many years before the decision year each lies.
YEARLY_COLUMNS = {f"paid_pct_{k}y_ago": k for k in range(HISTORY_YEARS, 0, -1)}


def read_row(session: Session, customer_id: int) -> dict:
    """Return the customer's row of the view (decision year and yearly paid percentages)."""
    row = session.execute(text("SELECT * FROM year_percentage WHERE customer_id = :id"),
                          {"id": customer_id}).mappings().first()
    if row is None:
        raise NotFound("no such customer", "customer_id")
    return {"decision_year": int(row["decision_year"]),
            **{name: None if row[name] is None else float(row[name]) for name in YEARLY_COLUMNS}}


def yearly(row: dict) -> list[dict]:
    """Return the row's paid percentages with their real years, oldest first (None: nothing was due)."""
    year = row["decision_year"]
    return [{"year": year - k, "percentage": None if row[name] is None else round(row[name], 2)}
            for name, k in YEARLY_COLUMNS.items()]


def features(row: dict) -> dict[str, float | None]:
    """Return the row's yearly columns only: what the decision service is sent."""
    return {name: row[name] for name in YEARLY_COLUMNS}
