"""Payment storm: many HTTP clients paying a few customers at once, then the ledger audited to the cent.

Design overview
---------------
* A real portal runs under gunicorn with several worker processes on a free
  loopback port (``Gunicorn``); nothing here talks to anything but 127.0.0.1.
* ``N`` client threads, each with its own ``requests`` session, send ``P``
  payments each to a small set of customers (random customer, month and amount).
  Every payment carries an ``Idempotency-Key``. Retries reuse the key:

  - every ``dup_every``-th payment is sent again after its answer arrived
    (a client that did not trust the first answer);
  - every ``race_every``-th payment is sent twice *at the same time* over two
    connections (a client whose retry overtook the first try);
  - a request whose connection fails, times out or answers 5xx is retried with
    the same key, with backoff, until it gets an answer (bounded in attempts
    and time). That is what makes the crash test (``bench.crash``) possible.

* Afterwards ``audit`` reads the ledger and checks, to the cent:

  - every accepted key is exactly one payment row, with the amount and
    customer sent, and the ``payment_id`` the client was told;
  - no payment row exists that the clients did not send;
  - every payment adds up: ``sum(allocations) + to_bank_credit == amount``
    (nothing half-written);
  - sum of allocations + bank credit == sum of accepted payments, per customer;
  - no month is paid beyond its due, and each month's ``paid`` is its opening
    balance plus its allocations; each customer's running totals match;
  - the allocations equal a serial replay of the allocation rule over each
    customer's payments in id order (the per-customer lock held: no two
    payments saw the same "still owed");
  - every replay returned the first answer, and at most one answer per key
    says it was not a replay.

Run ``python -m bench.storm --help``; the full size is 16 clients x 500
payments on 10 customers, on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/storm.py` as well as `python -m bench.storm`
    sys.path.insert(0, str(ROOT))

from portal.db import Database  # noqa: E402
from contracts import allocation as rule  # noqa: E402
from tests.servers import free_port  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STORM_PASSWORD = "storm-password-1"
SECRET_KEY = "storm-secret-key-not-for-production"


# --------------------------------------------------------------------------- the server

def _alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class Gunicorn:
    """A portal under gunicorn (its own process group), started, killed and restarted by pid."""

    def __init__(self, database_url: str, workers: int = 3, port: int | None = None,
                 workdir: Path | None = None, timeout: int = 60, app: str = "portal:create_app()"):
        self.database_url = database_url
        self.app = app
        self.workers = workers
        self.port = port or free_port()
        self.timeout = timeout
        self.owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="storm-gunicorn-"))
        self.log_path = self.workdir / f"gunicorn-{self.port}.log"
        self.var_dir = self.workdir / "var"  # the app's VAR_DIR: nothing lands in the repo's var/
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 60.0) -> Gunicorn:
        """Start gunicorn and wait until every worker can answer."""
        env = {**os.environ, "DATABASE_URL": self.database_url, "SECRET_KEY": SECRET_KEY,
               "VAR_DIR": str(self.var_dir), "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--workers", str(self.workers),
                 "--bind", f"127.0.0.1:{self.port}", "--timeout", str(self.timeout),
                 "--graceful-timeout", "5", "--backlog", "256", "--no-control-socket", self.app],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        self.starts += 1
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.kill_all()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the app answers and the master has all its workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; log: {self.log_tail()}")
            try:
                ok = requests.get(self.base_url + "/api/openapi.json", timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            if ok and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn not ready in {timeout} s; log: {self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """Return the pids of the master's current workers."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in children.split()]

    def kill_workers(self) -> list[int]:
        """SIGKILL every worker (the master starts new ones); return the pids killed."""
        pids = self.worker_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def kill_all(self) -> None:
        """SIGKILL the master and its workers (this gunicorn's own process group)."""
        if self.proc is None:
            return
        pids = [self.proc.pid, *self.worker_pids()]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        for pid in pids[1:]:  # orphaned workers are reaped by init: wait until each is dead
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop gunicorn: SIGTERM, then SIGKILL to the process group after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill_all()

    def cleanup(self) -> None:
        """Stop, and delete the log and VAR_DIR if this object made their folder."""
        self.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of gunicorn's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


# --------------------------------------------------------------------------- the ledger

@dataclass
class Schedule:
    """The storm customers' schedule: `months` months of `due_cents` each, from `first_year`."""

    customer_ids: list[int]
    first_year: int
    months: int
    due_cents: int

    def periods(self) -> list[tuple[int, int]]:
        return [(self.first_year + i // 12, i % 12 + 1) for i in range(self.months)]


def plan_schedule(cfg: StormConfig) -> Schedule:
    """Size the dues so that the storm pays most months and overflows into bank credit."""
    per_customer = cfg.clients * cfg.payments / cfg.customers * (1 + cfg.max_amount_cents) / 2
    months = 36
    due = max(1_000, int(per_customer / months))
    ids = list(range(cfg.first_customer_id, cfg.first_customer_id + cfg.customers))
    return Schedule(ids, 2023, months, due)


def create_customers(database_url: str, schedule: Schedule, password: str = STORM_PASSWORD) -> None:
    """Insert the storm's customers and their dues (nothing paid yet)."""
    from portal.auth.passwords import hash_password
    from portal.models import Customer, Due

    db = Database(database_url)
    try:
        hashed = hash_password(password)
        with db.sessions.begin() as s:
            for cid in schedule.customer_ids:
                s.add(Customer(id=cid, name=f"Storm {cid}", email=f"storm{cid}@example.com", age=40,
                               password_hash=hashed, total_due_cents=schedule.due_cents * schedule.months,
                               total_paid_cents=0, bank_credit_cents=0))
            s.flush()
            for cid in schedule.customer_ids:
                for year, month in schedule.periods():
                    s.add(Due(customer_id=cid, year=year, month=month, due_cents=schedule.due_cents,
                              paid_cents=0, opening_paid_cents=0))
    finally:
        db.dispose()


# --------------------------------------------------------------------------- the clients

@dataclass
class StormConfig:
    """How big and how hostile a storm is."""

    clients: int = 16
    payments: int = 500            # per client
    customers: int = 10
    dup_every: int = 7             # every k-th payment is sent again after its answer (0: never)
    race_every: int = 11           # every k-th payment is sent twice at once (0: never)
    max_amount_cents: int = 9_000
    seed: int = 1
    first_customer_id: int = 900_001
    request_timeout: float = 30.0  # one HTTP request
    retry_deadline: float = 90.0   # one payment's retries after failures, in seconds
    max_attempts: int = 200        # one payment's retries after failures, in count
    time_limit: float = 900.0      # the whole storm: clients stop starting payments after this


@dataclass
class Outcome:
    """Everything the clients saw."""

    accepted: dict[str, dict] = field(default_factory=dict)       # key -> the first 2xx answer (+ what was sent)
    answers: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # key -> every 2xx answer
    unresolved: dict[str, dict] = field(default_factory=dict)     # key -> what was sent, never answered
    rejected: list[dict] = field(default_factory=list)            # 4xx answers (a bug in a storm)
    conn_failures: int = 0
    timeouts: int = 0
    http_5xx: int = 0
    status_counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    requests_sent: int = 0
    replays_sent: int = 0
    latencies: list[float] = field(default_factory=list)          # seconds, every answered request
    payments_done: int = 0
    elapsed: float = 0.0
    stopped_early: bool = False
    client_errors: list[str] = field(default_factory=list)  # a client thread that crashed (a driver bug)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def login_all(base_url: str, customer_ids: list[int], password: str = STORM_PASSWORD,
              deadline: float = 60.0) -> dict[int, str]:
    """Log every storm customer in once; return their bearer tokens."""
    tokens = {}
    with requests.Session() as http:
        for cid in customer_ids:
            stop = time.monotonic() + deadline
            while True:
                try:
                    r = http.post(f"{base_url}/api/customer/login", json={"id": cid, "password": password}, timeout=30)
                    if r.status_code == 200:
                        tokens[cid] = r.json()["token"]
                        break
                    problem = f"{r.status_code} {r.text[:200]}"
                except requests.RequestException as exc:
                    problem = repr(exc)
                if time.monotonic() > stop:
                    raise RuntimeError(f"cannot log customer {cid} in: {problem}")
                time.sleep(0.2)
    return tokens


def _answer(body: dict) -> dict:
    """The part of a payment's answer a replay must repeat exactly."""
    return {k: body.get(k) for k in ("payment_id", "year", "month", "amount", "allocations", "to_bank_credit")}


def _cents(amount: str) -> int:
    units, _, frac = amount.partition(".")
    return int(units) * 100 + int(frac.ljust(2, "0"))


class Storm:
    """Run the clients against a live portal and collect what they saw."""

    def __init__(self, base_url: str, schedule: Schedule, cfg: StormConfig, tokens: dict[int, str]):
        self.base_url = base_url
        self.schedule = schedule
        self.cfg = cfg
        self.tokens = tokens
        self.out = Outcome()
        self.total = cfg.clients * cfg.payments
        self._stop = threading.Event()
        self.run_id = uuid.uuid4().hex[:8]

    @property
    def progress(self) -> float:
        """Return the share of payments done (answered or given up)."""
        return self.out.payments_done / self.total if self.total else 1.0

    def stop(self) -> None:
        """Ask the clients to stop starting new payments."""
        self._stop.set()

    def _send(self, http: requests.Session, key: str, cid: int, body: dict, replay: bool) -> dict | None:
        """Send one payment until an answer comes (same key every time); None if given up."""
        cfg, out = self.cfg, self.out
        headers = {"Authorization": f"Bearer {self.tokens[cid]}", "Idempotency-Key": key}
        deadline = time.monotonic() + cfg.retry_deadline
        for attempt in range(cfg.max_attempts):
            started = time.perf_counter()
            with out.lock:
                out.requests_sent += 1
                out.replays_sent += int(replay or attempt > 0)
            try:
                r = http.post(f"{self.base_url}/api/customer/payment", json=body, headers=headers,
                              timeout=cfg.request_timeout)
            except requests.Timeout:
                with out.lock:
                    out.timeouts += 1
                r = None
            except requests.RequestException:  # refused, reset, or broken mid-answer (ChunkedEncodingError)
                with out.lock:
                    out.conn_failures += 1
                r = None
            if r is not None:
                with out.lock:
                    out.status_counts[r.status_code] += 1
                    out.latencies.append(time.perf_counter() - started)
                if r.status_code < 500:
                    try:
                        data = r.json()
                    except ValueError:
                        data = {"error": r.text[:300]}
                    return {"status": r.status_code, "body": data}
                with out.lock:
                    out.http_5xx += 1
            if time.monotonic() > deadline:
                break
            time.sleep(min(1.0, 0.02 * 2 ** min(attempt, 6)) * (0.5 + random.random()))
        return None

    def _record(self, key: str, cid: int, sent: dict, result: dict | None) -> None:
        out = self.out
        with out.lock:
            if result is None:
                if key not in out.accepted:
                    out.unresolved[key] = {"customer_id": cid, **sent}
                return
            if result["status"] // 100 == 2:
                body = result["body"]
                out.answers[key].append({**_answer(body), "replayed": bool(body.get("replayed"))})
                out.accepted.setdefault(key, {"customer_id": cid, "amount_cents": _cents(sent["amount"]),
                                              "year": sent["year"], "month": sent["month"], **_answer(body)})
                out.unresolved.pop(key, None)
            else:
                out.rejected.append({"key": key, "customer_id": cid, "sent": sent, **result})

    def _client(self, n: int, started: float) -> None:
        """Run one client; a crash of the client itself is recorded, never silent."""
        current: list = []
        try:
            self._payments(n, started, current)
        except Exception as exc:  # noqa: BLE001 - a driver bug must fail the run, with its reason
            with self.out.lock:
                self.out.client_errors.append(f"client {n}: {exc!r}")
                if current:
                    key, cid, sent = current
                    if key not in self.out.accepted:
                        self.out.unresolved[key] = {"customer_id": cid, **sent}

    def _payments(self, n: int, started: float, current: list) -> None:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}-{n}")
        periods = self.schedule.periods()
        twin_pool = ThreadPoolExecutor(1, thread_name_prefix=f"twin{n}") if cfg.race_every else None
        with requests.Session() as http, requests.Session() as twin_http:
            try:
                for i in range(cfg.payments):
                    if self._stop.is_set() or time.monotonic() - started > cfg.time_limit:
                        self.out.stopped_early = True
                        return
                    cid = rng.choice(self.schedule.customer_ids)
                    year, month = rng.choice(periods)
                    cents = rng.randint(1, cfg.max_amount_cents)
                    sent = {"year": year, "month": month, "amount": f"{cents // 100}.{cents % 100:02d}"}
                    key = f"storm-{self.run_id}-{n}-{i}"
                    current[:] = [key, cid, sent]
                    racing = cfg.race_every and (i + 1) % cfg.race_every == 0
                    twin = twin_pool.submit(self._send, twin_http, key, cid, sent, True) if racing else None
                    self._record(key, cid, sent, self._send(http, key, cid, sent, False))
                    if twin is not None:
                        self._record(key, cid, sent, twin.result())
                    if cfg.dup_every and (i + 1) % cfg.dup_every == 0:
                        self._record(key, cid, sent, self._send(http, key, cid, sent, True))
                    with self.out.lock:
                        self.out.payments_done += 1
            finally:
                if twin_pool is not None:
                    twin_pool.shutdown(wait=True)

    def run(self) -> Outcome:
        """Run every client to the end (bounded by `time_limit`); return what they saw."""
        started = time.monotonic()
        threads = [threading.Thread(target=self._client, args=(n, started), name=f"client{n}", daemon=True)
                   for n in range(self.cfg.clients)]
        for t in threads:
            t.start()
        hard_stop = started + self.cfg.time_limit + self.cfg.retry_deadline + self.cfg.request_timeout + 30
        for t in threads:
            t.join(timeout=max(0.0, hard_stop - time.monotonic()))
        if any(t.is_alive() for t in threads):
            self.out.stopped_early = True
            self._stop.set()
        self.out.elapsed = time.monotonic() - started
        return self.out


# --------------------------------------------------------------------------- the audit

def audit(database_url: str, schedule: Schedule, out: Outcome) -> dict:
    """Check the ledger against what the clients saw; return figures and a list of problems."""
    problems: list[str] = []
    ids = schedule.customer_ids
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            params = {"lo": min(ids), "hi": max(ids)}
            where = "customer_id BETWEEN :lo AND :hi"
            payments = conn.execute(text(
                f"SELECT id, customer_id, year, month, amount_cents, to_bank_credit_cents, idempotency_key "
                f"FROM payments WHERE {where} ORDER BY id"), params).all()
            allocs = conn.execute(text(
                f"SELECT payment_id, customer_id, year, month, amount_cents FROM allocations "
                f"WHERE {where} ORDER BY id"), params).all()
            dues = conn.execute(text(
                f"SELECT customer_id, year, month, due_cents, paid_cents, opening_paid_cents FROM dues "
                f"WHERE {where} ORDER BY customer_id, year, month"), params).all()
            customers = conn.execute(text(
                "SELECT id, total_due_cents, total_paid_cents, bank_credit_cents FROM customers "
                "WHERE id BETWEEN :lo AND :hi"), params).all()
            reversals = conn.execute(text("SELECT count(*) FROM payment_reversals r JOIN payments p "
                                          f"ON p.id = r.payment_id WHERE p.{where}"), params).scalar()
            idem = conn.execute(text(f"SELECT count(*) FROM idempotency_records WHERE {where}"), params).scalar()
    finally:
        engine.dispose()

    if reversals:
        problems.append(f"{reversals} reversals on storm customers (the storm makes none)")

    # Every payment row adds up: nothing half-written.
    by_payment: dict[int, list] = defaultdict(list)
    for a in allocs:
        by_payment[a.payment_id].append(a)
    half = [p.id for p in payments
            if sum(a.amount_cents for a in by_payment[p.id]) + p.to_bank_credit_cents != p.amount_cents]
    if half:
        problems.append(f"{len(half)} payment(s) whose allocations + bank credit != amount: {half[:10]}")
    orphans = set(by_payment) - {p.id for p in payments}
    if orphans:
        problems.append(f"allocations of unknown payments: {sorted(orphans)[:10]}")

    # Every accepted key is exactly one row, as answered; no row nobody sent.
    rows_by_key: dict[tuple, list] = defaultdict(list)
    for p in payments:
        rows_by_key[(p.customer_id, p.idempotency_key)].append(p)
    twice = {k: [p.id for p in v] for k, v in rows_by_key.items() if len(v) > 1}
    if twice:
        problems.append(f"{len(twice)} key(s) with more than one payment: {list(twice.items())[:5]}")
    for key, acc in out.accepted.items():
        rows = rows_by_key.get((acc["customer_id"], key), [])
        if len(rows) != 1:
            problems.append(f"accepted payment {key} has {len(rows)} rows")
            continue
        p = rows[0]
        told = (acc["payment_id"], acc["amount_cents"], acc["year"], acc["month"])
        if (p.id, p.amount_cents, p.year, p.month) != told:
            problems.append(f"accepted payment {key}: answer {acc} but row {tuple(p)}")
    known = set(out.accepted) | set(out.unresolved)
    strangers = [p.id for p in payments if p.idempotency_key not in known]
    if strangers:
        problems.append(f"{len(strangers)} payment row(s) no client sent or was told of: {strangers[:10]}")
    landed_unresolved = [k for k in out.unresolved if (out.unresolved[k]["customer_id"], k) in rows_by_key]
    if idem != len(payments):
        problems.append(f"{idem} idempotency records for {len(payments)} payments")

    # Every replay returned the first answer; only one answer per key made the payment.
    mismatched = {k: v for k, v in out.answers.items()
                  if any({**a, "replayed": None} != {**v[0], "replayed": None} for a in v[1:])}
    if mismatched:
        problems.append(f"{len(mismatched)} key(s) whose replays differ from the first answer: "
                        f"{list(mismatched.items())[:3]}")
    fresh_twice = [k for k, v in out.answers.items() if sum(not a["replayed"] for a in v) > 1]
    if fresh_twice:
        problems.append(f"{len(fresh_twice)} key(s) answered 'not a replay' more than once: {fresh_twice[:5]}")
    replays_answered = sum(len(v) - 1 for v in out.answers.values())

    # Sums to the cent, per customer: allocations + bank credit == accepted payments.
    accepted_sum: dict[int, int] = defaultdict(int)
    for acc in out.accepted.values():
        accepted_sum[acc["customer_id"]] += acc["amount_cents"]
    alloc_sum: dict[int, int] = defaultdict(int)
    for a in allocs:
        alloc_sum[a.customer_id] += a.amount_cents
    bank_sum: dict[int, int] = defaultdict(int)
    for p in payments:
        bank_sum[p.customer_id] += p.to_bank_credit_cents
    extra = defaultdict(int)  # payments that landed although the client gave up on them
    for k in landed_unresolved:
        extra[out.unresolved[k]["customer_id"]] += rows_by_key[(out.unresolved[k]["customer_id"], k)][0].amount_cents
    for cid in ids:
        if alloc_sum[cid] + bank_sum[cid] != accepted_sum[cid] + extra[cid]:
            problems.append(f"customer {cid}: allocations {alloc_sum[cid]} + bank credit {bank_sum[cid]} "
                            f"!= accepted payments {accepted_sum[cid]} (+{extra[cid]} unresolved that landed)")

    # No month beyond its due; each month's paid is its opening plus its allocations; totals match.
    alloc_month: dict[tuple, int] = defaultdict(int)
    for a in allocs:
        alloc_month[(a.customer_id, a.year, a.month)] += a.amount_cents
    over = [tuple(d) for d in dues if not 0 <= d.paid_cents <= d.due_cents]
    if over:
        problems.append(f"{len(over)} month(s) paid beyond their due: {over[:5]}")
    drift = [tuple(d) for d in dues
             if d.paid_cents != d.opening_paid_cents + alloc_month[(d.customer_id, d.year, d.month)]]
    if drift:
        problems.append(f"{len(drift)} month(s) whose paid != opening + allocations: {drift[:5]}")
    due_by_customer: dict[int, list] = defaultdict(list)
    for d in dues:
        due_by_customer[d.customer_id].append(d)
    for c in customers:
        mine = due_by_customer[c.id]
        if (c.total_due_cents, c.total_paid_cents) != (sum(d.due_cents for d in mine), sum(d.paid_cents for d in mine)):
            problems.append(f"customer {c.id}: running totals drifted from the dues")
        if c.bank_credit_cents != bank_sum[c.id]:
            problems.append(f"customer {c.id}: bank credit {c.bank_credit_cents} != payments' {bank_sum[c.id]}")

    # Serial replay: the stored allocations are what the rule gives, payment after payment in id order.
    allocs_by_payment = {pid: [(a.year, a.month, a.amount_cents) for a in v] for pid, v in by_payment.items()}
    owed = {cid: {(d.year, d.month): d.due_cents - d.opening_paid_cents for d in due_by_customer[cid]} for cid in ids}
    not_serial = []
    for p in payments:
        months = [rule.Outstanding(y, m, left) for (y, m), left in owed[p.customer_id].items()]
        expected, to_bank = rule.allocate(p.amount_cents, (p.year, p.month), months)
        for a in expected:
            owed[p.customer_id][(a.year, a.month)] -= a.amount_cents
        if [(a.year, a.month, a.amount_cents) for a in expected] != allocs_by_payment.get(p.id, []) \
                or to_bank != p.to_bank_credit_cents:
            not_serial.append(p.id)
    if not_serial:
        problems.append(f"{len(not_serial)} payment(s) differ from a serial replay of the rule: {not_serial[:10]}")

    total_accepted = sum(accepted_sum.values())
    return {
        "ok": not problems,
        "problems": problems,
        "payments_in_ledger": len(payments),
        "payments_accepted": len(out.accepted),
        "unresolved": len(out.unresolved),
        "unresolved_that_landed": len(landed_unresolved),
        "replays_answered": replays_answered,
        "replays_matching_first_answer": replays_answered - sum(len(v) - 1 for v in mismatched.values()),
        "accepted_cents": total_accepted,
        "allocated_cents": sum(alloc_sum.values()),
        "bank_credit_cents": sum(bank_sum.values()),
        "months_fully_paid": sum(d.paid_cents == d.due_cents for d in dues),
        "months": len(dues),
    }


# --------------------------------------------------------------------------- one storm, end to end

def percentile(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of values, nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarize(cfg: StormConfig, out: Outcome, report: dict, **extra) -> dict:
    """Collect a storm's figures as a JSON-able dict."""
    return {
        "config": asdict(cfg),
        **extra,
        "elapsed_seconds": round(out.elapsed, 3),
        "payments_per_second": round(len(out.accepted) / out.elapsed, 1) if out.elapsed else None,
        "requests_sent": out.requests_sent,
        "replays_sent": out.replays_sent,
        "conn_failures": out.conn_failures,
        "timeouts": out.timeouts,
        "http_5xx": out.http_5xx,
        "rejected_4xx": len(out.rejected),
        "rejected_examples": out.rejected[:5],
        "status_counts": {str(k): v for k, v in sorted(out.status_counts.items())},
        "latency_ms": {"p50": round(1000 * percentile(out.latencies, 0.5), 2),
                       "p99": round(1000 * percentile(out.latencies, 0.99), 2),
                       "mean": round(1000 * statistics.fmean(out.latencies), 2) if out.latencies else 0.0},
        "stopped_early": out.stopped_early,
        "client_errors": out.client_errors,
        **report,
    }


def run_storm(database_url: str, cfg: StormConfig, workers: int = 3, server: Gunicorn | None = None,
              workdir: Path | None = None) -> dict:
    """Create the customers, start gunicorn (unless given one), run the storm, audit; return the figures.

    The database must be migrated and must not hold the storm's customer ids yet.
    """
    schedule = plan_schedule(cfg)
    create_customers(database_url, schedule)
    own = server is None
    server = server or Gunicorn(database_url, workers=workers, workdir=workdir).start()
    try:
        tokens = login_all(server.base_url, schedule.customer_ids)
        out = Storm(server.base_url, schedule, cfg, tokens).run()
    finally:
        if own:
            server.stop()
    report = audit(database_url, schedule, out)
    result = summarize(cfg, out, report, workers=server.workers, database=Database(database_url).engine.dialect.name)
    if out.http_5xx or out.rejected or out.unresolved or out.stopped_early or out.client_errors:
        result["ok"] = False
        result["problems"] = result["problems"] + [
            f"clients saw {out.http_5xx} 5xx, {len(out.rejected)} 4xx, {len(out.unresolved)} unanswered"
            + (", and stopped early" if out.stopped_early else "")] + out.client_errors
    if not result["ok"]:
        result["gunicorn_log"] = str(server.log_path)
        result["gunicorn_log_tail"] = server.log_tail()
    elif own:
        server.cleanup()
    return result


# --------------------------------------------------------------------------- throwaway databases

class ThrowawayDatabase:
    """A fresh migrated ledger (SQLite file or PostgreSQL database) dropped on exit."""

    def __init__(self, kind: str, admin_url: str = PG_ADMIN_URL, keep: bool = False):
        self.kind, self.admin_url, self.keep = kind, admin_url, keep
        self.url = ""
        self._dir: tempfile.TemporaryDirectory | None = None
        self._name = ""

    def __enter__(self) -> str:
        from portal.cli import migrate

        if self.kind == "sqlite":
            self._dir = tempfile.TemporaryDirectory(prefix="storm-sqlite-")
            self.url = f"sqlite:///{self._dir.name}/ledger.db"
        else:
            self._name = f"bench_{uuid.uuid4().hex[:10]}"
            admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self._name}"'))
            admin.dispose()
            self.url = self.admin_url.rsplit("/", 1)[0] + "/" + self._name
        migrate(self.url)
        return self.url

    def __exit__(self, *exc) -> None:
        if self.keep:
            print(f"kept {self.url}")
            return
        if self._dir is not None:
            self._dir.cleanup()
        if self._name:
            admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
            admin.dispose()


def bench_dir() -> Path:
    """Return var/bench/ (where the report generator collects the JSON results)."""
    from portal.config import var_dir

    path = var_dir() / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(name: str, data: dict) -> Path:
    """Write one benchmark's results to var/bench/<name>.json."""
    path = bench_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def machine() -> dict:
    """Describe this machine in a few fields."""
    import platform

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform()}


def print_storm(result: dict) -> None:
    """Print a storm's figures on a few lines."""
    print(f"  {result['database']}: {result['payments_accepted']} payments accepted in {result['elapsed_seconds']} s "
          f"= {result['payments_per_second']}/s with {result['config']['clients']} clients, "
          f"{result['workers']} workers; "
          f"latency p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms")
    print(f"    requests {result['requests_sent']} (replays {result['replays_sent']}, "
          f"{result['replays_matching_first_answer']}/{result['replays_answered']} answered replays = first answer); "
          f"conn failures {result['conn_failures']}, timeouts {result['timeouts']}, 5xx {result['http_5xx']}, "
          f"4xx {result['rejected_4xx']}")
    print(f"    ledger: {result['payments_in_ledger']} payments, accepted {result['accepted_cents']} cents = "
          f"allocated {result['allocated_cents']} + bank credit {result['bank_credit_cents']}; "
          f"{result['months_fully_paid']}/{result['months']} months fully paid")
    print("    invariants: " + ("OK" if result["ok"] else "FAILED\n      " + "\n      ".join(result["problems"])))


def main(argv: list[str] | None = None) -> int:
    """Run the storm on SQLite and/or PostgreSQL and print the audit."""
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=main.__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--payments", type=int, default=500, help="payments per client")
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--dup-every", type=int, default=7)
    parser.add_argument("--race-every", type=int, default=11)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)
    cfg = StormConfig(clients=args.clients, payments=args.payments, customers=args.customers,
                      dup_every=args.dup_every, race_every=args.race_every, seed=args.seed)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = {}
    print(f"payment storm: {cfg.clients} clients x {cfg.payments} payments on {cfg.customers} customers")
    for kind in kinds:
        with ThrowawayDatabase(kind, args.pg_admin_url) as url:
            results[kind] = run_storm(url, cfg, workers=args.workers)
        print_storm(results[kind])
    path = write_json("storm", {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results})
    print(f"wrote {path}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
