"""The model's features: defined here once for the pipeline; the ledger's view computes the same in SQL.

Features never name calendar years: they are the paid percentages of the last
``HISTORY_YEARS`` complete years before the decision date, oldest first, so a
model trained in 2026 still works in 2027. People are shown the real years
(``feature_years``); every version records ``feature_labels`` for serving.

For training, a customer's decision year is the year after their **last
complete year that has data** (``feature_frame``): the last year before the
as-of year whose twelve months are all on the schedule. Its outcome is the one
observed in that decision year (the outcome window after the feature years).
So a ledger seeded in 2026 trains the same way in 2027 and 2028, when the
calendar's most recent years have no dues yet.
"""
from __future__ import annotations

import pandas as pd

HISTORY_YEARS = 5

# Oldest first: paid_pct_5y_ago, ..., paid_pct_1y_ago.
FEATURES: list[str] = [f"paid_pct_{k}y_ago" for k in range(HISTORY_YEARS, 0, -1)]

# The percentage method's own figure: 100 x total paid / total due over the feature years (the
# ledger's rule over the customer's whole history), kept next to the features for evaluation only.
PAID_PCT_ALL = "paid_pct_all_years"
MONTHS = 12

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
    return paid_percentage(sums["paid_cents"], sums["due_cents"]).unstack("year")


def paid_percentage(paid: pd.Series, due: pd.Series) -> pd.Series:
    """Return 100 * paid / due; NaN where nothing was due (the view's NULL)."""
    return 100.0 * paid / due.where(due > 0)


def feature_frame(years: pd.DataFrame, as_of_year: int) -> pd.DataFrame:
    """Return one row per customer: decision year, the five yearly percentages and the rule's percentage.

    ``years`` has one row per customer and calendar year (``customer_id``,
    ``year``, ``months`` on the schedule, ``due_cents``, ``paid_cents``: the
    ledger's ``customer_years`` view). A customer's decision year is the year
    after their last complete year (all twelve months scheduled) before
    ``as_of_year``; customers without one are left out.
    """
    years = years.astype({"customer_id": "int64", "year": "int64", "months": "int64",
                          "due_cents": "float64", "paid_cents": "float64"})
    complete = years[(years["months"] >= MONTHS) & (years["year"] < as_of_year)]
    decision = (complete.groupby("customer_id")["year"].max() + 1).rename("decision_year")
    window = years.merge(decision.reset_index(), on="customer_id")
    window["years_ago"] = window["decision_year"] - window["year"]
    window = window[window["years_ago"].between(1, HISTORY_YEARS)]
    window = window.assign(pct=paid_percentage(window["paid_cents"], window["due_cents"]))
    pct = window.pivot(index="customer_id", columns="years_ago", values="pct").reindex(
        columns=range(HISTORY_YEARS, 0, -1))
    pct.columns = FEATURES
    totals = window.groupby("customer_id")[["due_cents", "paid_cents"]].sum()
    rule = paid_percentage(totals["paid_cents"], totals["due_cents"]).rename(PAID_PCT_ALL)
    frame = pd.concat([decision, pct, rule], axis=1).reindex(decision.index)
    frame.index.name = "customer_id"
    return frame.reset_index().astype({"decision_year": "int64"})


def customer_years(dues: pd.DataFrame) -> pd.DataFrame:
    """Return monthly dues summed per customer and calendar year, as the ledger's ``customer_years`` view does."""
    grouped = dues.groupby(["customer_id", "year"])
    sums = grouped[["due_cents", "paid_cents"]].sum()
    sums.insert(0, "months", grouped.size())
    return sums.reset_index()

