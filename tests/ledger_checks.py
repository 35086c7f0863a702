"""Ledger invariants and snapshots, checked after every kind of test."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.models import Allocation, CreditDecision, Customer, Due, IdempotencyRecord, Payment, PaymentReversal


def snapshot(db) -> dict:
    """Everything a rejected request must leave unchanged."""
    with db.sessions() as s:
        return {
            "payments": s.scalar(select(func.count()).select_from(Payment)),
            "allocations": s.scalar(select(func.count()).select_from(Allocation)),
            "reversals": s.scalar(select(func.count()).select_from(PaymentReversal)),
            "decisions": s.scalar(select(func.count()).select_from(CreditDecision)),
            "idempotency": s.scalar(select(func.count()).select_from(IdempotencyRecord)),
            "dues": tuple(s.execute(select(func.count(), func.sum(Due.due_cents), func.sum(Due.paid_cents))).one()),
            "customers": tuple(s.execute(select(func.count(), func.sum(Customer.bank_credit_cents),
                                          func.sum(Customer.total_paid_cents))).one()),
        }


def check_invariants(db) -> None:
    """Assert the ledger's sums hold for every customer, to the cent."""
    with db.sessions() as s:
        reversed_ids = set(s.scalars(select(PaymentReversal.payment_id)))
        live_alloc: dict[tuple, int] = {}
        for a in s.scalars(select(Allocation)):
            if a.payment_id not in reversed_ids:
                key = (a.customer_id, a.year, a.month)
                live_alloc[key] = live_alloc.get(key, 0) + a.amount_cents
        for d in s.scalars(select(Due)):
            assert 0 <= d.paid_cents <= d.due_cents
            assert d.paid_cents == d.opening_paid_cents + live_alloc.get((d.customer_id, d.year, d.month), 0)
        for p in s.scalars(select(Payment)):
            allocated = s.scalar(select(func.coalesce(func.sum(Allocation.amount_cents), 0))
                                 .where(Allocation.payment_id == p.id))
            assert allocated + p.to_bank_credit_cents == p.amount_cents, f"payment {p.id} does not add up"
        for c in s.scalars(select(Customer)):
            due = s.scalar(select(func.coalesce(func.sum(Due.due_cents), 0)).where(Due.customer_id == c.id))
            paid = s.scalar(select(func.coalesce(func.sum(Due.paid_cents), 0)).where(Due.customer_id == c.id))
            assert (c.total_due_cents, c.total_paid_cents) == (due, paid), f"customer {c.id} totals drifted"
            live_bank = s.scalar(select(func.coalesce(func.sum(Payment.to_bank_credit_cents), 0)).where(
                Payment.customer_id == c.id, Payment.id.not_in(reversed_ids) if reversed_ids else True))
            assert c.bank_credit_cents >= live_bank
