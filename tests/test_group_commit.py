"""Group commit: payments made together share a transaction and each ends as it would have alone.

``portal.group_commit`` (threads handing in items, one writer at a time) is
tested with a recording writer; ``payments.pay_many`` (a batch in one
transaction) and the API's use of both run on SQLite and PostgreSQL.
"""
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from portal.api.customer import write_payments
from portal.auth import accounts
from portal.auth.sessions import Claim, end_login, token_claim
from portal.db import get_db, write_transaction
from portal.group_commit import GroupCommit
from portal.ledger import payments
from portal.ledger.errors import Conflict, InvalidRequest, NotFound
from portal.ledger.locks import lock_customer
from portal.models import Allocation, Customer, Due, OutboxMessage, Payment
from testing.audit import check_invariants
from testing.people import add_customer, add_manager

SCHEDULE = {(2024, m): 5_000 for m in range(1, 13)}


# --------------------------------------------------------------------------- the batching, with a recording writer

class Recorder:
    """A batch writer that records its batches; the first one waits for `release` (others queue meanwhile)."""

    def __init__(self, fail_batches_over: int | None = None, interrupt_batches_over: int | None = None):
        self.batches: list[list] = []
        self.interrupt_batches_over = interrupt_batches_over
        self.release = threading.Event()
        self.first_started = threading.Event()
        self.fail_batches_over = fail_batches_over

    def __call__(self, _session, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(10)
        if self.fail_batches_over is not None and len(items) > self.fail_batches_over:
            raise ConnectionError("the batch failed as a whole")
        if self.interrupt_batches_over is not None and len(items) > self.interrupt_batches_over:
            raise KeyboardInterrupt  # as a worker being stopped would be
        return [ValueError(f"refused {i}") if i < 0 else i * 10 for i in items]


def submit_while_first_waits(commit: GroupCommit, recorder: Recorder, first: int, others: list[int]) -> dict:
    """Submit `first`, then `others` from threads while it is being written; return each item's outcome."""
    outcomes = {}

    def one(item):
        try:
            outcomes[item] = commit.submit(None, item)
        except BaseException as refused:  # noqa: BLE001 - the outcome under test
            outcomes[item] = refused

    with ThreadPoolExecutor(len(others) + 1) as pool:
        pool.submit(one, first)
        assert recorder.first_started.wait(10)
        futures = [pool.submit(one, item) for item in others]
        deadline = time.monotonic() + 10
        while len(commit._queue) < len(others) and time.monotonic() < deadline:  # all of them waiting
            time.sleep(0.01)
        recorder.release.set()
        for f in futures:
            f.result()
    return outcomes


def test_items_arriving_while_a_batch_is_written_form_the_next_batch():
    recorder = Recorder()
    commit = GroupCommit(recorder)
    outcomes = submit_while_first_waits(commit, recorder, 1, [2, 3, 4, 5, 6])
    assert recorder.batches[0] == [1]
    assert sorted(recorder.batches[1]) == [2, 3, 4, 5, 6] and len(recorder.batches) == 2
    assert outcomes == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50, 6: 60}
    assert commit.sizes == {1: 1, 5: 1}


def test_an_item_refused_is_raised_to_its_own_caller_only():
    recorder = Recorder()
    outcomes = submit_while_first_waits(GroupCommit(recorder), recorder, 1, [2, -3, 4])
    assert isinstance(outcomes[-3], ValueError) and str(outcomes[-3]) == "refused -3"
    assert (outcomes[1], outcomes[2], outcomes[4]) == (10, 20, 40)


def test_a_batch_that_fails_as_a_whole_is_written_again_one_item_at_a_time():
    recorder = Recorder(fail_batches_over=1)
    outcomes = submit_while_first_waits(GroupCommit(recorder), recorder, 1, [2, 3, 4])
    assert sorted(len(b) for b in recorder.batches) == [1, 1, 1, 1, 3]  # the failed batch of 3, then each alone
    assert outcomes == {1: 10, 2: 20, 3: 30, 4: 40}


def test_a_batch_never_holds_more_than_max_batch_items():
    recorder = Recorder()
    commit = GroupCommit(recorder, max_batch=2)
    outcomes = submit_while_first_waits(commit, recorder, 1, [2, 3, 4, 5, 6])
    assert max(len(b) for b in recorder.batches) == 2
    assert sorted(i for b in recorder.batches for i in b) == [1, 2, 3, 4, 5, 6]
    assert outcomes == {i: 10 * i for i in range(1, 7)}


def test_max_batch_of_one_writes_each_item_alone_without_waiting_for_another_writer():
    recorder = Recorder()
    commit = GroupCommit(recorder, max_batch=1)
    recorder.release.set()
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda i: commit.submit(None, i), range(1, 9))) == [10 * i for i in range(1, 9)]
    assert all(len(b) == 1 for b in recorder.batches) and not commit._queue


def test_a_batch_of_fewer_than_one_item_is_refused_at_start():
    with pytest.raises(ValueError, match="PAYMENT_BATCH_MAX"):
        GroupCommit(Recorder(), max_batch=0)


def test_a_writer_stopped_mid_batch_leaves_no_thread_waiting():
    recorder = Recorder(interrupt_batches_over=1)
    commit = GroupCommit(recorder)
    outcomes = submit_while_first_waits(commit, recorder, 1, [2, 3, 4])
    assert outcomes[1] == 10
    kinds = sorted(type(outcomes[i]).__name__ for i in (2, 3, 4))
    assert kinds == ["KeyboardInterrupt", "RuntimeError", "RuntimeError"]  # the writer's own, the others told
    assert commit._writing is False and not commit._queue


# --------------------------------------------------------------------------- a busy process's batch waits to fill

def _until(condition, what: str) -> None:
    """Wait (at most 10 s) until `condition()` holds."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.005)


def _in_thread(submit, item):
    """Return what `submit(None, item)` returns in a thread of its own, failing (not hanging) if it waits 10 s."""
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(submit(None, item)), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"item {item} was still waiting for its batch after 10 s"
    return outcome[0]


def test_a_writer_waits_for_the_items_of_the_requests_in_flight_and_writes_them_in_one_batch():
    recorder = Recorder()
    recorder.release.set()
    commit = GroupCommit(recorder, wait_seconds=3600)  # only the items' arrival can end this wait
    for _ in range(3):
        commit.request_started()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(commit.submit, None, 1)
        _until(lambda: commit._writing, "writing")
        time.sleep(0.2)
        assert recorder.batches == []  # three requests in flight: the writer waits for three items
        others = [pool.submit(commit.submit, None, i) for i in (2, 3)]
        assert [f.result(10) for f in [first, *others]] == [10, 20, 30]
    assert recorder.batches == [[1, 2, 3]] and commit.sizes == {3: 1}


def test_a_lone_request_is_written_at_once_however_long_the_wait_may_be():
    recorder = Recorder()
    recorder.release.set()
    commit = GroupCommit(recorder, wait_seconds=3600)
    commit.request_started()
    assert _in_thread(commit.submit, 1) == 10  # one request at a time: nothing to wait for
    commit.request_ended()
    assert commit._requests == 0


def test_a_writer_waits_no_longer_than_its_wait_for_items_that_never_come():
    recorder = Recorder()
    recorder.release.set()
    commit = GroupCommit(recorder, wait_seconds=0.05)
    for _ in range(4):
        commit.request_started()
    for _ in range(3):
        commit.request_ended()  # three of them were refused before they submitted anything
    assert commit.submit(None, 1) == 10
    assert recorder.batches == [[1]]
    # The next batch waits for the requests counted since this one began: one, so not at all.
    commit.wait_seconds = 3600
    assert _in_thread(commit.submit, 2) == 20
    assert recorder.batches == [[1], [2]]


def test_a_negative_wait_is_refused_at_start():
    with pytest.raises(ValueError, match="PAYMENT_BATCH_WAIT_MS"):
        GroupCommit(Recorder(), wait_seconds=-0.001)


# --------------------------------------------------------------------------- pay_many on a real ledger

def _state(s, customer_id: int) -> dict:
    """A customer's months, totals, payments, allocations and emails, without their ids."""
    c = s.get(Customer, customer_id)
    return {
        "totals": (c.total_paid_cents, c.bank_credit_cents),
        "months": s.execute(select(Due.year, Due.month, Due.paid_cents).where(Due.customer_id == customer_id)
                            .order_by(Due.year, Due.month)).all(),
        "payments": s.execute(select(Payment.year, Payment.month, Payment.amount_cents, Payment.to_bank_credit_cents)
                              .where(Payment.customer_id == customer_id).order_by(Payment.id)).all(),
        "allocations": s.execute(select(Allocation.year, Allocation.month, Allocation.amount_cents)
                                 .where(Allocation.customer_id == customer_id).order_by(Allocation.id)).all(),
        "emails": [{k: v for k, v in m.context.items() if k != "payment_id"} for m in s.scalars(
            select(OutboxMessage).where(OutboxMessage.customer_id == customer_id).order_by(OutboxMessage.id))],
    }


_ids = itertools.count()
# A payment: its month (0-11 of 2024) and its amount, up to more than a whole year owes (bank credit).
_payment = st.tuples(st.integers(0, 11), st.integers(1, 70_000))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_payment, min_size=1, max_size=10), st.lists(_payment, max_size=10),
       st.dictionaries(st.integers(0, 11), st.integers(0, 5_000), max_size=12), st.integers(0, 2))
def test_a_batch_ends_exactly_as_the_same_payments_one_after_another(db, mine, others, opening, twins):
    # Two customers start alike: the first's payments go in one batch, among a third customer's, with a
    # retry of some of them (same key); the second's are paid one by one. Their ledgers must end alike.
    batched, alone, other = (9000 + 3 * next(_ids) + i for i in range(3))
    for cid in (batched, alone, other):
        add_customer(db, cid, SCHEDULE, paid={(2024, 1 + m): c for m, c in opening.items()})
    orders = [payments.Order(batched, 2024, 1 + m, cents, f"k{i}") for i, (m, cents) in enumerate(mine)]
    retries = orders[:twins]
    noise = [payments.Order(other, 2024, 1 + m, cents, f"o{i}") for i, (m, cents) in enumerate(others)]
    mixed = [o for pair in itertools.zip_longest(orders, noise) for o in pair if o is not None] + retries
    with db.sessions() as s:
        outcomes = payments.pay_many(s, mixed)
    by_key = {o.idempotency_key: r for o, r in zip(mixed, outcomes, strict=True) if o.customer_id == batched}
    one_by_one = []
    for order in orders:
        with db.sessions() as s:
            one_by_one.append(payments.pay(s, alone, order.year, order.month, order.amount_cents))
    assert [(by_key[o.idempotency_key].allocations, by_key[o.idempotency_key].to_bank_credit_cents)
            for o in orders] == [(r.allocations, r.to_bank_credit_cents) for r in one_by_one]
    assert all(r.replayed for r in outcomes[len(outcomes) - len(retries):])
    with db.sessions() as s:
        assert _state(s, batched) == _state(s, alone)
    check_invariants(db)


def test_refused_orders_write_nothing_and_leave_the_others_paid(db):
    add_customer(db, 101, SCHEDULE)
    add_customer(db, 102, SCHEDULE)
    orders = [payments.Order(101, 2024, 1, 1_000), payments.Order(101, 2031, 1, 1_000),  # no such year
              payments.Order(102, 2024, 13, 1_000), payments.Order(999, 2024, 1, 1_000),  # no such month, customer
              payments.Order(102, 2024, 2, 0), payments.Order(102, 2024, 2, 6_000, max_cents=5_000),
              payments.Order(102, 2024, 2, 2_000)]
    with db.sessions() as s:
        outcomes = payments.pay_many(s, orders)
    assert isinstance(outcomes[0], payments.PaymentResult) and isinstance(outcomes[6], payments.PaymentResult)
    assert [(type(o), o.field) for o in outcomes[1:6]] == [
        (InvalidRequest, "year"), (InvalidRequest, "month"), (NotFound, "customer_id"), (InvalidRequest, "amount"),
        (InvalidRequest, "amount")]
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 2
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        assert (s.get(Customer, 101).total_paid_cents, s.get(Customer, 102).total_paid_cents) == (1_000, 2_000)
    check_invariants(db)


def test_a_key_used_twice_in_one_batch_pays_once_and_the_twin_replays_it(db):
    add_customer(db, 101, SCHEDULE)
    first, twin = payments.Order(101, 2024, 1, 2_500, "same"), payments.Order(101, 2024, 1, 2_500, "same")
    other_body = payments.Order(101, 2024, 2, 100, "same")
    with db.sessions() as s:
        a, b, c = payments.pay_many(s, [first, twin, other_body])
    assert not a.replayed and b.replayed and b.payment_id == a.payment_id and b.allocations == a.allocations
    assert isinstance(c, Conflict) and c.field == "Idempotency-Key"
    with db.sessions() as s:
        again, = payments.pay_many(s, [first])  # and in a later batch: the stored first answer
        assert again.replayed and again.payment_id == a.payment_id
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
    check_invariants(db)


def test_a_replay_in_a_batch_says_the_payment_was_reversed_since(db):
    add_customer(db, 101, SCHEDULE)
    add_manager(db)
    with db.sessions() as s:
        paid = payments.pay(s, 101, 2024, 1, 2_500, "k")
    with db.sessions() as s:
        payments.reverse_payment(s, paid.payment_id, 1, "entered twice")
    with db.sessions() as s:
        replay, fresh = payments.pay_many(s, [payments.Order(101, 2024, 1, 2_500, "k"),
                                              payments.Order(101, 2024, 1, 2_500, "k2")])
    assert replay.replayed and replay.reversed_at is not None and fresh.reversed_at is None
    check_invariants(db)


# --------------------------------------------------------------------------- the API: concurrent payments share one

def test_concurrent_api_payments_share_transactions_and_each_gets_its_own_answer(app, client, auth, db_url):
    customers = [101, 102, 103, 104]
    with app.app_context():
        db = get_db()
        for cid in customers:
            add_customer(db, cid, SCHEDULE, password="pw-123456")
    bearer = {cid: auth.login("customer", cid, "pw-123456") for cid in customers}
    commit = app.extensions["payment_batches"]
    held = threading.Event()

    def hold_customer_101():  # a writer holding 101 makes the first batch wait: the others queue meanwhile
        with app.app_context():
            with get_db().sessions() as s, write_transaction(s):
                lock_customer(s, 101)
                held.set()
                deadline = time.monotonic() + 10
                while len(commit._queue) < 7 and time.monotonic() < deadline:
                    time.sleep(0.01)

    def pay(n: int):
        cid = customers[n % 4]
        return cid, client.post("/api/customer/payment", json={"year": 2024, "month": 1 + n, "amount": "10.00"},
                                headers={**bearer[cid], "Idempotency-Key": f"n{n}"})

    with ThreadPoolExecutor(9) as pool:
        holder = pool.submit(hold_customer_101)
        assert held.wait(10)
        first = pool.submit(pay, 0)  # customer 101: its batch waits for the holder
        while not commit._writing:
            time.sleep(0.01)
        answers = [first] + [pool.submit(pay, n) for n in range(1, 8)]
        holder.result()
        answers = [f.result() for f in answers]
    assert all(r.status_code == 200 for _, r in answers), [r.json for _, r in answers]
    for n, (cid, r) in enumerate(answers):
        assert r.json["allocations"] == [{"year": 2024, "month": 1 + n, "amount": "10.00"}]
        assert r.json["summary"]["customer"]["id"] == cid
        # The answer's summary is read when its batch commits: 101 paid alone first, the others' two in one batch.
        assert r.json["summary"]["total_paid"] == ("10.00" if n == 0 else "20.00")
    assert commit.sizes.get(7) == 1, commit.sizes  # the seven that came while 101 was held: one batch
    with app.app_context():
        check_invariants(get_db())


def test_a_batch_reads_its_callers_logins_in_one_statement_and_pays_only_the_live_ones(app, auth):
    customers = [101, 102, 103, 104]
    with app.app_context():
        db = get_db()
        for cid in customers:
            add_customer(db, cid, SCHEDULE, password="pw-123456")
    tokens = {cid: auth.login("customer", cid, "pw-123456")["Authorization"][7:] for cid in customers}
    with app.test_request_context():
        claims = {cid: token_claim(tokens[cid]) for cid in customers}
        with get_db().sessions() as s:
            end_login(s, claims[102].jti)  # logged out after its request's token check: its batch refuses it
            accounts.set_active(s, "customer", 103, False, by=None)
        # A claim whose record is another customer's: refused, though the record is live.
        borrowed = Claim("customer", 104, claims[101].jti)
        items = [(claims[cid], payments.Order(cid, 2024, 1, 1_000, f"k{cid}")) for cid in customers]
        items.append((borrowed, payments.Order(104, 2024, 2, 1_000, "borrowed")))
        logins_read = []
        event.listen(get_db().engine, "before_cursor_execute", record := (
            lambda _c, _cur, statement, *_: logins_read.append(statement) if "api_tokens" in statement else None))
        try:
            with get_db().sessions() as s:
                outcomes = write_payments(s, items)
        finally:
            event.remove(get_db().engine, "before_cursor_execute", record)
    assert len(logins_read) == 1  # the whole batch's logins: one statement
    assert [type(o).__name__ for o in outcomes] == ["PaymentResult", "Unauthorized", "Unauthorized",
                                                    "PaymentResult", "Unauthorized"]
    with app.app_context(), get_db().sessions() as s:
        paid = dict(s.execute(select(Payment.customer_id, func.count()).group_by(Payment.customer_id)).all())
        assert paid == {101: 1, 104: 1}
        check_invariants(get_db())


def test_every_payment_request_counted_for_the_batches_is_uncounted_when_it_ends(app, client, auth, monkeypatch):
    with app.app_context():
        add_customer(get_db(), 101, SCHEDULE, password="pw-123456")
        add_manager(get_db(), 9, password="pw-123456")
    customer, manager = auth.login("customer", 101, "pw-123456"), auth.login("manager", 9, "pw-123456")
    commit = app.extensions["payment_batches"]
    counted = []
    monkeypatch.setattr(commit, "request_started", lambda: counted.append(+1) or GroupCommit.request_started(commit))
    monkeypatch.setattr(commit, "request_ended", lambda: counted.append(-1) or GroupCommit.request_ended(commit))

    def pay(headers, amount):
        return client.post("/api/customer/payment", json={"year": 2024, "month": 1, "amount": amount},
                           headers=headers).status_code

    assert pay(customer, "10.00") == 200
    assert pay(customer, "abc") == 422  # the schema's refusal
    assert pay(customer, "0") == 422  # the ledger's refusal, in the batch
    assert pay({"Authorization": "Bearer not-a-token"}, "10.00") == 401  # refused before it is counted
    assert pay(manager, "10.00") == 403
    assert counted == [+1, -1] * 3 and commit._requests == 0
