"""The multi-replica topology of `make cluster`, started for real and hurt on purpose.

One cluster for the module (``python -m deploy.cluster`` in a throwaway VAR_DIR,
throwaway PostgreSQL databases, free ports, a Redis of its own, polls every
second): PostgreSQL, Redis, the MLflow tracking server, two portal and two
serving replicas, nginx in front of each pair. Then:

* a payment storm through nginx over both portals keeps every invariant to the cent;
* failed logins count across both portals (Redis): the 6th in a minute is a 429 on either;
* ``promote`` moves the alias and both serving replicas answer with the new version;
* kill -9 of one portal and one serving replica mid-storm, with decisions and ML credit
  requests flowing too: traffic goes on through the others, no payment or credit decision is
  lost or doubled, no ML credit request finds the ML method unavailable (not even while the
  restarted serving replica loads its model), and the keepers start the killed replicas again;
* the tracking server killed and restarted: serving keeps its model meanwhile, and
  follows the alias again once it is back.

With TEST_CLUSTER=1 (as .ci/run sets) a cluster that cannot start fails these tests
instead of skipping them.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid

import pytest
import requests
from sqlalchemy import create_engine, text

from bench.storm import create_customers
from bench.storm_client import Storm, StormConfig, login_all, plan_schedule
from portal.db import Database
from testing.audit import audit_storm, check_invariants
from testing.cluster import Cluster, group_pids
from testing.databases import PG_ADMIN_URL

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.postgres]

REQUIRED = os.environ.get("TEST_CLUSTER") == "1"
POLL_SECONDS = 1.0
RESTART_DELAY = 3.0  # seconds a killed replica stays down before its keeper starts it again
START_TIMEOUT = 420
CREDIT_CUSTOMERS = [130, 131, 132]  # demo customers (five years of history): ML credit requests mid-storm
ROW = {"paid_pct_5y_ago": 81.3, "paid_pct_4y_ago": 79.4, "paid_pct_3y_ago": 92.7, "paid_pct_2y_ago": 92.6,
       "paid_pct_1y_ago": 97.8}


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"TEST_CLUSTER=1 but the cluster cannot start: {reason}")
    pytest.skip(f"{reason} (TEST_CLUSTER=1 makes this a failure)")


def _check_prerequisites() -> None:
    if shutil.which("nginx") is None and not os.access("/usr/sbin/nginx", os.X_OK):
        _unavailable("nginx is not installed (make cluster-deps)")
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure
        _unavailable(f"PostgreSQL does not answer: {exc}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _check_prerequisites()
    # The demo's 1,000 customers: enough for the first model to pass the gate (as on make run).
    c = Cluster(tmp_path_factory.mktemp("cluster"), customers=1000, poll_seconds=POLL_SECONDS,
                restart_delay=RESTART_DELAY, start_timeout=START_TIMEOUT)
    started = time.monotonic()
    try:
        try:
            c.start()
        except RuntimeError as exc:
            _unavailable(str(exc))
        c.info["start_seconds"] = round(time.monotonic() - started, 1)
        print(f"\ncluster started in {c.info['start_seconds']} s")
        yield c
    finally:
        leftovers = c.stop()
        c.drop_databases()
    assert not leftovers, f"processes outlived the cluster: {leftovers}"


def versions(urls: list[str], samples: int = 1) -> list[str | None]:
    """Return the model version each serving replica serves: one version if `samples` answers agree, else None.

    Each gunicorn worker of a replica holds its own model and polls the alias on its own;
    a request reaches any of them, so several answers (each on a new connection) are
    needed to say that a whole replica moved.
    """
    out = []
    for url in urls:
        seen = set()
        for _ in range(samples):
            try:
                seen.add(requests.get(url + "/version", timeout=5).json().get("version"))
            except (requests.RequestException, ValueError):
                seen.add(None)
        out.append(seen.pop() if len(seen) == 1 else None)
    return out


def wait_for_versions(urls: list[str], version: str, timeout: float, samples: int = 12) -> float:
    """Wait until every worker of every replica serves `version` (as far as `samples` answers tell)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if versions(urls, samples) == [version] * len(urls):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"replicas serve {versions(urls, samples)} {timeout} s after promoting {version}")


def decide(url: str, headers: dict) -> requests.Response:
    return requests.post(url + "/v1/decisions", json={"rows": [ROW]}, headers=headers, timeout=10)


def upstreams_of(cluster: Cluster, path: str) -> dict[str, int]:
    """Count the requests for `path` nginx passed to each upstream (from its access log)."""
    counts: dict[str, int] = {}
    for line in (cluster.var_dir / "cluster" / "logs" / "nginx.access.log").read_text().splitlines():
        if f" {path} " in line:
            upstream = line.split("upstream=", 1)[1].split()[0]
            counts[upstream] = counts.get(upstream, 0) + 1
    return counts


def storm_config(first_customer_id: int, payments: int) -> StormConfig:
    return StormConfig(clients=6, payments=payments, customers=3, dup_every=5, race_every=7,
                       first_customer_id=first_customer_id, time_limit=180, retry_deadline=60, request_timeout=20)


def test_payment_storm_through_nginx_keeps_every_invariant(cluster):
    cfg = storm_config(900_001, 25)
    schedule = plan_schedule(cfg)
    url, db_url = cluster.info["portal_url"], cluster.info["database_url"]
    create_customers(db_url, schedule)
    out = Storm(url, schedule, cfg, login_all(url, schedule.customer_ids)).run()
    report = audit_storm(db_url, schedule.customer_ids, out)

    assert report["ok"], report["problems"]
    assert out.http_5xx == len(out.rejected) == len(out.unresolved) == 0 and not out.client_errors
    assert report["payments_accepted"] == report["payments_in_ledger"] == cfg.clients * cfg.payments
    assert report["replays_matching_first_answer"] == report["replays_answered"] > 0
    assert report["accepted_cents"] == report["allocated_cents"] + report["bank_credit_cents"]
    by_portal = upstreams_of(cluster, "/api/customer/payment")
    portals = {u.removeprefix("http://") for u in cluster.info["portals"]}
    assert set(by_portal) == portals and min(by_portal.values()) > cfg.clients * cfg.payments / 4, by_portal
    db = Database(db_url)
    try:
        check_invariants(db)
    finally:
        db.dispose()


def _login(url: str, customer_id: int, password: str = "wrong-password") -> int:
    return requests.post(url + "/api/customer/login", json={"id": customer_id, "password": password},
                         timeout=10).status_code


def test_failed_logins_count_across_both_portals(cluster):
    one, two = cluster.info["portals"]
    # Five wrong passwords for one id, alternately on each replica: all five counted together.
    assert [_login((one, two)[i % 2], 120) for i in range(5)] == [401] * 5
    assert _login(one, 120) == 429 and _login(two, 120) == 429
    assert _login(two, 120, "customer123") == 429  # throttled means throttled, even with the right password
    # Through the load balancer, for another id: the same limit.
    lb = cluster.info["portal_url"]
    assert [_login(lb, 121) for _ in range(5)] == [401] * 5
    assert _login(lb, 121) == 429
    assert _login(lb, 122, "customer123") == 200  # other ids are not affected


def test_promote_reaches_both_serving_replicas(cluster):
    servings = cluster.info["servings"]
    assert versions(servings, samples=6) == ["1", "1"]
    out = cluster.run("-m", "pipeline.run", "--no-promote", "--seed", "7")
    assert "credit-approval version 2" in out, out
    assert versions(servings, samples=6) == ["1", "1"]  # registered, not promoted: nothing moves

    cluster.run("-m", "model_registry", "promote", "2", "--why", "cluster test: alias move")
    promoted = time.monotonic()
    seconds = wait_for_versions(servings, "2", timeout=POLL_SECONDS + 30)
    print(f"\nboth serving replicas on version 2 {seconds:.2f} s after the promotion "
          f"(poll every {POLL_SECONDS} s, then download and check the model)")
    assert seconds <= POLL_SECONDS + 10, f"{seconds:.1f} s: the alias move took too long to reach the replicas"
    answers = {decide(cluster.info["serving_url"], cluster.serving_headers).json()["model_version"] for _ in range(12)}
    assert answers == {"2"}
    assert time.monotonic() - promoted < 60


def test_kill_one_portal_and_one_serving_replica_mid_storm(cluster):
    cfg = storm_config(900_101, 40)
    schedule = plan_schedule(cfg)
    url, db_url = cluster.info["portal_url"], cluster.info["database_url"]
    create_customers(db_url, schedule)
    storm = Storm(url, schedule, cfg, login_all(url, schedule.customer_ids))
    runner = threading.Thread(target=storm.run, daemon=True)

    # Decisions through the serving load balancer all along: (time, status, version) of each.
    decisions: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def ask():
        with requests.Session() as http:
            while not stop.is_set():
                try:
                    r = http.post(cluster.info["serving_url"] + "/v1/decisions", json={"rows": [ROW]}, timeout=30,
                                  headers=cluster.serving_headers)
                    decisions.append((time.monotonic(), r.status_code, r.json().get("model_version")
                                      if r.status_code == 200 else None))
                except requests.RequestException:
                    decisions.append((time.monotonic(), 0, None))
                time.sleep(0.01)

    # ML credit requests through the portal load balancer (portal -> serving load balancer), each
    # retried with its Idempotency-Key until it is answered: key -> request_id of the answer. A 502 is
    # nginx's for a request that was in flight at the killed portal; a 503 is the portal's "ML method
    # unavailable", which it must never answer while one serving replica is up.
    credit_answers: dict[str, str] = {}
    credit_failures: list[str] = []
    ml_unavailable: list[str] = []
    tokens = login_all(url, CREDIT_CUSTOMERS, password="customer123")
    year = time.gmtime().tm_year + 1

    def ask_credit(customer_id: int):
        with requests.Session() as http:
            n = 0
            while not stop.is_set():
                n += 1
                key = f"cluster-ml-{customer_id}-{n}-{uuid.uuid4().hex[:6]}"
                body = {"year": year, "month": n % 12 + 1, "amount": "10.00", "method": "ml"}
                headers = {"Authorization": f"Bearer {tokens[customer_id]}", "Idempotency-Key": key}
                for _attempt in range(60):
                    try:
                        r = http.post(url + "/api/customer/credit-request", json=body, headers=headers, timeout=30)
                    except requests.RequestException:
                        r = None
                    if r is not None and r.status_code < 500:
                        if r.status_code == 200:
                            credit_answers[key] = r.json()["request_id"]
                        else:
                            credit_failures.append(f"{key}: {r.status_code} {r.text[:200]}")
                        break
                    if r is not None and r.status_code == 503:
                        ml_unavailable.append(f"{key}: {r.text[:200]}")
                    time.sleep(0.2)
                else:
                    credit_failures.append(f"{key}: never answered")
                time.sleep(0.05)

    askers = [threading.Thread(target=ask, daemon=True)]
    askers += [threading.Thread(target=ask_credit, args=(cid,), daemon=True) for cid in CREDIT_CUSTOMERS]
    runner.start()
    for thread in askers:
        thread.start()
    while storm.progress < 0.3 and runner.is_alive():
        time.sleep(0.01)
    assert runner.is_alive(), "the storm ended before the kill"
    old_portal, old_serving = cluster.kill("portal1"), cluster.kill("serving1")
    killed_at, done_at_kill = time.monotonic(), storm.out.payments_done
    time.sleep(RESTART_DELAY / 2)  # both replicas are down (their keepers wait RESTART_DELAY)
    assert not group_pids(old_portal) and not group_pids(old_serving)
    down_until = time.monotonic()
    payments_while_down = storm.out.payments_done - done_at_kill
    runner.join(timeout=cfg.time_limit + cfg.retry_deadline + 60)
    stop.set()
    for thread in askers:
        thread.join(timeout=60)
    out = storm.out
    report = audit_storm(db_url, schedule.customer_ids, out)

    # Traffic went on through the survivors while the killed replicas were down ...
    assert payments_while_down > 0, "no payment went through while portal1 was down"
    answered_while_down = [d for d in decisions if killed_at < d[0] < down_until and d[1] == 200]
    assert answered_while_down, "no decision was answered while serving1 was down"
    # ... every decision was answered (nginx passes a failed try to the other replica) ...
    assert [d for d in decisions if d[1] != 200] == [], "decisions failed through the load balancer"
    # ... and no payment was lost or doubled: retried with its key, answered once, in the ledger once.
    assert report["ok"], report["problems"]
    assert len(out.rejected) == len(out.unresolved) == 0 and not out.client_errors and not out.stopped_early
    assert report["payments_accepted"] == report["payments_in_ledger"] == cfg.clients * cfg.payments
    assert report["replays_matching_first_answer"] == report["replays_answered"]
    # Every ML credit request was answered once, and stored once, as answered; none found the ML
    # method unavailable, not even while serving1 was restarting (nginx.conf.template, /v1/decisions).
    assert not credit_failures, credit_failures[:5]
    assert not ml_unavailable, ml_unavailable[:5]
    assert len(credit_answers) >= len(CREDIT_CUSTOMERS)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT request_id FROM credit_decisions WHERE method = 'ml' AND "
                                       "customer_id IN (" + ",".join(map(str, CREDIT_CUSTOMERS)) + ")")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(stored) == sorted(credit_answers.values())
    db = Database(db_url)
    try:
        check_invariants(db)
    finally:
        db.dispose()

    # The keepers started the killed replicas again; both pairs are whole.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        restarted = cluster.pid("portal1") != old_portal and cluster.pid("serving1") != old_serving
        if restarted and all(_answers(u, "/ready") for u in cluster.info["servings"]) \
                and _answers(cluster.info["portals"][0], "/api/openapi.json"):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the killed replicas did not come back")


def test_tracking_server_restart_keeps_serving_then_reloads(cluster):
    servings, lb = cluster.info["servings"], cluster.info["serving_url"]
    before = versions(servings, samples=6)
    assert before[0] == before[1] is not None
    cluster.kill("mlflow")
    assert not _answers(cluster.info["mlflow_url"])
    # The tracking server is down (kill -9, then its keeper's delay and a start of several
    # seconds): several polls fail, and serving keeps answering with the model it has.
    down_since = time.monotonic()
    while time.monotonic() - down_since < 3 * POLL_SECONDS:
        assert versions(servings, samples=4) == before
        assert all(requests.get(u + "/ready", timeout=5).status_code == 200 for u in servings)
        assert decide(lb, cluster.serving_headers).json()["model_version"] == before[0]
        time.sleep(0.2)

    deadline = time.monotonic() + 180
    while not _answers(cluster.info["mlflow_url"]):
        assert time.monotonic() < deadline, "the tracking server did not come back"
        time.sleep(0.5)
    target = "1" if before[0] != "1" else "2"
    cluster.run("-m", "model_registry", "promote", target, "--why", "cluster test: after a tracking server restart")
    seconds = wait_for_versions(servings, target, timeout=POLL_SECONDS + 30)
    print(f"\nafter the tracking server's restart both replicas followed the alias to {target} in {seconds:.2f} s")


def _answers(url: str, path: str = "/health") -> bool:
    try:
        return requests.get(url + path, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_workbench_reads_the_tracking_server_and_answers_the_portals(cluster):
    # The service itself: the shared token, the registry of the tracking server (not a local store).
    url = cluster.info["workbench_url"]
    assert requests.get(url + "/v1/models/credit-approval", timeout=30).status_code == 401
    listed = requests.get(url + "/v1/models/credit-approval", headers=cluster.serving_headers, timeout=60).json()
    assert "1" in [v["version"] for v in listed["versions"]]
    # A manager's page through nginx and either portal replica.
    session = requests.Session()
    login_page = session.get(cluster.info["portal_url"] + "/manager/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page).group(1)
    assert session.post(cluster.info["portal_url"] + "/manager/login", timeout=10, allow_redirects=False,
                        data={"csrf_token": token, "id": "1", "password": "manager123"}).status_code == 302
    page = session.get(cluster.info["portal_url"] + "/manager/workbench", timeout=60)
    assert page.status_code == 200 and "credit-approval" in page.text
