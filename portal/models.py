"""The ledger's tables.

Design overview
---------------
* Money is an integer number of minor units (``*_cents`` columns); CHECK
  constraints keep every amount non-negative and every month's ``paid_cents``
  within its ``due_cents``, so a bug in Python cannot store an impossible ledger.
* ``Due`` is the schedule: one row per (customer, year, month). ``paid_cents``
  is ``opening_paid_cents`` (history imported from a bank's export, paid
  before this ledger existed) plus the live allocations to that month, kept in
  the same transaction as the allocation rows so a dashboard never adds them up.
* ``Payment`` rows are immutable. Where a payment went is in ``Allocation`` rows
  and ``Payment.to_bank_credit_cents``. A correction is a ``PaymentReversal``
  row, never an edit or a delete.
* Bank credit moves otherwise only by ``BankCreditEntry`` rows: bank credit
  applied to dues (with its own ``Allocation`` rows), an application undone by
  a reversal, or a manager's refund. So for every customer
  ``bank_credit = opening_bank_credit + live payments' to_bank_credit
  - applied + undone - refunded``.
* ``Customer.total_due_cents`` / ``total_paid_cents`` / ``bank_credit_cents``
  are running totals kept by the same ledger functions, so one customer's
  summary costs the same with 1,000 or 100,000 customers.
* ``year_percentage`` is a SQL view (see the migrations): the model's features.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Ids fit in a JSON-safe integer (2**53 - 1), so every client reads them exactly, and in every BIGINT.
MAX_ID = 2**53 - 1

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A moment in UTC, read back with its offset on every engine (SQLite stores none: it is UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        """Return the stored moment as an aware UTC datetime."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PersonMixin:
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    age: Mapped[int | None] = mapped_column(SmallInteger)
    phone: Mapped[str | None] = mapped_column(String(32))
    # NULL means "cannot log in" (e.g. imported from a bank's export without passwords).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # False: deactivated by a manager - cannot log in, every record kept, can be reactivated.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Customer(PersonMixin, Base):
    __tablename__ = "customers"
    total_due_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    bank_credit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bank credit imported with the customer (held before this ledger existed).
    opening_bank_credit_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The language of the customer's emails and pages (portal.extensions.LANGUAGES); the switcher sets it.
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    __table_args__ = (
        CheckConstraint("total_due_cents >= 0", name="due_nonneg"),
        CheckConstraint("total_paid_cents >= 0 AND total_paid_cents <= total_due_cents", name="paid_within_due"),
        CheckConstraint("bank_credit_cents >= 0", name="bank_credit_nonneg"),
        CheckConstraint("age IS NULL OR (age >= 18 AND age <= 120)", name="age_range"),
        Index("ix_customers_name", "name"),
    )


class Manager(PersonMixin, Base):
    __tablename__ = "managers"
    # The pages' language the manager chose (portal.extensions.LANGUAGES); NULL: the browser's Accept-Language.
    language: Mapped[str | None] = mapped_column(String(16))


class Due(Base):
    """What a customer owes for one month, and how much of it is paid."""

    __tablename__ = "dues"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    month: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    due_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # Paid before this ledger existed (imported history): not backed by allocations.
    opening_paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (
        CheckConstraint("month >= 1 AND month <= 12", name="month_range"),
        CheckConstraint("due_cents >= 0", name="due_nonneg"),
        CheckConstraint("paid_cents >= 0 AND paid_cents <= due_cents", name="paid_within_due"),
        CheckConstraint("opening_paid_cents >= 0 AND opening_paid_cents <= paid_cents", name="opening_within_paid"),
    )


class Payment(Base):
    """Money received from a customer: immutable once written."""

    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    month: Mapped[int] = mapped_column(SmallInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    to_bank_credit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[str] = mapped_column(String(16), default="api")  # api | web | import
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_pos"),
        CheckConstraint("to_bank_credit_cents >= 0 AND to_bank_credit_cents <= amount_cents",
                        name="bank_credit_within_amount"),
        CheckConstraint("month >= 1 AND month <= 12", name="month_range"),
        Index("ix_payments_customer_created", "customer_id", "created_at"),
    )


class Allocation(Base):
    """The part of a payment, or of bank credit applied to dues, that went to one month."""

    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # Exactly one source: a payment, or a bank credit application (a BankCreditEntry of kind "applied").
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    bank_credit_entry_id: Mapped[int | None] = mapped_column(ForeignKey("bank_credit_entries.id"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    year: Mapped[int] = mapped_column(SmallInteger)
    month: Mapped[int] = mapped_column(SmallInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_pos"),
        CheckConstraint("(payment_id IS NULL) <> (bank_credit_entry_id IS NULL)", name="one_source"),
        Index("ix_allocations_bank_credit_entry", "bank_credit_entry_id"),
        ForeignKeyConstraint(
            ["customer_id", "year", "month"], ["dues.customer_id", "dues.year", "dues.month"],
            name="fk_allocations_due",
        ),
        Index("ix_allocations_payment", "payment_id"),
        Index("ix_allocations_due", "customer_id", "year", "month"),
    )


class PaymentReversal(Base):
    """A manager's correction of a payment: its allocations and bank credit undone."""

    __tablename__ = "payment_reversals"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    manager_id: Mapped[int] = mapped_column(ForeignKey("managers.id"))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BankCreditEntry(Base):
    """A movement of bank credit other than a payment's overflow: never edited, never deleted.

    * ``applied``: bank credit that settled dues the moment they were owed (a new
      due, or months a reversal made owed again); where it went is in its
      ``Allocation`` rows.
    * ``unapplied``: an application taken back whole by a payment reversal (the
      reversed payment's bank credit had paid those months); ``undoes_entry_id``.
    * ``refund``: bank credit paid back to the customer by a manager, with why.
    """

    __tablename__ = "bank_credit_entries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))  # applied | unapplied | refund
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # What caused it: the approved credit whose due it settled, or the reversal that moved it.
    credit_decision_id: Mapped[int | None] = mapped_column(ForeignKey("credit_decisions.id"))
    payment_reversal_id: Mapped[int | None] = mapped_column(ForeignKey("payment_reversals.id"))
    undoes_entry_id: Mapped[int | None] = mapped_column(ForeignKey("bank_credit_entries.id"), unique=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_pos"),
        CheckConstraint("kind IN ('applied', 'unapplied', 'refund')", name="kind_known"),
        CheckConstraint("kind <> 'unapplied' OR undoes_entry_id IS NOT NULL", name="unapplied_names_entry"),
        CheckConstraint("kind <> 'refund' OR (manager_id IS NOT NULL AND reason IS NOT NULL)",
                        name="refund_says_who_and_why"),
        Index("ix_bank_credit_entries_customer_created", "customer_id", "created_at"),
    )


class CreditDecision(Base):
    """One credit request and its decision, stored so it can be audited and replayed."""

    __tablename__ = "credit_decisions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    month: Mapped[int] = mapped_column(SmallInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))  # percentage | ml
    approved: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    inputs: Mapped[dict] = mapped_column(JSON)
    reasons: Mapped[list] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(32))
    # The credit policy's view when deciding: the customer's limit, what they owed, and each check
    # that ran ({name, passed, detail}). NULL for decisions made before the policy existed.
    limit_cents: Mapped[int | None] = mapped_column(BigInteger)
    exposure_cents: Mapped[int | None] = mapped_column(BigInteger)
    checks: Mapped[list | None] = mapped_column(JSON)
    # What the challenger said in the shadow of the champion (ML decisions while one exists; else NULL):
    # its version, its score, and that score judged with this decision's threshold.
    shadow_version: Mapped[str | None] = mapped_column(String(32))
    shadow_score: Mapped[float | None] = mapped_column(Float)
    shadow_approved: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_pos"),
        CheckConstraint("month >= 1 AND month <= 12", name="month_range"),
        Index("ix_credit_decisions_customer_created", "customer_id", "created_at"),
        Index("ix_credit_decisions_created", "created_at"),
    )


class IdempotencyRecord(Base):
    """The first answer to a request made with an Idempotency-Key."""

    __tablename__ = "idempotency_records"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A bearer token's server-side record, so that logout can revoke it."""

    __tablename__ = "api_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Outcome(Base):
    """The observed outcome of a customer's credit (the model's label)."""

    __tablename__ = "outcomes"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    result: Mapped[int] = mapped_column(SmallInteger)
    # Known only for simulated data: the probability the label was drawn from.
    true_probability: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (CheckConstraint("result IN (0, 1)", name="result_binary"),)



class AuditEvent(Base):
    """One manager action, written in the same transaction as the change: who, when, what, old and new values."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_role: Mapped[str] = mapped_column(String(16))  # manager | system
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(48))  # e.g. customer.contact, manager.deactivate
    target_type: Mapped[str] = mapped_column(String(16))  # customer | manager | payment | mail
    target_id: Mapped[int] = mapped_column(BigInteger)
    old: Mapped[dict | None] = mapped_column(JSON)
    new: Mapped[dict | None] = mapped_column(JSON)
    __table_args__ = (Index("ix_audit_events_created", "created_at"),
                      Index("ix_audit_events_target", "target_type", "target_id"))


class OutboxMessage(Base):
    """An email to send, written in the same transaction as the event it tells of (the outbox pattern).

    ``status``: pending -> sent, or failed after MAIL_MAX_ATTEMPTS tries (``last_error``
    says why). ``next_attempt_at`` is when a sender may take it: a claim moves it a lease
    ahead, so a sender that dies mid-send leaves the message to be taken again later.
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The Message-ID header, fixed when the event happens: a resend carries the same one.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    recipient: Mapped[str] = mapped_column(String(254))
    recipient_name: Mapped[str] = mapped_column(String(120))
    language: Mapped[str] = mapped_column(String(16))
    context: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_known"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )
