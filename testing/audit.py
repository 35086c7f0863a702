"""The ledger audit: every sum checked to the cent, after any test and after a payment storm.

Each check is a small function of the rows it reads (``LedgerRows``) that
returns its problems as sentences; none means it holds.

* ``ledger_problems`` holds for any ledger at any time: every payment and every
  bank credit application is whole, no month is paid beyond its due, each
  month's paid is its opening balance plus its live allocations (of payments not
  reversed and applications not undone), running totals match the months, each
  customer's bank credit is exactly opening + live payments' bank credit -
  applied + undone - refunded, and nobody holds bank credit while owing.
  ``check_invariants`` asserts them.
* ``audit_storm`` adds what must hold after a payment storm (``bench.storm``),
  given what its clients saw: every accepted Idempotency-Key is exactly one
  row, as answered; every replay repeated the first answer; per customer, the
  money in is the money the clients paid; and the allocations are a serial
  replay of the allocation rule (the per-customer lock held).

When the allocation rule changes, ``allocations_replay_serially`` is the one
place that knows it (through ``contracts.allocation``).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select, true

from contracts import allocation as rule
from portal.db import Database
from portal.models import (
    Allocation,
    BankCreditEntry,
    CreditDecision,
    Customer,
    Due,
    IdempotencyRecord,
    Payment,
    PaymentReversal,
)


def snapshot(db: Database) -> dict:
    """Everything a rejected request must leave unchanged."""
    with db.sessions() as s:
        return {
            "payments": s.scalar(select(func.count()).select_from(Payment)),
            "allocations": s.scalar(select(func.count()).select_from(Allocation)),
            "reversals": s.scalar(select(func.count()).select_from(PaymentReversal)),
            "bank_credit_entries": s.scalar(select(func.count()).select_from(BankCreditEntry)),
            "decisions": s.scalar(select(func.count()).select_from(CreditDecision)),
            "idempotency": s.scalar(select(func.count()).select_from(IdempotencyRecord)),
            "dues": tuple(s.execute(select(func.count(), func.sum(Due.due_cents), func.sum(Due.paid_cents))).one()),
            "customers": tuple(s.execute(select(func.count(), func.sum(Customer.bank_credit_cents),
                                          func.sum(Customer.total_paid_cents))).one()),
        }


# --------------------------------------------------------------------------- the rows

@dataclass
class LedgerRows:
    """The rows the checks read: payments, allocations, entries in id order; dues in (customer, year, month) order."""

    payments: list
    allocations: list
    dues: list
    customers: list
    reversed_ids: set[int]
    idempotency_records: int
    entries: list = ()  # bank credit entries

    def allocations_of(self) -> dict[int, list]:
        """Return each payment id's allocations, in id order."""
        by_payment: dict[int, list] = defaultdict(list)
        for a in self.allocations:
            if a.payment_id is not None:
                by_payment[a.payment_id].append(a)
        return by_payment

    def undone_ids(self) -> set[int]:
        """Return the ids of bank credit applications a reversal undid."""
        return {e.undoes_entry_id for e in self.entries if e.kind == "unapplied"}

    def is_live(self, allocation) -> bool:
        """Tell whether an allocation still counts: its payment not reversed, or its application not undone."""
        if allocation.payment_id is not None:
            return allocation.payment_id not in self.reversed_ids
        return allocation.bank_credit_entry_id not in self.undone_ids()

    def dues_of(self) -> dict[int, list]:
        """Return each customer id's months, in (year, month) order."""
        by_customer: dict[int, list] = defaultdict(list)
        for d in self.dues:
            by_customer[d.customer_id].append(d)
        return by_customer


def read_ledger(db: Database, customer_ids: Collection[int] | None = None) -> LedgerRows:
    """Read every customer's rows, or only those of customers with ids from min to max of `customer_ids`.

    All from one snapshot, so that a ledger still being written (a request in flight when the
    load stopped) reads as it stood at one moment: PostgreSQL's REPEATABLE READ; SQLite's
    read transaction is one snapshot already.
    """

    def mine(column):
        return column.between(min(customer_ids), max(customer_ids)) if customer_ids else true()

    with db.sessions() as s:
        s.connection(execution_options={} if db.is_sqlite else {"isolation_level": "REPEATABLE READ"})
        return LedgerRows(
            payments=s.execute(select(Payment.id, Payment.customer_id, Payment.year, Payment.month,
                                      Payment.amount_cents, Payment.to_bank_credit_cents, Payment.idempotency_key)
                               .where(mine(Payment.customer_id)).order_by(Payment.id)).all(),
            allocations=s.execute(select(Allocation.payment_id, Allocation.bank_credit_entry_id, Allocation.customer_id,
                                         Allocation.year, Allocation.month, Allocation.amount_cents)
                                  .where(mine(Allocation.customer_id)).order_by(Allocation.id)).all(),
            dues=s.execute(select(Due.customer_id, Due.year, Due.month, Due.due_cents, Due.paid_cents,
                                  Due.opening_paid_cents)
                           .where(mine(Due.customer_id)).order_by(Due.customer_id, Due.year, Due.month)).all(),
            customers=s.execute(select(Customer.id, Customer.total_due_cents, Customer.total_paid_cents,
                                       Customer.bank_credit_cents, Customer.opening_bank_credit_cents)
                                .where(mine(Customer.id))).all(),
            reversed_ids=set(s.scalars(select(PaymentReversal.payment_id).join(Payment)
                                       .where(mine(Payment.customer_id)))),
            idempotency_records=s.scalar(select(func.count()).select_from(IdempotencyRecord)
                                         .where(mine(IdempotencyRecord.customer_id))),
            entries=s.execute(select(BankCreditEntry.id, BankCreditEntry.customer_id, BankCreditEntry.kind,
                                     BankCreditEntry.amount_cents, BankCreditEntry.undoes_entry_id)
                              .where(mine(BankCreditEntry.customer_id)).order_by(BankCreditEntry.id)).all(),
        )


# --------------------------------------------------------------------------- checks for any ledger

def payments_are_whole(rows: LedgerRows) -> list[str]:
    """Every payment's allocations plus its bank credit are its amount; no allocation lacks its payment."""
    problems = []
    by_payment = rows.allocations_of()
    half = [p.id for p in rows.payments
            if sum(a.amount_cents for a in by_payment.get(p.id, [])) + p.to_bank_credit_cents != p.amount_cents]
    if half:
        problems.append(f"{len(half)} payment(s) whose allocations + bank credit != amount: {half[:10]}")
    orphans = set(by_payment) - {p.id for p in rows.payments}
    if orphans:
        problems.append(f"allocations of unknown payments: {sorted(orphans)[:10]}")
    return problems


def months_within_due(rows: LedgerRows) -> list[str]:
    """No month is paid below nothing or beyond its due."""
    over = [tuple(d) for d in rows.dues if not 0 <= d.paid_cents <= d.due_cents]
    return [f"{len(over)} month(s) paid beyond their due: {over[:5]}"] if over else []


def applications_are_whole(rows: LedgerRows) -> list[str]:
    """Every bank credit application's allocations are its amount; every undoing takes back a whole application."""
    problems = []
    by_entry: dict[int, int] = defaultdict(int)
    for a in rows.allocations:
        if a.bank_credit_entry_id is not None:
            by_entry[a.bank_credit_entry_id] += a.amount_cents
    entries = {e.id: e for e in rows.entries}
    half = [e.id for e in rows.entries if e.kind == "applied" and by_entry.pop(e.id, 0) != e.amount_cents]
    if half:
        problems.append(f"{len(half)} bank credit application(s) whose allocations != amount: {half[:10]}")
    if by_entry:
        problems.append(f"allocations of unknown bank credit applications: {sorted(by_entry)[:10]}")
    wrong = [e.id for e in rows.entries if e.kind == "unapplied"
             and (e.undoes_entry_id not in entries or entries[e.undoes_entry_id].kind != "applied"
                  or entries[e.undoes_entry_id].amount_cents != e.amount_cents)]
    if wrong:
        problems.append(f"{len(wrong)} undoing(s) that do not take back one whole application: {wrong[:10]}")
    return problems


def months_match_allocations(rows: LedgerRows) -> list[str]:
    """Each month's paid is its opening balance plus the live allocations (payments and applications)."""
    live: dict[tuple, int] = defaultdict(int)
    for a in rows.allocations:
        if rows.is_live(a):
            live[(a.customer_id, a.year, a.month)] += a.amount_cents
    drift = [tuple(d) for d in rows.dues
             if d.paid_cents != d.opening_paid_cents + live[(d.customer_id, d.year, d.month)]]
    return [f"{len(drift)} month(s) whose paid != opening + allocations: {drift[:5]}"] if drift else []


def totals_match_months(rows: LedgerRows) -> list[str]:
    """Each customer's running totals (due, paid) are the sums of their months."""
    months = rows.dues_of()
    return [f"customer {c.id}: running totals drifted from the dues" for c in rows.customers
            if (c.total_due_cents, c.total_paid_cents)
            != (sum(d.due_cents for d in months[c.id]), sum(d.paid_cents for d in months[c.id]))]


def bank_credit_adds_up(rows: LedgerRows) -> list[str]:
    """Each customer's bank credit is opening + live payments' bank credit - applied + undone - refunded."""
    moved: dict[int, int] = defaultdict(int)
    for p in rows.payments:
        if p.id not in rows.reversed_ids:
            moved[p.customer_id] += p.to_bank_credit_cents
    sign = {"applied": -1, "unapplied": 1, "refund": -1}
    for e in rows.entries:
        moved[e.customer_id] += sign[e.kind] * e.amount_cents
    return [f"customer {c.id}: bank credit {c.bank_credit_cents} != opening {c.opening_bank_credit_cents} "
            f"+ movements {moved[c.id]}"
            for c in rows.customers if c.bank_credit_cents != c.opening_bank_credit_cents + moved[c.id]]


def no_bank_credit_while_owing(rows: LedgerRows) -> list[str]:
    """Nobody holds bank credit while any due is owed (it would have paid that due)."""
    return [f"customer {c.id}: bank credit {c.bank_credit_cents} while owing {c.total_due_cents - c.total_paid_cents}"
            for c in rows.customers if c.bank_credit_cents > 0 and c.total_paid_cents < c.total_due_cents]


def ledger_problems(rows: LedgerRows) -> list[str]:
    """Return what is wrong with any ledger's sums (nothing, when they hold)."""
    return [*payments_are_whole(rows), *applications_are_whole(rows), *months_within_due(rows),
            *months_match_allocations(rows), *totals_match_months(rows), *bank_credit_adds_up(rows),
            *no_bank_credit_while_owing(rows)]


def check_invariants(db: Database) -> None:
    """Assert the ledger's sums hold for every customer, to the cent."""
    problems = ledger_problems(read_ledger(db))
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- checks after a payment storm

class ClientRecord(Protocol):
    """What a storm's clients saw (``bench.storm_client.Outcome``), by Idempotency-Key."""

    accepted: Mapping[str, dict]  # the first 2xx answer: customer_id, amount_cents, payment_id, year, month, ...
    answers: Mapping[str, list]  # every 2xx answer, each with "replayed"
    unresolved: Mapping[str, dict]  # sent (customer_id, ...) but never answered


def no_reversals(rows: LedgerRows) -> list[str]:
    """A storm reverses nothing."""
    if rows.reversed_ids:
        return [f"{len(rows.reversed_ids)} reversals on storm customers (the storm makes none)"]
    return []


def no_bank_credit_entries(rows: LedgerRows) -> list[str]:
    """A storm adds no due and refunds nothing, so no bank credit moves but payments' overflow."""
    if rows.entries:
        return [f"{len(rows.entries)} bank credit entries on storm customers (the storm makes none)"]
    return []


def _rows_by_key(rows: LedgerRows) -> dict[tuple, list]:
    by_key: dict[tuple, list] = defaultdict(list)
    for p in rows.payments:
        by_key[(p.customer_id, p.idempotency_key)].append(p)
    return by_key


def landed_unresolved(rows: LedgerRows, seen: ClientRecord) -> list[str]:
    """Return the keys the clients gave up on whose payment landed all the same."""
    by_key = _rows_by_key(rows)
    return [k for k, sent in seen.unresolved.items() if (sent["customer_id"], k) in by_key]


def one_row_per_key(rows: LedgerRows, seen: ClientRecord) -> list[str]:
    """Every accepted key is exactly one payment row, as answered; no row nobody sent; one record per payment."""
    problems = []
    by_key = _rows_by_key(rows)
    twice = {k: [p.id for p in v] for k, v in by_key.items() if len(v) > 1}
    if twice:
        problems.append(f"{len(twice)} key(s) with more than one payment: {list(twice.items())[:5]}")
    for key, acc in seen.accepted.items():
        found = by_key.get((acc["customer_id"], key), [])
        if len(found) != 1:
            problems.append(f"accepted payment {key} has {len(found)} rows")
            continue
        p = found[0]
        if (p.id, p.amount_cents, p.year, p.month) != (acc["payment_id"], acc["amount_cents"], acc["year"],
                                                       acc["month"]):
            problems.append(f"accepted payment {key}: answer {acc} but row {tuple(p)}")
    known = set(seen.accepted) | set(seen.unresolved)
    strangers = [p.id for p in rows.payments if p.idempotency_key not in known]
    if strangers:
        problems.append(f"{len(strangers)} payment row(s) no client sent or was told of: {strangers[:10]}")
    if rows.idempotency_records != len(rows.payments):
        problems.append(f"{rows.idempotency_records} idempotency records for {len(rows.payments)} payments")
    return problems


def mismatched_replays(seen: ClientRecord) -> dict[str, list]:
    """Return the keys whose later answers differ from the first (apart from saying they are replays)."""
    return {k: v for k, v in seen.answers.items()
            if any({**a, "replayed": None} != {**v[0], "replayed": None} for a in v[1:])}


def replays_repeat_first_answer(seen: ClientRecord) -> list[str]:
    """Every replay returned the first answer; only one answer per key says it made the payment."""
    problems = []
    mismatched = mismatched_replays(seen)
    if mismatched:
        problems.append(f"{len(mismatched)} key(s) whose replays differ from the first answer: "
                        f"{list(mismatched.items())[:3]}")
    fresh_twice = [k for k, v in seen.answers.items() if sum(not a["replayed"] for a in v) > 1]
    if fresh_twice:
        problems.append(f"{len(fresh_twice)} key(s) answered 'not a replay' more than once: {fresh_twice[:5]}")
    return problems


def money_in_is_money_paid(rows: LedgerRows, seen: ClientRecord) -> list[str]:
    """Per customer, allocations + bank credit == the payments accepted (+ those given up on that landed)."""
    paid: dict[int, int] = defaultdict(int)
    for acc in seen.accepted.values():
        paid[acc["customer_id"]] += acc["amount_cents"]
    by_key = _rows_by_key(rows)
    landed: dict[int, int] = defaultdict(int)
    for k in landed_unresolved(rows, seen):
        cid = seen.unresolved[k]["customer_id"]
        landed[cid] += by_key[(cid, k)][0].amount_cents
    allocated: dict[int, int] = defaultdict(int)
    for a in rows.allocations:
        if a.payment_id is not None:
            allocated[a.customer_id] += a.amount_cents
    banked: dict[int, int] = defaultdict(int)
    for p in rows.payments:
        banked[p.customer_id] += p.to_bank_credit_cents
    return [f"customer {cid}: allocations {allocated[cid]} + bank credit {banked[cid]} "
            f"!= accepted payments {paid[cid]} (+{landed[cid]} unresolved that landed)"
            for cid in sorted({c.id for c in rows.customers} | set(paid))
            if allocated[cid] + banked[cid] != paid[cid] + landed[cid]]


def bank_credit_is_overflow(rows: LedgerRows) -> list[str]:
    """Each customer's bank credit is exactly what their payments put there (a storm adds no due, so none is spent)."""
    banked: dict[int, int] = defaultdict(int)
    for p in rows.payments:
        banked[p.customer_id] += p.to_bank_credit_cents
    return [f"customer {c.id}: bank credit {c.bank_credit_cents} != payments' {banked[c.id]}"
            for c in rows.customers if c.bank_credit_cents != banked[c.id]]


def allocations_replay_serially(rows: LedgerRows) -> list[str]:
    """The allocations are what the rule gives, payment after payment in id order: no two saw the same 'owed'.

    The rule sees every month of the customer (the chosen one, the later ones,
    then the oldest still owed), so a replay that skipped any would differ.
    """
    by_payment = {pid: [(a.year, a.month, a.amount_cents) for a in v] for pid, v in rows.allocations_of().items()}
    owed = {cid: {(d.year, d.month): d.due_cents - d.opening_paid_cents for d in months}
            for cid, months in rows.dues_of().items()}
    not_serial = []
    for p in rows.payments:
        mine = owed.setdefault(p.customer_id, {})
        expected, to_bank = rule.allocate(p.amount_cents, (p.year, p.month),
                                          [rule.Outstanding(y, m, left) for (y, m), left in mine.items()])
        if (p.year, p.month) not in mine:  # a month the customer does not have: the ledger refuses it
            not_serial.append(p.id)
            continue
        for a in expected:
            mine[(a.year, a.month)] -= a.amount_cents
        if [(a.year, a.month, a.amount_cents) for a in expected] != by_payment.get(p.id, []) \
                or to_bank != p.to_bank_credit_cents:
            not_serial.append(p.id)
    if not_serial:
        return [f"{len(not_serial)} payment(s) differ from a serial replay of the rule: {not_serial[:10]}"]
    return []


def audit_storm(database_url: str, customer_ids: Collection[int], seen: ClientRecord) -> dict:
    """Check the storm customers' ledger against what the clients saw; return figures and a list of problems."""
    db = Database(database_url)
    try:
        rows = read_ledger(db, customer_ids)
    finally:
        db.dispose()
    problems = [*no_reversals(rows), *no_bank_credit_entries(rows), *ledger_problems(rows),
                *one_row_per_key(rows, seen), *replays_repeat_first_answer(seen), *money_in_is_money_paid(rows, seen),
                *bank_credit_is_overflow(rows), *allocations_replay_serially(rows)]
    replays_answered = sum(len(v) - 1 for v in seen.answers.values())
    allocated = sum(a.amount_cents for a in rows.allocations if a.payment_id is not None)
    return {
        "ok": not problems,
        "problems": problems,
        "payments_in_ledger": len(rows.payments),
        "payments_accepted": len(seen.accepted),
        "unresolved": len(seen.unresolved),
        "unresolved_that_landed": len(landed_unresolved(rows, seen)),
        "replays_answered": replays_answered,
        "replays_matching_first_answer": replays_answered - sum(len(v) - 1 for v in mismatched_replays(seen).values()),
        "accepted_cents": sum(acc["amount_cents"] for acc in seen.accepted.values()),
        "allocated_cents": allocated,
        "bank_credit_cents": sum(p.to_bank_credit_cents for p in rows.payments),
        "months_fully_paid": sum(d.paid_cents == d.due_cents for d in rows.dues),
        "months": len(rows.dues),
    }
