"""The lean payment path: one payment over the API is one transaction of a few statements, and the
shortcuts it takes (a read transaction carried on into the write, months added to in place) keep the
ledger exactly as before (SQLite and PostgreSQL)."""
import threading
import time

import pytest
from sqlalchemy import create_engine, pool, text

from bench.payment_path import COMMIT, PING, ROLLBACK, Counter, batch_cpu
from contracts import allocation as rule
from portal import db as portal_db
from portal.db import write_transaction
from portal.ledger import booking, idempotency, payments, statements
from portal.ledger.locks import lock_customer
from portal.models import Customer, Due, Payment
from testing.audit import check_invariants
from testing.people import add_customer


def _pay(client, headers, key: str, year: int = 2024, month: int = 3, amount: str = "150.00"):
    return client.post("/api/customer/payment", json={"year": year, "month": month, "amount": amount},
                       headers={**headers, "Idempotency-Key": key})


def test_one_payment_is_one_transaction_of_a_few_statements(app, client, customer, ledger):
    _pay(client, customer, "warm-up")
    counter = Counter(ledger.engine)
    answer = _pay(client, customer, "counted")
    assert answer.status_code == 200
    log = counter.log
    # auth, lock, key, months, payment, allocations, months' paid, totals, key's answer, email, summary
    assert len(counter.statements) <= 11, log
    assert log.count(COMMIT) == 1
    if ledger.engine.dialect.name == "postgresql":  # the authentication's read is carried on into the write
        assert ROLLBACK not in log, log
        assert log.count(PING) == 0, log  # the connection served the warm-up moments ago: no check
    # The summary in the answer is the one the ledger holds after the payment.
    assert answer.json["summary"] == client.get("/api/customer/summary/101", headers=customer).json
    assert answer.json["summary"]["total_paid"] == "300.00"
    check_invariants(ledger)


def test_a_read_for_one_key_is_an_equality_and_for_many_an_in_list_with_the_same_rows(ledger):
    counter = Counter(ledger.engine)
    with ledger.sessions() as session:
        one = {cid: statements.paid_by_year_many(session, [cid]) for cid in (101, 102)}
        both = statements.paid_by_year_many(session, [101, 102])
    *_, for_one, for_other, for_both = counter.statements
    assert both == one[101] | one[102] == {101: {2024: 0, 2025: 0}, 102: {2024: 20_000}}
    assert all("customer_id = " in sql and " IN " not in sql for sql in (for_one, for_other)), for_one
    assert "customer_id IN " in for_both, for_both


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_batch_cpu_figure_writes_every_batch_size_it_reports(kind):
    figures = batch_cpu(kind, sizes=(1, 4), batches=2)  # raises if the writer refused any payment
    assert set(figures) == {1, 4} and all(ms > 0 for ms in figures.values()), figures


def _server_ends_the_ledgers_connections(url) -> int:
    """End every other connection to the ledger's database on the server (as a restart would); return how many."""
    admin = create_engine(url, poolclass=pool.NullPool)
    with admin.begin() as conn:
        ended = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    admin.dispose()
    return ended


# PostgreSQL only: SQLite has no server connection to lose.
ON_POSTGRES = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@ON_POSTGRES
def test_a_connection_idle_for_a_while_is_checked_and_a_dead_one_replaced(client, customer, ledger, monkeypatch):
    _pay(client, customer, "warm-up")
    assert _server_ends_the_ledgers_connections(ledger.engine.url) >= 1
    monkeypatch.setattr(portal_db, "ALIVE_WITHOUT_PING_SECONDS", 0.0)  # as if the connection had been idle
    counter = Counter(ledger.engine)
    answer = _pay(client, customer, "after the restart")
    assert answer.status_code == 200, answer.text  # the ping found the dead connection; a new one served it
    assert counter.log.count(PING) >= 1, counter.log
    check_invariants(ledger)


@ON_POSTGRES
def test_a_connection_lost_within_the_window_fails_one_request_with_a_503_then_the_pool_is_renewed(
        client, customer, ledger):
    _pay(client, customer, "warm-up")
    assert _server_ends_the_ledgers_connections(ledger.engine.url) >= 1
    lost = _pay(client, customer, "lost")  # the connection was used moments ago: taken as alive, unchecked
    assert lost.status_code == 503 and lost.headers["Retry-After"], lost.text
    again = _pay(client, customer, "lost")  # the client's retry, same key: a new connection, paid once
    assert again.status_code == 200 and not again.json["replayed"], again.text
    assert ledger.engine.pool.checkedout() == 0
    check_invariants(ledger)


def test_a_replay_answers_the_current_summary_in_one_transaction(client, customer, ledger):
    first = _pay(client, customer, "same")
    _pay(client, customer, "other", amount="50.00")
    counter = Counter(ledger.engine)
    again = _pay(client, customer, "same")
    assert again.json["replayed"] and again.json["payment_id"] == first.json["payment_id"]
    assert again.json["summary"]["total_paid"] == "200.00"
    assert counter.log.count(COMMIT) == 1, counter.log
    if ledger.engine.dialect.name == "postgresql":
        assert ROLLBACK not in counter.log, counter.log


def test_a_write_after_a_read_sees_what_others_committed_meanwhile(db):
    add_customer(db, 101, {(2024, 1): 10_000, (2024, 2): 10_000})
    with db.sessions() as s:
        stale = s.get(Customer, 101)  # the read that opens the session's transaction
        assert stale.total_paid_cents == 0
        with db.engine.begin() as other:  # another writer commits between the read and the write
            other.execute(text("UPDATE dues SET paid_cents = 4000, opening_paid_cents = 4000 "
                               "WHERE customer_id = 101 AND month = 1"))
            other.execute(text("UPDATE customers SET total_paid_cents = 4000 WHERE id = 101"))
        result = payments.pay(s, 101, 2024, 1, 7_000)
    assert [(a.month, a.amount_cents) for a in result.allocations] == [(1, 6_000), (2, 1_000)]
    with db.sessions() as s:
        assert statements.summary(s, 101).total_paid_cents == 11_000
    check_invariants(db)


def test_changes_left_unflushed_before_a_write_are_rolled_back_not_committed_with_it(db):
    add_customer(db, 101, {(2024, 1): 10_000}, name="Before")
    with db.sessions() as s:
        s.get(Customer, 101).name = "Never saved"
        with write_transaction(s):
            lock_customer(s, 101)
    with db.sessions() as s:
        assert s.get(Customer, 101).name == "Before"


def test_booking_adds_to_the_months_in_place_and_refreshes_loaded_ones(db):
    add_customer(db, 101, {(2024, 1): 10_000, (2024, 2): 10_000}, paid={(2024, 1): 2_000})
    with db.sessions() as s, write_transaction(s):
        loaded = s.get(Due, (101, 2024, 1))
        customer = lock_customer(s, 101)
        payment = Payment(customer_id=101, year=2024, month=1, amount_cents=3_500)
        s.add(payment)
        s.flush()
        booking.book(s, customer, [rule.Allocation(2024, 1, 3_000), rule.Allocation(2024, 2, 500)],
                     payment_id=payment.id)
        assert loaded.paid_cents == 5_000  # read again from the database, not the 2,000 loaded before
    with db.sessions() as s:
        assert [r.amount_paid_cents for r in statements.months(s, 101, 2024)] == [5_000, 500]
    check_invariants(db)


def _until_a_backend_waits_for_a_lock(db, deadline: float = 30.0) -> None:
    """PostgreSQL: return once another connection to this database waits on a lock (SQLite: at once)."""
    if db.is_sqlite:
        return
    stop = time.monotonic() + deadline
    with db.engine.connect() as conn:
        while time.monotonic() < stop:
            waiting = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND wait_event_type = 'Lock'")).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the twin never waited for the customer's lock")


def test_a_twin_waiting_for_the_lock_gets_the_answer_committed_meanwhile(db):
    add_customer(db, 101, {(2024, 1): 10_000})
    fingerprint = idempotency.fingerprint(year=2024, month=1, amount_cents=1_000)
    first = payments.PaymentResult(7, 101, 2024, 1, 1_000, [rule.Allocation(2024, 1, 1_000)], 0)
    answers, errors = [], []

    def twin():
        try:
            with db.sessions() as s:
                answers.append(payments.pay(s, 101, 2024, 1, 1_000, idempotency_key="same"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with db.sessions() as s:
        with write_transaction(s):
            lock_customer(s, 101)
            thread = threading.Thread(target=twin)
            thread.start()
            _until_a_backend_waits_for_a_lock(db)
            # The first request's answer is stored while the twin waits (its payment rows are not needed here).
            idempotency.remember(s, "payment", 101, "same", fingerprint, first.to_record())
    thread.join(timeout=60)
    assert not errors and len(answers) == 1, errors
    assert answers[0].replayed and answers[0].payment_id == 7
