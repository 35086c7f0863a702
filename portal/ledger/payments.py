"""Paying dues (one payment or a group commit of many), previewing a payment and reversing one: locked transactions."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from contracts import allocation as rule
from portal import audit
from portal.db import core, write_transaction
from portal.ledger import bank_credit, booking, idempotency
from portal.ledger.errors import Conflict, InvalidRequest, LedgerError, NotFound
from portal.ledger.locks import lock_customer, lock_customers
from portal.mail import outbox
from portal.models import Allocation, Customer, Due, Payment, PaymentReversal, utcnow
from portal.money import format_cents

# Many payments in one statement; their ids come back in the order of the rows given.
_INSERT_PAYMENT = insert(Payment.__table__).returning(Payment.__table__.c.id, sort_by_parameter_order=True)


@dataclass
class PaymentResult:
    """Where one payment went."""

    payment_id: int
    customer_id: int
    year: int
    month: int
    amount_cents: int
    allocations: list[rule.Allocation]
    to_bank_credit_cents: int
    replayed: bool = False
    reversed_at: datetime | None = None  # a replay of a payment a manager has reversed since
    summary: Any = None  # what `pay`'s `summarize` read at the end of the transaction


    def to_record(self) -> dict:
        """Return a JSON-able form, as stored for idempotent replays."""
        return {"payment_id": self.payment_id, "customer_id": self.customer_id, "year": self.year,
                "month": self.month, "amount_cents": self.amount_cents,
                "allocations": [{"year": a.year, "month": a.month, "amount_cents": a.amount_cents}
                                for a in self.allocations],
                "to_bank_credit_cents": self.to_bank_credit_cents}

    @classmethod
    def from_record(cls, data: dict, reversed_at: datetime | None = None) -> PaymentResult:
        """Rebuild a result stored by `to_record`, marked as a replay (and as reversed, if it was)."""
        allocations = [rule.Allocation(**a) for a in data["allocations"]]
        return cls(**{**data, "allocations": allocations, "replayed": True, "reversed_at": reversed_at})


@dataclass
class Plan:
    """Where a payment would go now: the allocation rule over the customer's months, nothing written."""

    year: int
    month: int
    amount_cents: int
    month_owed_cents: int  # what the chosen month still owes (0: already paid)
    allocations: list[rule.Allocation]
    to_bank_credit_cents: int


@dataclass(frozen=True)
class Order:
    """One payment asked for: who pays how much from which month, and the request's Idempotency-Key."""

    customer_id: int
    year: int
    month: int
    amount_cents: int
    idempotency_key: str | None = None
    source: str = "api"
    max_cents: int | None = None  # the most one payment may be (MAX_PAYMENT_CENTS)

    def check(self) -> None:
        """Refuse an amount that is not positive or above the maximum (InvalidRequest), before any read."""
        if self.amount_cents <= 0:
            raise InvalidRequest("amount must be positive", "amount")
        if self.max_cents is not None and self.amount_cents > self.max_cents:
            raise InvalidRequest(f"amount must be at most {format_cents(self.max_cents)}", "amount")

    @cached_property  # read up to three times per payment (its key's check, a twin's, the stored answer)
    def request_hash(self) -> str:
        """Return the fingerprint that tells a retry of this payment from another payment with its key."""
        return idempotency.fingerprint(year=self.year, month=self.month, amount_cents=self.amount_cents)


def preview(session: Session, customer_id: int, year: int, month: int, amount_cents: int) -> Plan:
    """Say where a payment would go now, writing nothing (`pay_many` runs the same under the customers' locks)."""
    Order(customer_id, year, month, amount_cents).check()
    return _plan(session, customer_id, booking.payment_months(session, [(customer_id, year, month)])[customer_id],
                 year, month, amount_cents)


def _plan(session: Session, customer_id: int, months: list[rule.Outstanding], year: int, month: int,
          amount_cents: int) -> Plan:
    """Apply the allocation rule to a customer's owed months and chosen month (`booking.payment_months`)."""
    chosen = next((m for m in months if (m.year, m.month) == (year, month)), None)
    if chosen is None:
        known_year = session.scalar(select(Due.year).where(Due.customer_id == customer_id, Due.year == year)
                                    .limit(1))
        raise InvalidRequest(f"{year}-{month:02d} is not in the customer's schedule",
                             "year" if known_year is None else "month")
    # The chosen month, then every month that still owes: the rule visits them in its order.
    visit = [chosen, *(m for m in months if m is not chosen and m.owed_cents > 0)]
    allocations, to_bank = rule.allocate(amount_cents, (year, month), visit)
    return Plan(year, month, amount_cents, chosen.owed_cents, allocations, to_bank)


def pay(session: Session, customer_id: int, year: int, month: int, amount_cents: int,
        idempotency_key: str | None = None, source: str = "api", max_cents: int | None = None,
        summarize: Callable[[Session, list[int]], dict[int, Any]] | None = None) -> PaymentResult:
    """Record one payment and allocate it by the allocation rule, exactly once per key (`pay_many` of one)."""
    outcome, = pay_many(session, [Order(customer_id, year, month, amount_cents, idempotency_key, source, max_cents)],
                        summarize)
    if isinstance(outcome, LedgerError):
        raise outcome
    return outcome


def pay_many(session: Session, orders: list[Order],
             summarize: Callable[[Session, list[int]], dict[int, Any]] | None = None
             ) -> list[PaymentResult | LedgerError]:
    """Record payments in one transaction (a group commit), each allocated by the rule, exactly once per key.

    Each order's outcome is its result or the LedgerError that refused it: nothing is
    written for a refused order, and the others are not affected. One customer's orders
    are applied in the order given, each seeing the months the previous ones paid, as if
    they had come one after another. The customers are locked in id order, in one
    statement, before anything is read; every read and write is one statement for all
    the orders. `summarize(session, customer_ids)`, if given, runs last in the same
    transaction (for replays too): each result's ``summary`` is its customer's entry.
    """
    outcomes: list[PaymentResult | LedgerError | None] = [None] * len(orders)
    for i, order in enumerate(orders):
        try:
            order.check()
        except LedgerError as refused:
            outcomes[i] = refused
    if all(outcomes):
        return outcomes
    with write_transaction(session):
        customers = lock_customers(session, [o.customer_id for o, out in zip(orders, outcomes) if out is None])
        todo = []
        for i, order in enumerate(orders):
            if outcomes[i] is None and order.customer_id not in customers:
                outcomes[i] = NotFound("no such customer", "customer_id")
            elif outcomes[i] is None:
                todo.append(i)
        # Statements of their own, after the lock: ones joined to the locking SELECT would keep the snapshot
        # taken before waiting (PostgreSQL rechecks only the locked rows) and miss the answer or the months a
        # racing writer committed meanwhile.
        keyed = [(orders[i].customer_id, orders[i].idempotency_key) for i in todo if orders[i].idempotency_key]
        answered = idempotency.first_answers(session, "payment", keyed) if keyed else {}
        months = booking.payment_months(session, [(orders[i].customer_id, orders[i].year, orders[i].month)
                                                  for i in todo]) if todo else {}
        plans: dict[int, Plan] = {}
        for i in todo:
            order = orders[i]
            key = (order.customer_id, order.idempotency_key)
            try:
                if order.idempotency_key is not None and idempotency.answer(
                        answered.get(key), order.request_hash) is not None:
                    continue  # a replay (409 for another request): its first answer is read below
                plans[i] = plan = _plan(session, order.customer_id, months[order.customer_id], order.year,
                                        order.month, order.amount_cents)
            except LedgerError as refused:
                outcomes[i] = refused
                continue
            months[order.customer_id] = _after(months[order.customer_id], plan.allocations)
            if order.idempotency_key is not None:  # a twin later in this batch replays this one (answer below)
                answered[key] = (order.request_hash, "paid in this batch")
        results = _record(session, [orders[i] for i in plans], customers, list(plans.values()))
        for i, result in zip(plans, results):
            outcomes[i] = result
            if orders[i].idempotency_key is not None:
                answered[orders[i].customer_id, orders[i].idempotency_key] = (orders[i].request_hash,
                                                                              result.to_record())
        replays = [i for i in todo if outcomes[i] is None]
        if replays:
            first = {i: answered[orders[i].customer_id, orders[i].idempotency_key][1] for i in replays}
            reversed_at = dict(session.execute(select(PaymentReversal.payment_id, PaymentReversal.created_at).where(
                PaymentReversal.payment_id.in_({f["payment_id"] for f in first.values()}))).all())
            for i, record in first.items():
                outcomes[i] = PaymentResult.from_record(record, reversed_at.get(record["payment_id"]))
        if summarize is not None:
            done = [r for r in outcomes if isinstance(r, PaymentResult)]
            session.flush()  # the summary reads the months and totals just written
            summaries = summarize(session, list(dict.fromkeys(r.customer_id for r in done))) if done else {}
            for result in done:
                result.summary = summaries[result.customer_id]
    return outcomes


def _after(months: list[rule.Outstanding], allocations: list[rule.Allocation]) -> list[rule.Outstanding]:
    """Return the months as they owe after `allocations` were paid to them (the months not paid, unchanged)."""
    paid = {(a.year, a.month): a.amount_cents for a in allocations}
    return [replace(m, owed_cents=m.owed_cents - paid[m.year, m.month]) if (m.year, m.month) in paid else m
            for m in months]


def _record(session: Session, orders: list[Order], customers: dict[int, Customer],
            plans: list[Plan]) -> list[PaymentResult]:
    """Write planned payments: their rows, allocations, totals, emails and first answers, a statement each."""
    if not orders:
        return []
    now = utcnow()
    payment_ids = core(session).execute(_INSERT_PAYMENT, [
        {"customer_id": o.customer_id, "year": o.year, "month": o.month, "amount_cents": o.amount_cents,
         "to_bank_credit_cents": p.to_bank_credit_cents, "source": o.source,
         "idempotency_key": o.idempotency_key, "created_at": now} for o, p in zip(orders, plans)]).scalars().all()
    results, emails, answers = [], [], []
    totals = {cid: (c.total_due_cents - c.total_paid_cents, c.bank_credit_cents) for cid, c in customers.items()}
    for order, plan, payment_id in zip(orders, plans, payment_ids):
        result = PaymentResult(payment_id, order.customer_id, order.year, order.month, order.amount_cents,
                               plan.allocations, plan.to_bank_credit_cents)
        results.append(result)
        balance, bank = totals[order.customer_id]  # this customer's totals after this payment, for its email
        totals[order.customer_id] = balance, bank = (balance - sum(a.amount_cents for a in plan.allocations),
                                                     bank + plan.to_bank_credit_cents)
        emails.append((customers[order.customer_id], "payment_received",
                       outbox.payment_context(result, balance, bank)))
        if order.idempotency_key is not None:
            answers.append((order.customer_id, order.idempotency_key, order.request_hash, result.to_record()))
    booking.book_many(session, [booking.Entry(customers[r.customer_id], r.allocations, payment_id=r.payment_id,
                                              bank_credit_cents=r.to_bank_credit_cents) for r in results])
    outbox.enqueue_many(session, emails)
    idempotency.remember_many(session, "payment", answers)
    return results


def reverse_payment(session: Session, payment_id: int, manager_id: int, reason: str) -> PaymentReversal:
    """Undo a payment's allocations and bank credit with a reversal row (never an edit).

    The months it paid are owed again and its bank credit is taken away. If that
    bank credit had already paid dues, those applications are undone too, newest
    first (``bank_credit.take_back``). Bank credit the customer still holds then
    settles what is owed, oldest first, so nothing is owed while bank credit remains.
    """
    if not reason or not reason.strip():
        raise InvalidRequest("a reason is required", "reason")
    with write_transaction(session):
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise NotFound("no such payment", "payment_id")
        customer = lock_customer(session, payment.customer_id)
        already = session.scalars(
            select(PaymentReversal).where(PaymentReversal.payment_id == payment_id)
        ).one_or_none()
        if already is not None:
            raise Conflict("payment is already reversed", "payment_id")
        reversal = PaymentReversal(payment_id=payment_id, manager_id=manager_id,
                                   reason=reason.strip()[:500], created_at=utcnow())
        session.add(reversal)
        session.flush()
        booking.unbook(session, customer, list(session.scalars(
            select(Allocation).where(Allocation.payment_id == payment_id))))
        bank_credit.take_back(session, customer, payment.to_bank_credit_cents, reversal.id)
        bank_credit.settle(session, customer, payment_reversal_id=reversal.id)
        audit.record(session, manager_id, "payment.reverse", "payment", payment_id, new={"reason": reversal.reason})
    return reversal
