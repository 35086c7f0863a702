"""Bank credit: what a customer paid beyond every due, used the moment something is owed, or refunded.

The allocation rule (``contracts.allocation``) puts money to bank credit only
when every month is paid, so a customer never holds bank credit while owing.
When a due appears later (an approved credit, or months a reversal made owed
again), ``settle`` applies the bank credit to the months owed, oldest first,
in the same transaction: an ``applied`` ``BankCreditEntry`` with ordinary
``Allocation`` rows. A manager may ``refund`` bank credit (a ``refund`` entry
with who, when and why). The caller holds the customer's lock.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from contracts import allocation as rule
from portal import audit
from portal.db import write_transaction
from portal.ledger import booking
from portal.ledger.errors import Conflict, InvalidRequest
from portal.ledger.locks import lock_customer
from portal.mail import outbox
from portal.models import Allocation, BankCreditEntry, Customer, utcnow
from portal.money import format_cents


def settle(session: Session, customer: Customer, *, credit_decision_id: int | None = None,
           payment_reversal_id: int | None = None) -> BankCreditEntry | None:
    """Apply the customer's bank credit to the months still owed, oldest first; return the entry, if any moved."""
    if customer.bank_credit_cents <= 0:
        return None
    allocations = rule.settle(customer.bank_credit_cents, booking.owed_months(session, customer.id))
    if not allocations:
        return None
    entry = BankCreditEntry(customer_id=customer.id, kind="applied",
                            amount_cents=sum(a.amount_cents for a in allocations),
                            credit_decision_id=credit_decision_id, payment_reversal_id=payment_reversal_id,
                            created_at=utcnow())
    session.add(entry)
    session.flush()
    booking.book(session, customer, allocations, bank_credit_entry_id=entry.id)
    customer.bank_credit_cents -= entry.amount_cents
    return entry


def live_applications(session: Session, customer_id: int) -> list[BankCreditEntry]:
    """Return the customer's applications of bank credit that no reversal has undone, newest first."""
    undo = aliased(BankCreditEntry)
    return list(session.scalars(
        select(BankCreditEntry)
        .outerjoin(undo, undo.undoes_entry_id == BankCreditEntry.id)
        .where(BankCreditEntry.customer_id == customer_id, BankCreditEntry.kind == "applied", undo.id.is_(None))
        .order_by(BankCreditEntry.id.desc())
    ))


def take_back(session: Session, customer: Customer, cents: int, payment_reversal_id: int) -> None:
    """Take `cents` of bank credit away (a reversed payment's), undoing applications it paid for, newest first.

    An application is undone whole (its months are owed again, its amount is
    bank credit again) until the bank credit holds `cents`. What a refund paid
    out cannot be taken back here: that is a Conflict, and nothing changes.
    """
    for entry in live_applications(session, customer.id):
        if customer.bank_credit_cents >= cents:
            break
        rows = list(session.scalars(select(Allocation).where(Allocation.bank_credit_entry_id == entry.id)))
        booking.unbook(session, customer, rows)
        customer.bank_credit_cents += entry.amount_cents
        session.add(BankCreditEntry(customer_id=customer.id, kind="unapplied", amount_cents=entry.amount_cents,
                                    undoes_entry_id=entry.id, payment_reversal_id=payment_reversal_id,
                                    created_at=utcnow()))
    if customer.bank_credit_cents < cents:
        raise Conflict(f"{format_cents(cents - customer.bank_credit_cents)} of this payment's bank credit was "
                       "refunded to the customer; it cannot be reversed here", "payment_id")
    customer.bank_credit_cents -= cents


def settle_everyone(session: Session) -> int:
    """Settle every customer who holds bank credit while owing (a ledger from before this rule); return how many."""
    ids = list(session.scalars(select(Customer.id).where(Customer.bank_credit_cents > 0,
                                                         Customer.total_paid_cents < Customer.total_due_cents)))
    for customer_id in ids:
        with write_transaction(session):
            settle(session, lock_customer(session, customer_id))
    return len(ids)


def refund(session: Session, customer_id: int, manager_id: int, amount_cents: int, reason: str) -> BankCreditEntry:
    """Pay bank credit back to the customer: a refund entry with who, when and why (never an edit)."""
    if not reason or not reason.strip():
        raise InvalidRequest("a reason is required", "reason")
    if amount_cents <= 0:
        raise InvalidRequest("amount must be positive", "amount")
    with write_transaction(session):
        customer = lock_customer(session, customer_id)
        if amount_cents > customer.bank_credit_cents:
            held = format_cents(customer.bank_credit_cents)
            raise InvalidRequest(f"amount must be at most the bank credit of {held}", "amount")
        entry = BankCreditEntry(customer_id=customer_id, kind="refund", amount_cents=amount_cents,
                                manager_id=manager_id, reason=reason.strip()[:500], created_at=utcnow())
        session.add(entry)
        customer.bank_credit_cents -= amount_cents
        session.flush()  # the entry's id, for the audit row
        audit.record(session, manager_id, "bank_credit.refund", "customer", customer_id,
                     new={"amount": format_cents(amount_cents), "reason": entry.reason, "entry_id": entry.id})
        outbox.enqueue(session, customer, "bank_credit_refunded", outbox.refund_context(amount_cents, customer,
                                                                                        entry.reason))
    return entry
