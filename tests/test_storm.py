"""Payment storm over HTTP: gunicorn with 3 workers, 8 clients paying 3 customers, replays and races.

The full-size storm is `python -m bench.storm` (16 clients x 500 payments on 10 customers).
"""
import subprocess
from pathlib import Path

import pytest

from bench import ab_payments, pay_wrk
from bench.storm import run_storm
from bench.storm_client import StormConfig
from portal.db import Database
from testing.audit import check_invariants
from testing.servers import portal

pytestmark = pytest.mark.slow


def test_payment_storm_keeps_every_cent(db_url, tmp_path):
    cfg = StormConfig(clients=8, payments=30, customers=3, dup_every=5, race_every=7,
                      time_limit=120, retry_deadline=60, request_timeout=30)
    result = run_storm(db_url, cfg, workers=3, workdir=tmp_path)

    assert result["ok"], "\n".join(result["problems"]) + "\n" + result.get("gunicorn_log_tail", "")
    assert result["payments_accepted"] == result["payments_in_ledger"] == 8 * 30
    assert result["http_5xx"] == result["rejected_4xx"] == result["unresolved"] == 0
    # Sequential resends (every 5th) and racing twins (every 7th) were answered, all with the first answer.
    assert result["replays_answered"] >= 8 * (30 // 5 + 30 // 7)
    assert result["replays_matching_first_answer"] == result["replays_answered"]
    assert result["accepted_cents"] == result["allocated_cents"] + result["bank_credit_cents"]
    assert result["allocated_cents"] > 0 and result["bank_credit_cents"] > 0  # both paths taken

    db = Database(db_url)
    try:
        check_invariants(db)
    finally:
        db.dispose()


def test_the_wrk_payment_run_pays_and_audits(db_url):
    """The payments/s benchmark's run (bench.pay_wrk): wrk's Lua client pays, and the audit finds the ledger whole."""
    baselines = iter([{"tps": 100.0}, {"tps": 300.0}])
    result = pay_wrk.payments_per_second(db_url, clients=4, customers=3, seconds=2, workers=1, threads=4,
                                         read_seconds=1, rounds=2, before_round=lambda: next(baselines))

    assert result["ok"], "\n".join(result["problems"])
    assert result["payments_accepted"] > 20
    # Two rounds, each with the baseline run just before it; the figure is a round's, not their sum.
    assert [r["baseline"]["tps"] for r in result["rounds"]] == [100.0, 300.0]
    assert result["payments_per_second"] in [r["payments_per_second"] for r in result["rounds"]]
    assert sum(r["non_2xx"] for r in result["rounds"]) == 0
    assert result["payments_accepted"] <= result["payments_in_ledger"] <= result["payments_accepted"] + 2 * 4
    assert result["cpu_ms_per_payment"]["load generator"] >= 0 and result["cpu_ms_per_payment"]["portal"] > 0
    # The request path's floor, read first: the same customers' summaries, every answer a 200.
    assert result["summary_read"]["reads_per_second"] > 10 and result["summary_read"]["non_2xx"] == 0
    assert result["summary_read"]["cpu_ms_per_read"]["portal"] > 0


def needs_git_checkout():
    """Skip a test that checks out a second worktree when this tree is not a git checkout (an exported archive)."""
    if subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=ab_payments.ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout: bench.ab_payments checks revisions out with git worktree")


@pytest.mark.postgres
def test_the_ab_comparison_pays_both_revisions_in_turn_and_audits_both_ledgers(pg_available, tmp_path):
    """bench.ab_payments: a second checkout served beside this one, rounds alternated, both ledgers whole."""
    if not pg_available:
        pytest.skip("PostgreSQL not reachable (set TEST_POSTGRES=1 to make this a failure)")
    needs_git_checkout()
    with ab_payments.worktree("HEAD", tmp_path) as base:
        result = ab_payments.compare({"base": base, "new": ab_payments.ROOT}, rounds=2, seconds=1, clients=4,
                                     customers=3)

    assert result["problems"] == {"base": [], "new": []}
    for name in ab_payments.NAMES:
        assert len(result["runs"][name]) == 2
        assert all(r["payments_per_second"] > 0 and r["non_2xx"] == 0 for r in result["runs"][name])
    assert len(result["ratios"]) == 2 and result["median_ratio"] > 0


def test_a_portal_runs_in_the_checkout_it_is_given(sqlite_url, tmp_path):
    """testing.servers' `root`: gunicorn and its workers run in that checkout, so they import its code."""
    needs_git_checkout()
    with ab_payments.worktree("HEAD", tmp_path) as tree, portal(sqlite_url, workers=1, threads=2, root=tree) as server:
        for pid in [server.pid, *server.worker_pids()]:
            assert Path(f"/proc/{pid}/cwd").resolve() == tree.resolve()
    assert not tree.exists()  # the worktree is removed after
