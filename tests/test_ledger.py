"""Ledger operations against a real database (SQLite and PostgreSQL)."""
from dataclasses import replace
from datetime import date

import pytest

from portal.credit_requests import request_credit
from portal.ledger import payments, statements
from portal.ledger.errors import Conflict, InvalidRequest, NotFound
from portal.ledger.policy import LimitRule
from testing.audit import check_invariants, snapshot
from testing.people import add_customer, add_manager
from tests.factories import SETTINGS


def test_pay_overflows_forward_across_years_then_to_the_oldest_owed_month_then_bank_credit(db):
    add_customer(db, 101, {(2024, 11): 5_000, (2024, 12): 5_000, (2025, 1): 5_000}, paid={(2024, 11): 1_000})
    with db.sessions() as s:
        r = payments.pay(s, 101, 2024, 12, 16_000)
    assert [(a.year, a.month, a.amount_cents) for a in r.allocations] == [
        (2024, 12, 5_000), (2025, 1, 5_000), (2024, 11, 4_000)]
    assert r.to_bank_credit_cents == 2_000
    with db.sessions() as s:
        sm = statements.summary(s, 101)
        assert (sm.total_paid_cents, sm.bank_credit_cents, sm.balance_cents) == (15_000, 2_000, 0)
    check_invariants(db)


def test_nothing_becomes_bank_credit_while_an_older_month_is_owed(db):
    add_customer(db, 101, {(2024, 11): 5_000, (2024, 12): 5_000, (2025, 1): 5_000}, paid={(2024, 11): 1_000})
    with db.sessions() as s:
        r = payments.pay(s, 101, 2024, 12, 12_000)
    assert [(a.year, a.month, a.amount_cents) for a in r.allocations] == [
        (2024, 12, 5_000), (2025, 1, 5_000), (2024, 11, 2_000)]
    assert r.to_bank_credit_cents == 0
    with db.sessions() as s:
        assert statements.months(s, 101, 2024)[0].needtopay_cents == 2_000
    check_invariants(db)


def test_pay_unknown_month_or_customer_writes_nothing(db):
    add_customer(db, 101)
    before = snapshot(db)
    with db.sessions() as s:
        with pytest.raises(InvalidRequest) as e:
            payments.pay(s, 101, 2030, 1, 100)
        assert e.value.field == "year"
        with pytest.raises(NotFound):
            payments.pay(s, 999, 2024, 1, 100)
    assert snapshot(db) == before


def test_idempotent_replay_and_conflict(db):
    add_customer(db, 101)
    with db.sessions() as s:
        first = payments.pay(s, 101, 2024, 1, 2_500, idempotency_key="k1")
        again = payments.pay(s, 101, 2024, 1, 2_500, idempotency_key="k1")
        assert again.replayed and again.payment_id == first.payment_id
        assert again.allocations == first.allocations
        before = snapshot(db)
        with pytest.raises(Conflict):
            payments.pay(s, 101, 2024, 1, 9_999, idempotency_key="k1")
    assert snapshot(db) == before
    with db.sessions() as s:
        assert statements.summary(s, 101).total_paid_cents == 2_500


def test_reversal_undoes_allocations_and_bank_credit(db):
    add_customer(db, 101, {(2024, 1): 1_000, (2024, 2): 1_000})
    add_manager(db)
    with db.sessions() as s:
        p = payments.pay(s, 101, 2024, 1, 2_500)
        payments.reverse_payment(s, p.payment_id, 1, "bounced cheque")
        sm = statements.summary(s, 101)
        assert (sm.total_paid_cents, sm.bank_credit_cents) == (0, 0)
        with pytest.raises(Conflict):
            payments.reverse_payment(s, p.payment_id, 1, "twice")
        history = statements.payment_history(s, 101)
        assert history[0].reversal.reason == "bounced cheque" and history[0].payment.amount_cents == 2_500
    check_invariants(db)


def test_percentage_rule_approves_at_80_and_adds_the_due(db):
    add_customer(db, 101, {(2024, 1): 1_000_000}, paid={(2024, 1): 800_000})
    add_customer(db, 102, {(2024, 1): 1_000_000}, paid={(2024, 1): 799_999})
    add_customer(db, 103, {})
    today = date(2026, 11, 27)
    generous = replace(SETTINGS, limit=LimitRule(multiple=100))  # this test is about the rule, not the limit
    with db.sessions() as s:
        ok = request_credit(s, 101, 2026, 12, 50_000, "percentage", generous, today=today)
        no = request_credit(s, 102, 2026, 12, 50_000, "percentage", generous, today=today)
        empty = request_credit(s, 103, 2026, 12, 50_000, "percentage", generous, today=today)
    assert ok.approved and ok.score == 80.0
    assert not no.approved and no.reasons[0]["text"] == "Paid 80% of all dues; 80% needed"
    assert not empty.approved and empty.reasons[0]["code"] == "no_history"
    with db.sessions() as s:
        assert statements.summary(s, 101).total_credit_cents == 1_050_000
        assert statements.summary(s, 102).total_credit_cents == 1_000_000
        assert [m.amount_to_pay_cents for m in statements.months(s, 101, 2026)] == [50_000]
    check_invariants(db)


@pytest.mark.parametrize("year,month,amount,field", [
    (2026, 10, 100, "month"), (2025, 12, 100, "year"), (2026, 11, 0, "amount"),
    (2026, 11, 10**8 + 1, "amount"), (2040, 1, 100, "year"),
])
def test_credit_request_limits(db, year, month, amount, field):
    add_customer(db, 101)
    before = snapshot(db)
    with db.sessions() as s, pytest.raises(InvalidRequest) as e:
        request_credit(s, 101, year, month, amount, "percentage", SETTINGS, today=date(2026, 11, 27))
    assert e.value.field == field
    assert snapshot(db) == before
