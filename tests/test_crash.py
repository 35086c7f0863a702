"""Crash test: kill -9 the portal's workers and all of gunicorn mid-storm; restart PostgreSQL mid-storm.

Clients retry every failed request with the same Idempotency-Key; afterwards no
payment may be half-written, every accepted payment must exist exactly once and
the ledger's sums must hold to the cent. The full size is `python -m bench.crash`.
"""
import pytest

from bench.crash import Fault, PrivateCluster, can_restart_postgres, run_crash
from bench.storm_client import StormConfig
from portal.db import Database
from testing.audit import check_invariants
from testing.databases import throwaway_database

pytestmark = pytest.mark.slow

CFG = StormConfig(clients=8, payments=40, customers=3, dup_every=6, race_every=9,
                  time_limit=150, retry_deadline=60, request_timeout=30)


def _assert_survived(result: dict, url: str) -> None:
    assert result["ok"], "\n".join(result["problems"]) + "\n" + result.get("gunicorn_log_tail", "")
    assert all(e["struck"] for e in result["faults"]), result["faults"]
    assert result["conn_failures"] + result["http_5xx"] > 0, "the faults should have failed some requests"
    assert result["unresolved"] == result["rejected_4xx"] == 0
    assert result["payments_accepted"] == result["payments_in_ledger"] == CFG.clients * CFG.payments
    assert result["replays_matching_first_answer"] == result["replays_answered"]
    db = Database(url)
    try:
        check_invariants(db)
    finally:
        db.dispose()


def test_kill_workers_and_gunicorn_mid_storm(db_url, tmp_path):
    faults = [Fault("workers", 0.2), Fault("workers", 0.4), Fault("gunicorn", 0.6)]
    result = run_crash(db_url, CFG, faults, workers=3, workdir=tmp_path)
    _assert_survived(result, db_url)
    assert result["gunicorn_starts"] == 2
    assert result["http_5xx"] == 0  # killing the app must not make the database answer errors


@pytest.mark.skipif(not can_restart_postgres(), reason="restarting PostgreSQL needs root and its server tools")
def test_postgres_restarts_mid_storm(tmp_path):
    # A private throwaway cluster, so that restarting it disturbs no other test using the shared server.
    with PrivateCluster() as cluster, \
            throwaway_database("postgres", "crash", migrated=True, admin_url=cluster.admin_url) as url:
        faults = [Fault("workers", 0.15), Fault("db-immediate", 0.35), Fault("db-fast", 0.65)]
        result = run_crash(url, CFG, faults, workers=3, restart_db=cluster.restart, workdir=tmp_path)
        _assert_survived(result, url)
