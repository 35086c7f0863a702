"""Turn ledger objects into the API's JSON shapes (money as two-decimal strings)."""
from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy.orm import Session

from portal.ledger import policy, statements
from portal.ledger.percentage import percentage_paid
from portal.money import format_cents


def user(u, role: str) -> dict:
    """Present a customer or manager."""
    return {"id": u.id, "role": role, "name": u.name, "email": u.email, "age": u.age, "phone": u.phone}


def headroom(h: policy.Headroom) -> dict:
    """Present a credit limit, what is owed against it, and what is left to borrow."""
    return {"credit_limit": format_cents(h.limit_cents), "exposure": format_cents(h.exposure_cents),
            "available_credit": format_cents(h.available_cents)}


def headrooms(session: Session, customers: list) -> dict[int, dict]:
    """Present the credit headroom of several customers (the portal's limit rule, today)."""
    rule = policy.LimitRule.from_config(current_app.config)
    return {cid: headroom(h) for cid, h in policy.headrooms(session, customers, date.today(), rule).items()}


def summary(session: Session, customer_id: int) -> dict:
    """Present a customer's summary, with their credit limit and available credit (two reads at most)."""
    return summaries(session, [customer_id])[customer_id]


def summaries(session: Session, customer_ids: list[int]) -> dict[int, dict]:
    """Present customers' summaries (`summary`), reading what paid by year for all of them in one query."""
    by_years = statements.paid_by_year_many(session, customer_ids)  # the years and the limit's window
    rule = policy.LimitRule.from_config(current_app.config)
    today = date.today()
    presented = {}
    for customer_id, by_year in by_years.items():
        s = statements.summary(session, customer_id)
        pct = percentage_paid(s.total_paid_cents, s.total_credit_cents)
        presented[customer_id] = {
            "customer": user(s.customer, "customer"),
            "total_credit": format_cents(s.total_credit_cents),
            "total_paid": format_cents(s.total_paid_cents),
            "balance": format_cents(s.balance_cents),
            "bank_credit": format_cents(s.bank_credit_cents),
            "percentage_paid": None if pct is None else round(pct, 2),
            **headroom(policy.headroom_from_years(s.customer, by_year, today, rule)),
            "years": list(by_year),
        }
    return presented


def month_rows(rows) -> tuple[list[dict], dict]:
    """Present monthly rows and their totals."""
    months = [{"year": r.year, "month": r.month, "amount_to_pay": format_cents(r.amount_to_pay_cents),
               "amount_paid": format_cents(r.amount_paid_cents), "needtopay": format_cents(r.needtopay_cents)}
              for r in rows]
    due = sum(r.amount_to_pay_cents for r in rows)
    paid = sum(r.amount_paid_cents for r in rows)
    return months, {"amount_to_pay": format_cents(due), "amount_paid": format_cents(paid),
                    "needtopay": format_cents(due - paid)}


def allocations(items) -> list[dict]:
    """Present allocations."""
    return [{"year": a.year, "month": a.month, "amount": format_cents(a.amount_cents)} for a in items]


def plan(p) -> dict:
    """Present where a payment would go (a preview)."""
    return {"year": p.year, "month": p.month, "amount": format_cents(p.amount_cents),
            "month_owed": format_cents(p.month_owed_cents), "month_already_paid": p.month_owed_cents == 0,
            "allocations": allocations(p.allocations), "to_bank_credit": format_cents(p.to_bank_credit_cents)}


def payment_entry(entry) -> dict:
    """Present one payment of the history."""
    p, r = entry.payment, entry.reversal
    return {"payment_id": p.id, "year": p.year, "month": p.month, "amount": format_cents(p.amount_cents),
            "to_bank_credit": format_cents(p.to_bank_credit_cents), "source": p.source,
            "created_at": p.created_at, "allocations": allocations(entry.allocations),
            "reversed": r is not None, "reversed_at": r.created_at if r else None,
            "reversal_reason": r.reason if r else None}


def decision(d) -> dict:
    """Present a stored credit decision."""
    inputs = d.inputs or {}
    return {
        "request_id": d.request_id, "customer_id": d.customer_id, "year": d.year, "month": d.month,
        "amount": format_cents(d.amount_cents), "approved": d.approved, "method": d.method,
        "score": d.score, "threshold": d.threshold,
        "percentage_paid": inputs.get("percentage_paid"),
        "yearly_percentages": inputs.get("yearly_percentages"),
        "model_version": d.model_version, "reasons": d.reasons, "created_at": d.created_at,
        **decision_headroom(d),
        "checks": d.checks or [],
        "failed_checks": [c["name"] for c in d.checks or [] if not c["passed"]],
    }


def decision_headroom(d) -> dict:
    """Present the limit and exposure a decision was made with (None before the credit policy existed)."""
    if d.limit_cents is None:
        return {"credit_limit": None, "exposure": None, "available_credit": None}
    return headroom(policy.Headroom(d.limit_cents, d.exposure_cents))
