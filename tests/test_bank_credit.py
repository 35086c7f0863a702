"""Bank credit only when nothing is owed: payments, new dues, reversals and refunds, on SQLite and PostgreSQL."""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.credit_requests import request_credit
from portal.ledger import bank_credit, payments, statements
from portal.ledger.errors import Conflict, InvalidRequest
from portal.ledger.policy import LimitRule
from portal.models import (
    Allocation,
    AuditEvent,
    BankCreditEntry,
    Customer,
    Due,
    Manager,
    OutboxMessage,
    Payment,
    PaymentReversal,
)
from testing.audit import check_invariants, snapshot
from testing.people import add_customer, add_manager
from tests.factories import SETTINGS

TODAY = date.today()
NEXT = TODAY.year + 1
# Approves any request with a repayment record: these tests are about bank credit, not the limit.
GENEROUS = replace(SETTINGS, percentage_threshold=0.0, limit=LimitRule(multiple=1000))


def summary(db, customer_id: int) -> statements.Summary:
    with db.sessions() as s:
        return statements.summary(s, customer_id)


def owed(db, customer_id: int) -> dict[tuple[int, int], int]:
    with db.sessions() as s:
        return {(m.year, m.month): m.needtopay_cents for m in statements.months(s, customer_id)}


def test_paying_a_paid_month_clears_the_oldest_months_owed(db):
    # The customer 102: December already paid, older months owed, 5,000.00 paid "from December".
    add_customer(db, 102, {(2025, 10): 300_000, (2025, 11): 300_000, (2025, 12): 300_000},
                 paid={(2025, 10): 100_000, (2025, 12): 300_000})
    with db.sessions() as s:
        r = payments.pay(s, 102, 2025, 12, 500_000)
    assert [(a.year, a.month, a.amount_cents) for a in r.allocations] == [(2025, 10, 200_000), (2025, 11, 300_000)]
    assert r.to_bank_credit_cents == 0
    assert summary(db, 102).balance_cents == 0
    check_invariants(db)


def test_an_approved_credit_is_settled_by_bank_credit_at_once(db):
    add_customer(db, 101, {(2025, 1): 100_000}, paid={(2025, 1): 100_000}, bank_credit=500_000)
    with db.sessions() as s:
        d = request_credit(s, 101, NEXT, 3, 300_000, "percentage", GENEROUS, today=TODAY)
    assert d.approved
    sm = summary(db, 101)
    assert (sm.bank_credit_cents, sm.balance_cents, sm.total_paid_cents) == (200_000, 0, 400_000)
    with db.sessions() as s:
        entry = s.scalars(select(BankCreditEntry)).one()
        assert (entry.kind, entry.amount_cents, entry.credit_decision_id) == ("applied", 300_000, d.id)
        assert [(a.year, a.month, a.amount_cents) for a in entry_allocations(s, entry.id)] == [(NEXT, 3, 300_000)]
    check_invariants(db)


def test_a_credit_larger_than_the_bank_credit_uses_all_of_it(db):
    add_customer(db, 101, {(2025, 1): 100_000}, paid={(2025, 1): 100_000}, bank_credit=50_000)
    with db.sessions() as s:
        request_credit(s, 101, NEXT, 3, 300_000, "percentage", GENEROUS, today=TODAY)
    sm = summary(db, 101)
    assert (sm.bank_credit_cents, sm.balance_cents) == (0, 250_000)
    assert owed(db, 101)[(NEXT, 3)] == 250_000
    check_invariants(db)


def entry_allocations(session, entry_id: int):
    return session.scalars(select(Allocation).where(Allocation.bank_credit_entry_id == entry_id)
                           .order_by(Allocation.id)).all()


def test_reversal_leaves_no_bank_credit_while_the_months_it_paid_are_owed(db):
    # The customer 101: a reversal left 3,000.00 owed beside 500.00 of bank credit.
    add_customer(db, 101, {(2025, 1): 300_000})
    add_manager(db)
    with db.sessions() as s:
        first = payments.pay(s, 101, 2025, 1, 300_000)
        extra = payments.pay(s, 101, 2025, 1, 50_000)
    assert extra.to_bank_credit_cents == 50_000
    with db.sessions() as s:
        payments.reverse_payment(s, first.payment_id, 1, "bounced cheque")
    sm = summary(db, 101)
    assert (sm.bank_credit_cents, sm.balance_cents) == (0, 250_000)
    check_invariants(db)


def test_reversing_a_payment_whose_bank_credit_paid_a_credit_makes_that_due_owed_again(db):
    add_customer(db, 101, {(2025, 1): 100_000})
    add_manager(db)
    with db.sessions() as s:
        p = payments.pay(s, 101, 2025, 1, 300_000)  # 1,000.00 to January, 2,000.00 bank credit
        request_credit(s, 101, NEXT, 3, 150_000, "percentage", GENEROUS, today=TODAY)
    assert summary(db, 101).bank_credit_cents == 50_000
    with db.sessions() as s:
        payments.reverse_payment(s, p.payment_id, 1, "bounced cheque")
    sm = summary(db, 101)
    assert (sm.bank_credit_cents, sm.balance_cents) == (0, 250_000)  # January and the credit owed again
    assert owed(db, 101) == {(2025, 1): 100_000, (NEXT, 3): 150_000}
    with db.sessions() as s:
        kinds = [(e.kind, e.amount_cents) for e in s.scalars(select(BankCreditEntry).order_by(BankCreditEntry.id))]
    assert kinds == [("applied", 150_000), ("unapplied", 150_000)]
    check_invariants(db)


def test_refund_is_a_row_with_who_and_why(db):
    add_customer(db, 101, {(2025, 1): 100_000}, paid={(2025, 1): 100_000}, bank_credit=80_000)
    add_manager(db)
    with db.sessions() as s:
        entry = bank_credit.refund(s, 101, 1, 30_000, "customer asked for it by phone")
    assert (entry.kind, entry.manager_id, entry.reason, entry.amount_cents) == (
        "refund", 1, "customer asked for it by phone", 30_000)
    assert summary(db, 101).bank_credit_cents == 50_000
    with db.sessions() as s:  # in the same transaction: the audit row and the customer's email
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "bank_credit.refund")).one()
        assert (event.actor_id, event.target_id, event.new["amount"]) == (1, 101, "300.00")
        mail = s.scalars(select(OutboxMessage)).one()
        assert (mail.kind, mail.customer_id, mail.context["amount_cents"]) == ("bank_credit_refunded", 101, 30_000)
    before = snapshot(db)
    with db.sessions() as s:
        for amount, reason, field in ((50_001, "too much", "amount"), (0, "nothing", "amount"), (100, " ", "reason")):
            with pytest.raises(InvalidRequest) as e:
                bank_credit.refund(s, 101, 1, amount, reason)
            assert e.value.field == field
    assert snapshot(db) == before
    check_invariants(db)


def test_a_payment_whose_bank_credit_was_refunded_cannot_be_reversed(db):
    add_customer(db, 101, {(2025, 1): 100_000})
    add_manager(db)
    with db.sessions() as s:
        p = payments.pay(s, 101, 2025, 1, 300_000)
        bank_credit.refund(s, 101, 1, 200_000, "paid back")
    before = snapshot(db)
    with db.sessions() as s, pytest.raises(Conflict, match="refunded"):
        payments.reverse_payment(s, p.payment_id, 1, "bounced cheque")
    assert snapshot(db) == before
    check_invariants(db)


# --- properties over random sequences ---------------------------------------------------------------

MONTHS = [(2025, m) for m in range(1, 13)]
operations = st.lists(st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 11), st.integers(1, 60_000)),
    st.tuples(st.just("credit"), st.integers(1, 12), st.integers(1, 60_000)),
    st.tuples(st.just("reverse"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("refund"), st.integers(1, 100), st.just(0)),
), min_size=1, max_size=12)
_ids = count()


def money_in(db, customer_id: int) -> tuple[int, int, int]:
    """Return (live payments, what the months got from them and bank credit, refunded) for one customer."""
    with db.sessions() as s:
        live = s.scalar(select(func.coalesce(func.sum(Payment.amount_cents), 0))
                        .where(Payment.customer_id == customer_id,
                               Payment.id.not_in(select(PaymentReversal.payment_id))))
        c = s.get(Customer, customer_id)
        opening = s.scalar(select(func.sum(Due.opening_paid_cents)).where(Due.customer_id == customer_id))
        refunded = s.scalar(select(func.coalesce(func.sum(BankCreditEntry.amount_cents), 0))
                            .where(BankCreditEntry.customer_id == customer_id, BankCreditEntry.kind == "refund"))
        return live, c.total_paid_cents - opening + c.bank_credit_cents - c.opening_bank_credit_cents, refunded


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations, st.integers(0, 50_000))
def test_every_sequence_conserves_money_and_holds_no_bank_credit_while_owing(db, ops, opening_bank):
    customer_id = 5000 + next(_ids)
    dues = {m: 20_000 for m in MONTHS}
    # Opening bank credit only with nothing owed, as the importer demands.
    add_customer(db, customer_id, dues, paid=dues if opening_bank else {}, bank_credit=opening_bank)
    with db.sessions() as s:
        needs_manager = s.get(Manager, 1) is None  # the database lives across Hypothesis's examples
    if needs_manager:
        add_manager(db)
    made: list[int] = []
    for op, a, b in ops:
        with db.sessions() as s:
            try:
                if op == "pay":
                    made.append(payments.pay(s, customer_id, *MONTHS[a], b).payment_id)
                elif op == "credit":
                    request_credit(s, customer_id, NEXT, a, b, "percentage", GENEROUS, today=TODAY)
                elif op == "reverse" and made:
                    payments.reverse_payment(s, made[a % len(made)], 1, "test")
                elif op == "refund":
                    held = statements.summary(s, customer_id).bank_credit_cents
                    if held:
                        bank_credit.refund(s, customer_id, 1, max(1, held * a // 100), "test")
            except Conflict:
                pass  # reversed twice, or its bank credit was refunded: refused, nothing changed
        live, landed, refunded = money_in(db, customer_id)
        assert landed + refunded == live, "money in != months + bank credit + refunds"
        sm = summary(db, customer_id)
        assert sm.bank_credit_cents == 0 or sm.balance_cents == 0, "bank credit while a due is owed"
    check_invariants(db)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.integers(0, 11), st.integers(0, 20_000), max_size=12), st.integers(0, 11),
       st.integers(1, 300_000))
def test_the_preview_is_what_the_payment_then_does(db, paid, month, amount):
    customer_id = 7000 + next(_ids)
    add_customer(db, customer_id, {m: 20_000 for m in MONTHS}, paid={MONTHS[i]: c for i, c in paid.items()})
    with db.sessions() as s:
        seen = payments.preview(s, customer_id, *MONTHS[month], amount)
    assert seen.month_owed_cents == 20_000 - paid.get(month, 0)
    with db.sessions() as s:
        done = payments.pay(s, customer_id, *MONTHS[month], amount)
    assert (seen.allocations, seen.to_bank_credit_cents) == (done.allocations, done.to_bank_credit_cents)


def test_a_ledger_from_before_the_rule_is_settled_once(db):
    add_customer(db, 101, {(2025, 1): 100_000, (2025, 2): 100_000}, bank_credit=150_000)  # the old rule allowed it
    add_customer(db, 102, {(2025, 1): 100_000}, paid={(2025, 1): 100_000}, bank_credit=5_000)
    with db.sessions() as s:
        assert bank_credit.settle_everyone(s) == 1
        assert bank_credit.settle_everyone(s) == 0
    assert (summary(db, 101).bank_credit_cents, summary(db, 101).balance_cents) == (0, 50_000)
    assert summary(db, 102).bank_credit_cents == 5_000
    check_invariants(db)


# --- through the API ----------------------------------------------------------------------------------


def test_api_preview_writes_nothing_and_equals_the_payment(client, customer, ledger):
    before = snapshot(ledger)
    r = client.get("/api/customer/payment-preview?year=2024&month=12&amount=250.00", headers=customer)
    assert r.status_code == 200, r.json
    assert snapshot(ledger) == before
    assert r.json["month_already_paid"] is False and r.json["month_owed"] == "100.00"
    paid = client.post("/api/customer/payment", json={"year": 2024, "month": 12, "amount": "250.00"},
                       headers={**customer, "Idempotency-Key": "preview-1"}).json
    assert (r.json["allocations"], r.json["to_bank_credit"]) == (paid["allocations"], paid["to_bank_credit"])
    again = client.get("/api/customer/payment-preview?year=2024&month=12&amount=10.00", headers=customer).json
    assert again["month_already_paid"] is True and again["allocations"] == [
        {"year": 2024, "month": 1, "amount": "10.00"}]  # January still owes 50.00
    for bad in ("year=2024&month=13&amount=1.00", "year=2030&month=1&amount=1.00", "year=2024&month=1&amount=1.5x"):
        assert client.get(f"/api/customer/payment-preview?{bad}", headers=customer).status_code == 422


def test_api_refund_by_a_manager_only(client, ledger, auth):
    add_customer(ledger, 103, {(2024, 1): 10_000}, paid={(2024, 1): 10_000}, bank_credit=5_000)
    customer = auth.login("customer", 101, "customer123")
    body = {"amount": "20.00", "reason": "asked by phone"}
    assert client.post("/api/manager/customers/103/bank-credit/refund", json=body, headers=customer).status_code == 403
    manager = auth.login("manager", 1, "manager123")
    r = client.post("/api/manager/customers/103/bank-credit/refund", json=body, headers=manager)
    assert r.status_code == 201, r.json
    assert r.json["summary"]["bank_credit"] == "30.00" and r.json["refunded_by"] == 1
    too_much = client.post("/api/manager/customers/103/bank-credit/refund",
                           json={"amount": "30.01", "reason": "x"}, headers=manager)
    assert too_much.status_code == 422 and too_much.json["field"] == "amount"
    assert client.post("/api/manager/customers/999/bank-credit/refund", json=body, headers=manager).status_code == 404
    check_invariants(ledger)
