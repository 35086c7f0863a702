"""The model's features: defined here once, used by the ledger view, the pipeline and serving.

Features never name calendar years: they are the paid percentages of the last
``HISTORY_YEARS`` complete years before the decision date, oldest first, so a
model trained in 2026 still works in 2027. People are shown the real years
(``feature_years``). This module imports nothing heavy: the portal uses it too.
"""
from __future__ import annotations

HISTORY_YEARS = 5

# Oldest first: paid_pct_5y_ago, ..., paid_pct_1y_ago.
FEATURES: list[str] = [f"paid_pct_{k}y_ago" for k in range(HISTORY_YEARS, 0, -1)]

TARGET = "result"
ID = "customer_id"
TRUE_PROBABILITY = "true_probability"


def feature_years(decision_year: int) -> list[int]:
    """Return the calendar year behind each feature, in FEATURES order."""
    return [decision_year - k for k in range(HISTORY_YEARS, 0, -1)]


def feature_label(feature: str, decision_year: int) -> int:
    """Return the calendar year a feature stands for at a decision year."""
    return feature_years(decision_year)[FEATURES.index(feature)]


def yearly_percentages(dues):
    """Return 100 * paid / due per customer (rows) and calendar year (columns) from a dues frame.

    The same definition as the view below, for frames that are not in a
    database (the simulator's summary); the tests check that the
    two agree on the same data (tests/test_importer.py, on SQLite and PostgreSQL).
    """
    sums = dues.groupby(["customer_id", "year"])[["due_cents", "paid_cents"]].sum()
    return (100.0 * sums["paid_cents"] / sums["due_cents"].where(sums["due_cents"] > 0)).unstack("year")


_CURRENT_YEAR_SQL = {
    "sqlite": "CAST(strftime('%Y', 'now') AS INTEGER)",
    "postgresql": "CAST(EXTRACT(YEAR FROM CURRENT_DATE) AS INTEGER)",
}


def year_percentage_view_sql(dialect: str) -> str:
    """Return CREATE VIEW year_percentage for a SQL dialect (sqlite or postgresql).

    One row per customer: the yearly paid percentage (100 * paid / due) of
    each of the last five complete years, NULL for a year with nothing due,
    then the outcome label and, for simulated data, its true probability.
    """
    year = _CURRENT_YEAR_SQL[dialect]
    columns = []
    for k, name in zip(range(HISTORY_YEARS, 0, -1), FEATURES):
        columns.append(
            f"100.0 * SUM(CASE WHEN d.year = {year} - {k} THEN d.paid_cents ELSE 0 END)"
            f" / NULLIF(SUM(CASE WHEN d.year = {year} - {k} THEN d.due_cents ELSE 0 END), 0)"
            f" AS {name}"
        )
    return (
        "CREATE VIEW year_percentage AS SELECT c.id AS customer_id, "
        f"{year} AS decision_year, "
        + ", ".join(columns)
        + f", o.result AS {TARGET}, o.true_probability AS {TRUE_PROBABILITY}"
        " FROM customers c"
        f" LEFT JOIN dues d ON d.customer_id = c.id AND d.year >= {year} - {HISTORY_YEARS} AND d.year < {year}"
        " LEFT JOIN outcomes o ON o.customer_id = c.id"
        " GROUP BY c.id, o.result, o.true_probability"
    )
