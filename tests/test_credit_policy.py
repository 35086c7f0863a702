"""The credit policy: eligibility -> score -> limit, the same for both methods, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.credit_requests import request_credit
from portal.ledger import policy, statements
from portal.ledger.decision import Decision
from portal.ledger.policy import Headroom, LimitRule
from portal.models import CreditDecision, Customer, Due
from testing.audit import check_invariants
from testing.people import add_customer
from tests.factories import SETTINGS

TODAY = date.today()
FIVE_YEARS = range(TODAY.year - 5, TODAY.year)
NEXT = (TODAY.year + 1, 1)


def clean_history(monthly: int = 100_000) -> dict:
    """Five complete years of a monthly due: paid in full, a limit of 12 x monthly (multiple 1)."""
    return {(y, m): monthly for y in FIVE_YEARS for m in range(1, 13)}


def add_clean(db, customer_id: int) -> None:
    """A customer who paid 1,000.00 every month for five years: limit 12,000.00, owes nothing."""
    add_customer(db, customer_id, clean_history(), paid=clean_history())


class FakeScorer:
    """Stands in for the decision service: every customer gets the same score."""

    def __init__(self, score: float = 0.937):
        self.value = score

    def score(self, features: dict, decision_year: int) -> dict:
        return {"score": self.value, "model_version": "1", "reasons": [], "served_threshold": 0.8}


ML = replace(SETTINGS, service=FakeScorer())


def ask(db, customer_id: int, amount: int, method: str = "percentage", when=NEXT, credit_settings=ML):
    with db.sessions() as s:
        return request_credit(s, customer_id, *when, amount, method, credit_settings, today=TODAY)


def unpaid(db, customer_id: int) -> int:
    with db.sessions() as s:
        return s.scalar(select(func.sum(Due.due_cents - Due.paid_cents)).where(Due.customer_id == customer_id))


# --- the rules themselves ----------------------------------------------------------------------


def test_limit_is_a_multiple_of_yearly_payments_capped():
    assert policy.limit_from_paid(6_000_000, LimitRule()) == 1_200_000
    assert policy.limit_from_paid(6_000_000, LimitRule(multiple=2.5)) == 3_000_000
    assert policy.limit_from_paid(10**12, LimitRule(max_cents=50_000_000)) == 50_000_000
    assert Headroom(1_000, 1_500).available_cents == 0 and Headroom(1_000, 300).available_cents == 700


def _customer(total_due: int, total_paid: int) -> Customer:
    return Customer(id=1, name="x", total_due_cents=total_due, total_paid_cents=total_paid, bank_credit_cents=0)


def test_checks_run_in_order_and_stop_at_eligibility():
    scored = Decision("percentage", True, 80.0, 95.0, {})
    verdict = policy.apply(scored, _customer(100, 95), Headroom(10_000, 5), 9_000)
    assert [c.name for c in verdict.checks] == ["eligibility", "score", "limit"]
    assert verdict.decision.approved and verdict.failed == []
    over = policy.apply(scored, _customer(100, 95), Headroom(10_000, 5), 9_996)
    assert not over.decision.approved and over.failed == ["limit"]
    assert over.decision.reasons[0]["code"] == "over_limit" and over.decision.reasons[0]["available"] == "99.95"
    nothing_due = policy.apply(Decision("percentage", False, 80.0, None, {}), _customer(0, 0), Headroom(0, 0), 1)
    assert [c.name for c in nothing_due.checks] == ["eligibility"] and nothing_due.failed == ["eligibility"]
    low = policy.apply(Decision("ml", False, 0.8, 0.5, {}), _customer(100, 50), Headroom(10_000, 50), 1)
    assert low.failed == ["score"] and not low.decision.approved


# --- against the ledger (both engines) -------------------------------------------------------------


@pytest.mark.parametrize("method", ["percentage", "ml"])
def test_five_requests_of_a_million_approve_at_most_the_available_credit(db, method):
    add_clean(db, 101)
    for month in range(1, 6):
        d = ask(db, 101, 100_000_000, method, when=(TODAY.year + 1, month))
        assert not d.approved and [c["name"] for c in d.checks if not c["passed"]] == ["limit"]
        assert d.limit_cents == 1_200_000 and d.exposure_cents == 0
        assert "available credit of 12000.00" in d.reasons[0]["text"]
    assert unpaid(db, 101) == 0
    approved = [ask(db, 101, 500_000, method, when=(TODAY.year + 1, m)).approved for m in (1, 2, 3)]
    assert approved == [True, True, False]  # 5,000 + 5,000 fit in 12,000; a third does not
    with db.sessions() as s:
        summary = statements.summary(s, 101)
        assert summary.balance_cents == 1_000_000 <= 1_200_000
    check_invariants(db)


def test_exposure_counts_unpaid_past_dues_and_booked_months(db):
    history = clean_history()
    add_customer(db, 101, history | {(TODAY.year + 1, 6): 300_000},
                 paid={k: v for k, v in history.items() if k[0] != FIVE_YEARS[-1]})  # last year unpaid
    d = ask(db, 101, 1)
    assert d.exposure_cents == 1_200_000 + 300_000 == unpaid(db, 101)
    # What was paid in the last five years is 4 x 12,000.00: the limit is 9,600.00, already exceeded.
    assert d.limit_cents == 960_000 and not d.approved


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["percentage", "ml"]), st.integers(1, 2_000_000),
                          st.integers(1, 12)), min_size=1, max_size=8),
       st.integers(0, 600_000))
def test_no_sequence_of_requests_goes_beyond_the_limit(db, requests_, owed_before):
    customer_id = 1000 + next(_ids)
    history = clean_history()
    paid = dict(history)
    paid[(FIVE_YEARS[-1], 12)] = max(0, history[(FIVE_YEARS[-1], 12)] - owed_before)
    add_customer(db, customer_id, history, paid=paid)
    limit = policy.limit_from_paid(sum(paid.values()), LimitRule())
    for method, amount, month in requests_:
        before = unpaid(db, customer_id)
        d = ask(db, customer_id, amount, method, when=(TODAY.year + 1, month))
        assert d.exposure_cents == before  # exposure is exactly what the ledger says is unpaid
        assert d.approved == (before + amount <= limit)
        assert unpaid(db, customer_id) == before + (amount if d.approved else 0) <= max(limit, before)


_ids = count()


def test_concurrent_requests_never_spend_the_same_headroom(db):
    add_clean(db, 101)  # 12,000.00 available
    barrier = threading.Barrier(8)

    def one(n: int) -> bool:
        barrier.wait()
        return ask(db, 101, 300_000, "percentage" if n % 2 else "ml", when=(TODAY.year + 1, 1 + n)).approved

    with ThreadPoolExecutor(8) as pool:
        approved = list(pool.map(one, range(8)))
    assert sum(approved) == 4  # 4 x 3,000.00 = the whole 12,000.00
    with db.sessions() as s:
        total = s.scalar(select(func.sum(CreditDecision.amount_cents)).where(CreditDecision.approved))
        assert total == 1_200_000 == unpaid(db, 101)
    check_invariants(db)


def test_the_readme_worked_example(db):
    dues = clean_history()
    paid = dict(dues) | {(FIVE_YEARS[-1], m): 0 for m in (10, 11, 12)}  # 57,000.00 of 60,000.00
    add_customer(db, 101, dues, paid=paid)
    rejected = ask(db, 101, 1_000_000)
    assert not rejected.approved and (rejected.limit_cents, rejected.exposure_cents) == (1_140_000, 300_000)
    assert "more than your available credit of 8400.00" in rejected.reasons[0]["text"]
    approved = ask(db, 101, 800_000)
    assert approved.approved and unpaid(db, 101) == 1_100_000
    assert [ask(db, 101, 100_000_000, when=(TODAY.year + 1, m)).approved for m in range(1, 6)] == [False] * 5
