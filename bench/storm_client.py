"""The storm's load generator: client threads paying a few customers over HTTP, with replays and races.

Every payment carries an ``Idempotency-Key``. Retries reuse the key:

* every ``dup_every``-th payment is sent again after its answer arrived (a
  client that did not trust the first answer);
* every ``race_every``-th payment is sent twice *at the same time* over two
  connections (a client whose retry overtook the first try);
* a request whose connection fails, times out or answers 5xx is retried with
  the same key, with backoff, until it gets an answer (bounded in attempts and
  time). That is what makes the crash test (``bench.crash``) possible.

``Outcome`` is everything the clients saw; ``testing.audit.audit_storm`` holds
the ledger against it.
"""
from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

STORM_PASSWORD = "storm-password-1"


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
class Schedule:
    """The storm customers' schedule: `months` months of `due_cents` each, from `first_year`."""

    customer_ids: list[int]
    first_year: int
    months: int
    due_cents: int

    def periods(self) -> list[tuple[int, int]]:
        return [(self.first_year + i // 12, i % 12 + 1) for i in range(self.months)]


def plan_schedule(cfg: StormConfig) -> Schedule:
    """Size the dues a fifth below what the storm pays, so that it pays every month and overflows into bank credit.

    (Bank credit is only what is left once every month is paid.)
    """
    per_customer = cfg.clients * cfg.payments / cfg.customers * (1 + cfg.max_amount_cents) / 2
    months = 36
    due = max(1_000, int(0.8 * per_customer / months))
    ids = list(range(cfg.first_customer_id, cfg.first_customer_id + cfg.customers))
    return Schedule(ids, 2023, months, due)


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

