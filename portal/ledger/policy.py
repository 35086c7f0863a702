"""The credit policy: one set of checks for both methods, in order - eligibility, score, limit.

* **eligibility**: the customer has a repayment record to judge (something was
  ever due). A customer without one is rejected with that reason; nothing else runs.
* **score**: the method's own verdict - the percentage rule (paid / due x 100 >=
  its threshold) or the model's score against the portal's own threshold.
* **limit**: ``exposure + amount <= limit``. The *limit* comes from the
  repayment record: ``CREDIT_LIMIT_MULTIPLE`` x what the customer actually paid per
  year over the last five complete years (their total paid in those years / 5),
  capped at ``CREDIT_LIMIT_MAX_CENTS`` (``LimitRule``). The *exposure* is everything still owed: unpaid past
  dues and dues already booked for this and later months, approved credit
  included (the customer's running balance).

A request is approved only when every check passes. Each decision stores the
checks that ran (name, passed, detail), the limit and the exposure. The caller
holds the customer's lock, so two requests never spend the same headroom.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.ledger.decision import Decision
from portal.models import Customer, Due
from portal.money import format_cents

HISTORY_YEARS = 5


@dataclass(frozen=True)
class LimitRule:
    """How a customer's credit limit follows from their repayment record."""

    multiple: float = 1.0  # times the average yearly amount paid over the last five complete years
    max_cents: int = 100_000_000  # never more than this (1,000,000.00)

    @classmethod
    def from_config(cls, config: Mapping) -> LimitRule:
        """Read the rule from the portal's settings (CREDIT_LIMIT_MULTIPLE, CREDIT_LIMIT_MAX_CENTS)."""
        return cls(float(config["CREDIT_LIMIT_MULTIPLE"]), int(config["CREDIT_LIMIT_MAX_CENTS"]))


@dataclass(frozen=True)
class Headroom:
    """A customer's limit, what they owe now, and what is left to borrow."""

    limit_cents: int
    exposure_cents: int

    @property
    def available_cents(self) -> int:
        """Return what the customer may still borrow (never negative)."""
        return max(0, self.limit_cents - self.exposure_cents)


@dataclass(frozen=True)
class Check:
    """One step of the policy: its name, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    detail: str

    def to_record(self) -> dict:
        """Return the check as stored with the decision."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class Verdict:
    """The policy's decision: the method's decision with every check applied."""

    decision: Decision
    headroom: Headroom
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        """Return the names of the checks that failed."""
        return [c.name for c in self.checks if not c.passed]


def window(today: date) -> range:
    """Return the years whose payments count towards the credit limit: the last five complete years."""
    return range(today.year - HISTORY_YEARS, today.year)


def paid_in_window(session: Session, customer_ids: list[int], today: date) -> dict[int, int]:
    """Return, per customer, what was paid towards the months of the last five complete years."""
    if not customer_ids:
        return {}
    years = window(today)
    rows = session.execute(
        select(Due.customer_id, func.coalesce(func.sum(Due.paid_cents), 0))
        .where(Due.customer_id.in_(customer_ids), Due.year >= years.start, Due.year < years.stop)
        .group_by(Due.customer_id)
    ).all()
    paid = dict.fromkeys(customer_ids, 0)
    paid.update({cid: int(total) for cid, total in rows})
    return paid


def limit_from_paid(paid_cents: int, rule: LimitRule) -> int:
    """Return the credit limit for what a customer paid over the last five complete years."""
    return min(rule.max_cents, int(rule.multiple * paid_cents / HISTORY_YEARS))


def headrooms(session: Session, customers: list[Customer], today: date, rule: LimitRule) -> dict[int, Headroom]:
    """Return each customer's limit, exposure and available credit (one query for all of them)."""
    paid = paid_in_window(session, [c.id for c in customers], today)
    return {c.id: Headroom(limit_from_paid(paid[c.id], rule), exposure(c)) for c in customers}


def exposure(customer: Customer) -> int:
    """Return everything the customer still owes: all dues, past and booked ahead, minus what is paid."""
    return customer.total_due_cents - customer.total_paid_cents


def headroom_from_years(customer: Customer, paid_by_year: dict[int, int], today: date, rule: LimitRule) -> Headroom:
    """Return one customer's headroom from what they paid per year (`statements.paid_by_year_many`), with no query."""
    paid = sum(cents for year, cents in paid_by_year.items() if year in window(today))
    return Headroom(limit_from_paid(paid, rule), exposure(customer))


def apply(decision: Decision, customer: Customer, headroom: Headroom, amount_cents: int) -> Verdict:
    """Run eligibility, then the method's score, then the limit; approve only if all pass."""
    verdict = Verdict(decision, headroom)
    eligible = customer.total_due_cents > 0
    verdict.checks.append(Check("eligibility", eligible, "has a repayment record" if eligible
                                else "nothing has ever been due: there is no repayment record to judge"))
    if eligible:
        verdict.checks.append(Check("score", decision.approved, _score_detail(decision)))
        fits = headroom.exposure_cents + amount_cents <= headroom.limit_cents
        verdict.checks.append(Check("limit", fits, (
            f"owes {format_cents(headroom.exposure_cents)} + asks {format_cents(amount_cents)} "
            f"{'<=' if fits else '>'} limit {format_cents(headroom.limit_cents)}; "
            f"available {format_cents(headroom.available_cents)}")))
    approved = all(c.passed for c in verdict.checks)
    reasons = list(decision.reasons)
    if eligible and not verdict.checks[-1].passed:
        over = {"code": "over_limit", "available": format_cents(headroom.available_cents), "text": (
            f"The amount is more than your available credit of {format_cents(headroom.available_cents)} "
            f"(limit {format_cents(headroom.limit_cents)}, of which {format_cents(headroom.exposure_cents)} "
            "is still owed)")}
        # The first reason is the one to act on: the limit when the score passed, else the score.
        reasons = [over, *reasons] if decision.approved else [*reasons, over]
    verdict.decision = replace(decision, approved=approved, reasons=reasons)
    return verdict


def _score_detail(decision: Decision) -> str:
    if decision.score is None:
        return "no score"
    if decision.method == "percentage":
        return f"paid {decision.score:.2f}% {'>=' if decision.approved else '<'} {decision.threshold:g}%"
    return f"score {decision.score:.3f} {'>=' if decision.approved else '<'} {decision.threshold:g}"
