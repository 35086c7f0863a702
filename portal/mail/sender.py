"""The sender: delivers the outbox, marks each message sent once, retries with backoff, gives up after a bound.

One message at a time, in three steps:

1. **claim** (a short transaction): the oldest due ``pending`` row, locked with ``SELECT ... FOR
   UPDATE SKIP LOCKED`` on PostgreSQL (two senders never take the same row) - on SQLite the
   transaction is ``BEGIN IMMEDIATE``, which serialises the claims of any number of senders.
   The claim counts the attempt and moves ``next_attempt_at`` a lease (``MAIL_LEASE_SECONDS``)
   ahead, so no other sender takes it while it is being sent;
2. **send** (no transaction open): render, build, hand it to the SMTP server (or write the file);
3. **mark** (a short transaction): ``sent``; or, after an error, the next attempt after an
   exponential backoff (``MAIL_BACKOFF_SECONDS`` x 2^(attempts-1), at most ``MAIL_BACKOFF_MAX_SECONDS``),
   or ``failed`` with the error once ``MAIL_MAX_ATTEMPTS`` tries are spent or the server refused
   for good (5xx for the recipient or the message, or an address that does not parse).

A sender killed between 2 and 3 leaves that one row claimed; when the lease ends it is sent
again with the same Message-ID (the one duplicate a client can drop). Nothing else is sent twice:
a message is marked sent before the next one is claimed.
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from contracts.settings import var_dir
from portal.db import get_db, write_transaction
from portal.mail import message, render, transport
from portal.models import OutboxMessage, utcnow

log = logging.getLogger("portal.mail")
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Policy:
    """How often and how patiently the sender tries."""

    max_attempts: int = 8
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    lease_seconds: float = 300.0

    @classmethod
    def from_config(cls, config) -> Policy:
        """Read the MAIL_* settings."""
        return cls(config["MAIL_MAX_ATTEMPTS"], config["MAIL_BACKOFF_SECONDS"], config["MAIL_BACKOFF_MAX_SECONDS"],
                   config["MAIL_LEASE_SECONDS"])

    def backoff(self, attempts: int) -> float:
        """Return the seconds to wait after the `attempts`-th failed try."""
        return min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))


@dataclass
class BatchResult:
    """What one pass over the due messages did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def claim(session: Session, policy: Policy, due_by: datetime | None = None) -> OutboxMessage | None:
    """Take the oldest message due by `due_by` (default now) for one lease and count the attempt; None if none."""
    now = utcnow()
    with write_transaction(session):
        row = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= (due_by or now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)  # the row as it is now, not as this session last saw it
        ).first()
        if row is None:
            return None
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=policy.lease_seconds)
    return row


def mark_sent(session: Session, row: OutboxMessage) -> None:
    """Mark a claimed message sent (once: a row already sent or failed is left alone)."""
    with write_transaction(session):
        session.execute(update(OutboxMessage)
                        .where(OutboxMessage.id == row.id, OutboxMessage.status == "pending")
                        .values(status="sent", sent_at=utcnow(), last_error=None))


def mark_failed(session: Session, row: OutboxMessage, error: Exception, policy: Policy) -> str:
    """Record a failed try: the next attempt after a backoff, or `failed` for good; return the new status."""
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
    final = transport.is_permanent(error) or row.attempts >= policy.max_attempts
    values = {"last_error": text}
    if final:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = utcnow() + timedelta(seconds=policy.backoff(row.attempts))
    with write_transaction(session):
        session.execute(update(OutboxMessage)
                        .where(OutboxMessage.id == row.id, OutboxMessage.status == "pending").values(**values))
    return "failed" if final else "pending"


def send_due(session: Session, via, policy: Policy, mail_from: str, stop: threading.Event | None = None) -> BatchResult:
    """Send the messages due now (until `stop`), one claim-send-mark at a time (needs an app context).

    A message that fails is not tried again in the same pass; an error that is not about
    the message (the server is down, refuses our login or TLS) ends the pass.
    """
    result = BatchResult()
    sender_address = parseaddr(mail_from)[1]
    started = utcnow()
    try:
        while not (stop and stop.is_set()):
            row = claim(session, policy, due_by=started)
            if row is None:
                break
            try:
                email = message.build(row, render.render(row), mail_from)
                via.send(email, sender_address, row.recipient)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
                status = mark_failed(session, row, exc, policy)
                result.errors.append(f"#{row.id}: {exc}")
                if status == "failed":
                    result.failed += 1
                else:
                    result.retrying += 1
                log.warning("outbox #%s (%s) attempt %s failed%s: %s", row.id, row.kind, row.attempts,
                            " for good" if status == "failed" else "", exc)
                if not transport.is_message_error(exc):
                    break
                continue
            mark_sent(session, row)
            result.sent += 1
    finally:
        via.close()
    return result


def run(stop: threading.Event | None = None, once: bool = False) -> BatchResult:
    """Deliver the outbox of the current app until `stop` is set (or one pass with `once`)."""
    config = current_app.config
    policy = Policy.from_config(config)
    stop = stop or threading.Event()
    total = BatchResult()
    while True:
        via = transport.from_config(config, var_dir())
        try:
            with get_db().sessions() as session:
                batch = send_due(session, via, policy, config["MAIL_FROM"], stop=stop)
        except OperationalError as exc:  # the database is away: try again after the poll interval
            log.warning("outbox: database unavailable: %s", str(exc).splitlines()[0][:200])
            batch = BatchResult()
        total.sent, total.retrying, total.failed = (total.sent + batch.sent, total.retrying + batch.retrying,
                                                    total.failed + batch.failed)
        if batch.sent or batch.retrying or batch.failed:
            log.info("outbox: %s sent, %s to retry, %s failed", batch.sent, batch.retrying, batch.failed)
        if once or stop.wait(config["MAIL_POLL_SECONDS"]):
            return total


def stop_on_signals() -> threading.Event:
    """Return an event that SIGTERM and SIGINT set, so the sender finishes the message in hand and exits."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop

