"""The model's features: defined here once for the pipeline; the ledger's view computes the same in SQL.

Features never name calendar years: they are the paid percentages of the last
``HISTORY_YEARS`` complete years before the decision date, oldest first, so a
model trained in 2026 still works in 2027. People are shown the real years
(``feature_years``); every version records ``feature_labels`` for serving.
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


def feature_labels(features: list[str]) -> dict[str, dict]:
    """Return how people read each feature; stored with every version, so serving's reasons need no pipeline code.

    A paid percentage is labelled by how many years before the decision year it
    lies (serving turns that into a real year); any other feature by its name.
    """
    labels = {}
    for name in features:
        if name in FEATURES:
            labels[name] = {"label": "paid share of dues", "unit": "percent",
                            "years_ago": HISTORY_YEARS - FEATURES.index(name)}
        else:
            labels[name] = {"label": name.replace("_", " ")}
    return labels


def yearly_percentages(dues):
    """Return 100 * paid / due per customer (rows) and calendar year (columns) from a dues frame.

    The ledger's ``year_percentage`` view computes the same in SQL (frozen in the
    portal's first migration); tests/test_importer.py checks that the two agree,
    column names included, on the same data on SQLite and PostgreSQL.
    """
    sums = dues.groupby(["customer_id", "year"])[["due_cents", "paid_cents"]].sum()
    return (100.0 * sums["paid_cents"] / sums["due_cents"].where(sums["due_cents"] > 0)).unstack("year")
