"""The percentage rule: paid / due x 100 over the customer's whole history, approved at >= the threshold.

The one definition, in Python for decisions and as a SQL expression for the
manager's portfolio (sorting by paid share): both divide the same running totals.
"""
from __future__ import annotations

from sqlalchemy import Float, cast, func

from portal.ledger.decision import Decision
from portal.models import Customer
from portal.money import format_cents

# The same ratio in SQL (NULL when nothing was ever due), for sorting customers by it.
PAID_PCT_SQL = 100.0 * cast(Customer.total_paid_cents, Float) / func.nullif(Customer.total_due_cents, 0)


def percentage_paid(total_paid_cents: int, total_due_cents: int) -> float | None:
    """Return paid / due x 100, or None when nothing was ever due."""
    if total_due_cents <= 0:
        return None
    return 100.0 * total_paid_cents / total_due_cents


def decide_by_percentage(total_paid_cents: int, total_due_cents: int, threshold: float) -> Decision:
    """Apply the percentage rule: approve when paid / due x 100 >= threshold."""
    pct = percentage_paid(total_paid_cents, total_due_cents)
    inputs = {"total_paid": format_cents(total_paid_cents), "total_due": format_cents(total_due_cents)}
    if pct is None:
        reason = {"code": "no_history", "text": "Nothing has been due yet, so there is no payment record to judge"}
        return Decision("percentage", False, threshold, None, inputs, [reason])
    approved = pct >= threshold
    inputs["percentage_paid"] = round(pct, 2)
    text = f"Paid {pct:.0f}% of all dues" + ("" if approved else f"; {threshold:.0f}% needed")
    return Decision("percentage", approved, threshold, round(pct, 2), inputs,
                    [{"code": "paid_percentage", "text": text}])
