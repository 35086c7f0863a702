"""Email through the outbox: enqueued with its event, delivered over real SMTP (aiosmtpd) once, retried, given up on.

Every test runs on SQLite and PostgreSQL. The SMTP servers are real (aiosmtpd, in-process):
one that accepts, one that refuses (for good and for now), one that drops the connection,
one behind STARTTLS with a login; and the sender is killed with SIGKILL mid-batch.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.auth import accounts
from portal.credit_requests import request_credit
from portal.ledger import payments
from portal.ledger.errors import InvalidRequest
from portal.mail import outbox, sender, transport
from portal.models import AuditEvent, Customer, OutboxMessage
from testing.smtp import Handler, SmtpServer, self_signed
from tests.factories import SETTINGS, login

ROOT = Path(__file__).resolve().parent.parent
NEXT_YEAR = date.today().year + 1


def rows(db) -> list[OutboxMessage]:
    with db.sessions() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def send_all(app, **config) -> sender.BatchResult:
    """One pass of the sender over what is due, with `config` overriding the app's settings."""
    app.config.update(config)
    with app.app_context():
        return sender.run(once=True)


def queue_payments(db, count: int, customer_id: int = 101) -> None:
    with db.sessions() as s:
        for i in range(count):
            payments.pay(s, customer_id, 2024, 1 + i % 12, 100 + i, idempotency_key=f"k{i}")


@pytest.fixture
def fast(app):
    """No waiting between tries."""
    app.config.update(MAIL_BACKOFF_SECONDS=0, MAIL_BACKOFF_MAX_SECONDS=0, MAIL_POLL_SECONDS=0.05)
    return app


# --------------------------------------------------------------------------- enqueued with the event

def test_each_event_enqueues_one_email_in_its_transaction(app, client, ledger, manager):
    with ledger.sessions() as s:
        paid = payments.pay(s, 101, 2024, 12, 25_000, idempotency_key="once")
        payments.pay(s, 101, 2024, 12, 25_000, idempotency_key="once")  # a retry: no second email
        with pytest.raises(InvalidRequest):
            payments.pay(s, 101, 1999, 1, 100)  # refused: nothing written, no email
        decision = request_credit(s, 101, NEXT_YEAR, 1, 100, "percentage", SETTINGS, idempotency_key="c1")
        request_credit(s, 101, NEXT_YEAR, 1, 100, "percentage", SETTINGS, idempotency_key="c1")
        other = request_credit(s, 102, NEXT_YEAR, 1, 100, "percentage", SETTINGS)
        kinds = [outbox.decision_kind(decision), outbox.decision_kind(other)]
    assert client.post("/api/manager/customers/102/password", headers=manager,
                       json={"password": "a-new-password"}).status_code == 200
    queued = rows(ledger)
    assert [(m.kind, m.customer_id) for m in queued] == [
        ("payment_received", 101), (kinds[0], 101), (kinds[1], 102), ("password_reset", 102)]
    first = queued[0]
    assert first.recipient == "c101@example.com" and first.status == "pending" and first.language == "en"
    assert first.context["payment_id"] == paid.payment_id
    # Forward from December 2024, then the oldest month still owed; nothing is left for bank credit.
    assert first.context["allocations"] == [{"year": 2024, "month": 12, "amount_cents": 10_000},
                                            {"year": 2025, "month": 1, "amount_cents": 10_000},
                                            {"year": 2024, "month": 1, "amount_cents": 5_000}]
    assert first.context["to_bank_credit_cents"] == 0
    assert first.message_id.startswith("<") and first.message_id.endswith("@localhost>")
    assert len({m.message_id for m in queued}) == len(queued)


def test_api_retry_with_the_same_key_enqueues_nothing_more(client, ledger, customer):
    body = {"year": 2024, "month": 1, "amount": "10.00"}
    for _ in range(3):
        assert client.post("/api/customer/payment", json=body,
                           headers={**customer, "Idempotency-Key": "same"}).status_code == 200
    assert [m.kind for m in rows(ledger)] == ["payment_received"]


def test_no_address_no_email(ledger):
    with ledger.sessions() as s, s.begin():
        s.get(Customer, 101).email = None
    with ledger.sessions() as s:
        payments.pay(s, 101, 2024, 1, 100)
    assert rows(ledger) == []


# --------------------------------------------------------------------------- the message

def test_message_is_multipart_with_fixed_message_id_and_escaped_html(fast, ledger, tmp_path):
    with ledger.sessions() as s, s.begin():
        s.get(Customer, 101).name = "Ann <b>Bold</b> & Co"
    queue_payments(ledger, 1)
    result = send_all(fast, SMTP_URL=None)
    assert result.sent == 1
    row = rows(ledger)[0]
    files = list((Path(os.environ["VAR_DIR"]) / "mail").glob("*.eml"))
    [eml] = [f for f in files if row.message_id.strip("<>") in f.name]
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert msg["Message-ID"] == row.message_id and msg["Subject"] == "Payment received: $1.00"
    assert msg["To"].addresses[0].addr_spec == "c101@example.com"
    assert msg.get_content_type() == "multipart/alternative" and msg["Content-Language"] == "en"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "January 2024: $1.00" in text and "Dear Ann <b>Bold</b> & Co," in text
    assert "Ann &lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html and "<b>Bold" not in html
    assert f"/payments/{row.context['payment_id']}" in html and 'lang="en"' in html
    # Sending it again (the one documented duplicate) writes the same file, not a second one.
    with fast.app_context():
        transport.FileTransport(eml.parent).send(msg, "no-reply@localhost", row.recipient)
    assert len(list(eml.parent.glob(f"*{row.message_id.strip('<>')}*"))) == 1
    assert not list(eml.parent.glob(".tmp-*"))


def test_a_name_with_a_line_break_cannot_add_a_header(fast, ledger):
    with ledger.sessions() as s, s.begin():
        s.get(Customer, 101).name = "Eve\r\nBcc: victim@example.net\r\nSubject: you won"
    queue_payments(ledger, 1)
    with SmtpServer() as smtp:
        assert send_all(fast, SMTP_URL=smtp.url()).sent == 1
    [got] = smtp.handler.received
    assert got.rcpt_tos == ["c101@example.com"]
    raw = got.data.decode()
    header_block = raw.split("\r\n\r\n", 1)[0]
    assert not [line for line in header_block.split("\r\n") if line.lower().startswith("bcc")]
    assert [line for line in header_block.split("\r\n") if line.startswith("Subject:")] == [
        "Subject: Payment received: $1.00"]
    # The name is mailed folded onto one line, inside the To header.
    assert got.message["To"].addresses[0].display_name == "Eve Bcc: victim@example.net Subject: you won"


def test_an_address_that_does_not_parse_fails_for_good(fast, ledger):
    with ledger.sessions() as s, s.begin():
        s.get(Customer, 101).email = "a@b.example\r\nBcc: victim@example.net"
    queue_payments(ledger, 1)
    with SmtpServer() as smtp:
        result = send_all(fast, SMTP_URL=smtp.url())
    assert result.failed == 1 and smtp.handler.received == []
    [row] = rows(ledger)
    assert row.status == "failed" and row.attempts == 1 and "BadAddress" in row.last_error


def test_every_kind_renders(app, ledger):
    contexts = {
        "payment_received": {"payment_id": 1, "year": 2024, "month": 1, "amount_cents": 100, "allocations": [],
                             "to_bank_credit_cents": 100, "balance_cents": 0, "bank_credit_cents": 100},
        "credit_approved": {"request_id": "r", "year": 2030, "month": 2, "amount_cents": 500, "method": "ml",
                            "score": 0.9, "threshold": 0.8, "reasons": []},
        "credit_rejected": {"request_id": "r", "year": 2030, "month": 2, "amount_cents": 500, "method": "percentage",
                            "score": 50, "threshold": 80, "reasons": ["Paid 50% of all dues; 80% needed"]},
        "password_reset": {},
        "bank_credit_refunded": None,  # made below by outbox.refund_context, as the refund will call it
    }
    assert set(contexts) == set(outbox.KINDS)
    with ledger.sessions() as s, s.begin():
        customer = s.get(Customer, 101)
        contexts["bank_credit_refunded"] = outbox.refund_context(2500, customer, "closing the account")
        queued = [outbox.enqueue(s, customer, kind, context) for kind, context in contexts.items()]
    with app.app_context():
        words = {m.kind: sender.render.render(m) for m in queued}
    assert words["credit_rejected"].subject == "Credit request not approved"
    assert "Paid 50% of all dues; 80% needed" in words["credit_rejected"].text
    assert words["bank_credit_refunded"].subject == "Bank credit refunded: $25.00"
    assert "closing the account" in words["bank_credit_refunded"].html
    assert "A manager set a new password" in words["password_reset"].text


# --------------------------------------------------------------------------- delivery over SMTP

def test_smtp_delivers_every_message_once_and_marks_it_sent(fast, ledger):
    queue_payments(ledger, 12)
    with SmtpServer() as smtp:
        assert send_all(fast, SMTP_URL=smtp.url()).sent == 12
        assert send_all(fast, SMTP_URL=smtp.url()).sent == 0  # nothing is due any more
    ids = smtp.handler.message_ids()
    assert len(ids) == 12 and set(ids.values()) == {1}
    assert {m.message_id for m in rows(ledger)} == set(ids)
    assert all(m.status == "sent" and m.attempts == 1 and m.sent_at is not None for m in rows(ledger))
    assert {r.mail_from for r in smtp.handler.received} == {"no-reply@localhost"}


def test_starttls_and_login(fast, ledger, tmp_path):
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    queue_payments(ledger, 2)
    with SmtpServer(tls_context=context, login=("mailer", "p@ss word")) as smtp:
        url = smtp.url(userinfo="mailer:p%40ss%20word", query="starttls=1")
        # Without the server's CA the certificate is refused: nothing is sent in the clear.
        refused = send_all(fast, SMTP_URL=url, SMTP_CA_FILE=None)
        assert refused.sent == 0 and refused.retrying == 1  # the server is unusable: the pass ends
        assert "CERTIFICATE_VERIFY_FAILED" in rows(ledger)[0].last_error
        assert send_all(fast, SMTP_URL=url, SMTP_CA_FILE=str(cert)).sent == 2
    assert len(smtp.handler.received) == 2


def test_smtps_implicit_tls(fast, ledger, tmp_path):
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    queue_payments(ledger, 1)
    with SmtpServer(tls_context=context, implicit_tls=True) as smtp:
        assert send_all(fast, SMTP_URL=smtp.url("smtps"), SMTP_CA_FILE=str(cert)).sent == 1
    assert len(smtp.handler.received) == 1


def test_a_permanent_refusal_fails_at_once_and_a_manager_can_send_it_again(fast, client, ledger, manager):
    queue_payments(ledger, 1)
    handler = Handler()
    handler.refuse = "550 5.1.1 no such mailbox"
    with SmtpServer(handler) as smtp:
        result = send_all(fast, SMTP_URL=smtp.url())
        assert result.failed == 1
        [row] = rows(ledger)
        assert row.status == "failed" and row.attempts == 1 and "550" in row.last_error
        page = client.get("/manager/admin/mail")
        assert page.status_code == 200 and "no such mailbox" in page.text and 'id="mail-failed">1<' in page.text
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        assert client.post(f"/manager/admin/mail/{row.id}/retry").status_code == 400  # no CSRF token
        assert client.post(f"/manager/admin/mail/{row.id}/retry", data={"csrf_token": token}).status_code == 302
        handler.refuse = None
        assert send_all(fast, SMTP_URL=smtp.url()).sent == 1
    assert rows(ledger)[0].status == "sent" and len(smtp.handler.received) == 1
    with ledger.sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "mail.retry")).one()
    assert event.actor_id == 1 and event.target_id == row.id and "550" in event.old["last_error"]


def test_temporary_refusals_back_off_then_give_up_with_the_error(fast, ledger):
    queue_payments(ledger, 1)
    handler = Handler()
    handler.refuse = "451 4.3.0 try again later"
    with SmtpServer(handler) as smtp:
        for attempt in range(1, 4):
            result = send_all(fast, SMTP_URL=smtp.url(), MAIL_MAX_ATTEMPTS=3)
            [row] = rows(ledger)
            assert row.attempts == attempt
        assert result.failed == 1 and row.status == "failed" and "451" in row.last_error
        assert send_all(fast, SMTP_URL=smtp.url()).failed == 0  # given up on: not tried again
    assert rows(ledger)[0].attempts == 3


def test_backoff_doubles_up_to_its_cap(fast, ledger):
    policy_ = sender.Policy(max_attempts=10, backoff_seconds=30, backoff_max_seconds=300)
    assert [policy_.backoff(n) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    queue_payments(ledger, 1)
    with SmtpServer(Handler()) as smtp:
        smtp.handler.refuse = "421 4.7.0 busy"
        before = time.time()
        send_all(fast, SMTP_URL=smtp.url(), MAIL_BACKOFF_SECONDS=30, MAIL_BACKOFF_MAX_SECONDS=300)
        after = time.time()  # the failure was recorded in between, however long the attempt took
        assert send_all(fast, SMTP_URL=smtp.url()).retrying == 0  # not due yet: waiting out the backoff
    [row] = rows(ledger)
    # 30 s after the failed attempt (1 ms for the stored timestamp's rounding).
    assert row.status == "pending" and before + 29.999 <= row.next_attempt_at.timestamp() <= after + 30.001


def test_a_dropped_connection_is_retried_and_nothing_is_lost(fast, ledger):
    queue_payments(ledger, 5)
    handler = Handler()
    handler.drop_next = 2
    with SmtpServer(handler) as smtp:
        for _ in range(5):
            send_all(fast, SMTP_URL=smtp.url())
    ids = handler.message_ids()
    assert len(ids) == 5 and set(ids.values()) == {1}
    assert all(m.status == "sent" for m in rows(ledger))
    assert sorted(m.attempts for m in rows(ledger)) == [1, 1, 1, 2, 2]


def test_two_senders_at_once_never_send_a_message_twice(fast, ledger):
    queue_payments(ledger, 30)
    handler = Handler()
    handler.delay = 0.01
    with SmtpServer(handler) as smtp:
        fast.config.update(SMTP_URL=smtp.url())
        totals = []

        def one_sender():
            with fast.app_context():
                totals.append(sender.run(once=True).sent)

        threads = [threading.Thread(target=one_sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    ids = handler.message_ids()
    assert sum(totals) == 30 and len(ids) == 30 and set(ids.values()) == {1}


@pytest.mark.slow
def test_kill_9_of_the_sender_mid_batch_loses_nothing_and_resends_at_most_one(app, ledger, tmp_path):
    queue_payments(ledger, 24)
    handler = Handler()
    handler.delay = 0.05
    env = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"], "SECRET_KEY": app.config["SECRET_KEY"],
           "VAR_DIR": str(tmp_path), "MAIL_LEASE_SECONDS": "1", "MAIL_POLL_SECONDS": "0.1",
           "MAIL_BACKOFF_SECONDS": "0"}
    command = [sys.executable, "-m", "flask", "--app", "portal", "mailer"]
    with SmtpServer(handler) as smtp:
        env["SMTP_URL"] = smtp.url()
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: len(handler.received) >= 8, 60), "the sender never got going"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            first.kill()
        killed_at = len(handler.received)
        assert killed_at < 24, "the sender finished before it could be killed"
        second = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: all(m.status == "sent" for m in rows(ledger)), 90), "not every message was sent"
        finally:
            second.terminate()
            second.wait(15)
    ids = handler.message_ids()
    assert set(ids) == {m.message_id for m in rows(ledger)}  # every outbox row delivered
    assert sum(ids.values()) - len(ids) <= 1  # at most the message in flight at the kill, with its Message-ID
    with ledger.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != "sent")) == 0


def test_a_reset_whose_email_cannot_be_queued_changes_nothing(client, ledger, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the outbox is full")

    monkeypatch.setattr(outbox, "enqueue", broken)
    with ledger.sessions() as s, pytest.raises(RuntimeError):
        accounts.reset_password(s, 101, "a-new-password", by=1)
    with ledger.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0
    assert rows(ledger) == []
    login(client, "customer", 101, "customer123")  # the old password still works


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; tell whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
