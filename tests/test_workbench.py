"""The model workbench: its service started for real (gunicorn) on a real MLflow store, driven from the portal's pages.

The store holds ``credit-approval`` version 1 (the champion of a full pipeline
run) and version 2 (another seed, kept out by the gate). Each test gets its own
copy of the store and its own workbench service; the portal runs in-process
with its test client and reaches the service over HTTP with the shared token.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

import model_registry
from pipeline import train as tr
from pipeline.run import RunConfig, run
from pipeline.workbench import jobs
from pipeline.workbench.jobs import JobStore
from portal import create_app
from portal.cli import migrate
from portal.db import Database
from testing.people import add_customer, add_manager
from testing.servers import Gunicorn, free_port
from testing.servers import portal as portal_server
from tests.factories import token_of, web_login

TOKEN = "workbench-test-token-0123456789abcdef"
FAST_ARGS = "--cv-repeats 1"
JOB_WAIT = 300  # seconds a retrain job may take on this busy machine before the test gives up


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, trained_store, demo_ledger_url, mlflow_template):
    """Return the path of a store with version 1 (champion) and version 2 (another seed, kept out by the gate)."""
    folder = tmp_path_factory.mktemp("workbench-store")
    path = folder / "mlflow.db"
    shutil.copy(trained_store[0].removeprefix("sqlite:///"), path)
    uri = f"sqlite:///{path}"
    second = run(RunConfig(database_url=demo_ledger_url, tracking_uri=uri, params=tr.TrainParams(seed=7, cv_repeats=1)),
                 out=lambda line: None)
    assert second.version == "2" and not second.promoted, second.decision
    return path


@pytest.fixture
def store(two_versions, tmp_path):
    """Return the URI of this test's own copy of the two-version store."""
    path = tmp_path / "store" / "mlflow.db"
    path.parent.mkdir()
    shutil.copy(two_versions, path)
    return f"sqlite:///{path}"


def workbench_service(store: str, ledger: str, workdir: Path, train_args: str = FAST_ARGS) -> Gunicorn:
    """Return the workbench service as `make workbench` runs it: one worker with threads, the shared token."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Gunicorn("pipeline.workbench:create_app()", {
        "MLFLOW_TRACKING_URI": store, "SERVING_TOKEN": TOKEN, "DATABASE_URL": ledger,
        "WORKBENCH_TRAIN_ARGS": train_args, "MLFLOW_LOGGING_LEVEL": "WARNING"},
        workers=1, threads=4, ready_path="/health", workdir=workdir, timeout=120)


@pytest.fixture
def service(store, demo_ledger_url, tmp_path):
    """The workbench service on this test's store, started; stopped (and its folder left to tmp_path) after."""
    with workbench_service(store, demo_ledger_url, tmp_path / "workbench") as running:
        yield running


def portal_for(url: str, database_url: str, **config):
    """Return a portal app calling the workbench at `url`, with manager 1 and customer 101 in its ledger."""
    app = create_app({"SECRET_KEY": "test-secret-at-least-32-bytes-long!", "DATABASE_URL": database_url,
                      "TESTING": True, "RATELIMIT_STORAGE_URI": "memory://", "SERVING_URL": "http://127.0.0.1:9",
                      "WORKBENCH_URL": url, "SERVING_TOKEN": TOKEN, **config})
    db = app.extensions["ledger_db"]
    add_manager(db, 1, password="manager123")
    add_customer(db, 101, {(2024, 1): 10_000}, password="customer123")
    return app


@pytest.fixture
def portal(service, sqlite_url):
    """A portal app on a fresh ledger, calling this test's workbench service."""
    app = portal_for(service.url, sqlite_url, MLFLOW_UI_URL="http://127.0.0.1:5002")
    yield app
    app.extensions["ledger_db"].dispose()


@pytest.fixture
def manager(portal):
    """A test client with manager 1 logged in through the login page."""
    client = portal.test_client()
    assert web_login(client, "manager", 1, "manager123").status_code == 302
    return client


def events(store: str) -> list[tuple]:
    """Return the registry's audit log as (event, from, to, who, why)."""
    return [(e["event"], e["from_version"], e["to_version"], e["who"], e["why"])
            for e in model_registry.describe(tracking_uri=store)["events"]]


def wait_for_job(client, job_id: str) -> dict:
    """Poll the job page's status endpoint until the job has ended; return the job as the service sees it."""
    deadline = time.monotonic() + JOB_WAIT
    while time.monotonic() < deadline:
        status = client.get(f"/manager/workbench/jobs/{job_id}/status")
        assert status.status_code == 200, status.text
        if status.json["state"] != "running":
            return status.json
        time.sleep(1)
    pytest.fail(f"job {job_id} still running after {JOB_WAIT} s")


def start_job(client, seed: str = "11") -> str:
    """Start a retrain job from the workbench page; return its id."""
    page = client.get("/manager/workbench")
    r = client.post("/manager/workbench/jobs", data={"csrf_token": token_of(page.text), "seed": seed,
                                                      "promote": "y"})
    assert r.status_code == 302 and "/manager/workbench/jobs/" in r.headers["Location"], r.text
    return r.headers["Location"].rsplit("/", 1)[1]


# --------------------------------------------------------------------------- the service itself

def test_the_service_demands_the_token_and_signs_its_answers(service):
    assert requests.get(service.url + "/health", timeout=5).json() == {"ok": True}
    assert requests.get(service.url + "/v1/models", timeout=5).status_code == 401
    wrong = requests.get(service.url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    r = requests.get(service.url + "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 200 and r.json()["models"] == ["credit-approval"]
    assert r.headers["X-Serving-Signature"].startswith("sha256=")
    bad = requests.post(service.url + "/v1/models/credit-approval/promote", json={"version": "2", "who": "x"},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"] == "reason"


def test_the_page_lists_every_version_with_its_evidence(manager, store):
    page = manager.get("/manager/workbench")
    assert page.status_code == 200, page.text
    html = page.text
    described = {v["version"]: v for v in model_registry.describe(tracking_uri=store)["versions"]}
    for number, v in described.items():
        row = re.search(rf'<tr id="version-{number}">(.*?)</tr>', html, re.S).group(1)
        assert v["tags"]["data_sha256"][:12] in row  # the data fingerprint
        assert "1,000 rows" in row and "2021-2025" in row
        assert f"{v['metrics']['test_auc']:.3f}" in row and f"[{v['metrics']['test_auc_low']:.3f}," in row
    v1 = re.search(r'<tr id="version-1">(.*?)</tr>', html, re.S).group(1)
    v2 = re.search(r'<tr id="version-2">(.*?)</tr>', html, re.S).group(1)
    assert "champion" in v1 and "Gate passed" in v1 and "Promote" not in v1
    assert "Kept out by the gate" in v2 and "beats champion" in v2 and "Promote" in v2
    history = re.search(r'<table class="stack" id="history">(.*?)</table>', html, re.S).group(1)
    assert "pipeline.run" in history and "first champion" in history
    assert 'href="http://127.0.0.1:5002"' in html  # MLFLOW_UI_URL
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_two_versions_compared_side_by_side(manager, service, store):
    page = manager.get("/manager/workbench/compare?model=credit-approval&a=1&b=2")
    assert page.status_code == 200, page.text
    assert page.text.count('src="data:image/svg+xml;base64,') == 2  # ROC and calibration, drawn by the service
    for part in ('id="compare-metrics"', "Ranking quality (AUC)", 'id="rates"', 'id="profile"', "near the cut-off"):
        assert part in page.text, part

    found = requests.get(service.url + "/v1/models/credit-approval/compare", params={"a": "1", "b": "2"},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).json()
    assert found["labels"] == ["version 1", "version 2"]
    for label in found["labels"]:
        roc = found["curves"]["roc"][label]
        assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0]
        assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(roc, roc[1:]))  # a ROC curve only climbs
        assert sum(p["rows"] for p in found["curves"]["calibration"][label]) == found["test_rows"][label]
        # The rates recomputed from the logged held-out scores are the ones the pipeline measured.
        rates = found["rates"][label]
        assert rates["from_holdout"]["approval_rate"] == pytest.approx(rates["approval_rate"]["value"])
        assert rates["from_holdout"]["bad_rate_approved"] == pytest.approx(rates["bad_rate_approved"]["value"])
        assert rates["approval_rate"]["low"] <= rates["approval_rate"]["value"] <= rates["approval_rate"]["high"]
    assert [row["feature"] for row in found["profile"]] == ["paid_pct_5y_ago", "paid_pct_4y_ago", "paid_pct_3y_ago",
                                                            "paid_pct_2y_ago", "paid_pct_1y_ago"]
    assert all(0 <= row["version 2"]["near_cutoff"] <= 100 for row in found["profile"])
    svg = found["plots"]["roc"]
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "version 2" in svg

    assert manager.get("/manager/workbench/compare?model=credit-approval&a=1&b=9").status_code == 404
    assert manager.get("/manager/workbench/compare?model=credit-approval&a=1&b=x").status_code == 400


def test_promote_and_roll_back_from_the_page(manager, portal, store):
    confirm = manager.get("/manager/workbench/credit-approval/versions/2/promote")
    assert confirm.status_code == 200
    assert "FAIL" not in confirm.text and "Fail</span> beats champion" in confirm.text  # the gate's evidence
    token = token_of(confirm.text)
    url = "/manager/workbench/credit-approval/versions/2/promote"

    customer = portal.test_client()
    assert web_login(customer, "customer", 101, "customer123").status_code == 302
    assert customer.get(url).status_code == 403
    assert customer.post(url, data={"csrf_token": token_of(customer.get("/customers/101").text),
                                    "reason": "x", "champion": "1"}).status_code == 403
    assert portal.test_client().get(url).status_code == 302  # anonymous: to the manager login

    assert manager.post(url, data={"reason": "no token", "champion": "1"}).status_code == 400  # CSRF
    blank = manager.post(url, data={"csrf_token": token, "reason": "   ", "champion": "1"})
    assert blank.status_code == 422 and "Enter a reason" in blank.text
    stale = manager.post(url, data={"csrf_token": token, "reason": "try it", "champion": "7"})
    assert stale.status_code == 409 and "look at the page again" in stale.text
    assert model_registry.champion_version(tracking_uri=store) == "1"
    assert [e[0] for e in events(store)] == ["register", "promote", "register"]  # versions 1 and 2 trained

    done = manager.post(url, data={"csrf_token": token, "reason": "better on last month's cases", "champion": "1"})
    assert done.status_code == 302, done.text
    assert model_registry.champion_version(tracking_uri=store) == "2"
    (promoted,) = [e for e in model_registry.describe(tracking_uri=store)["events"]
                  if e["to_version"] == "2" and e["event"] == "promote"]
    assert (promoted["event"], promoted["from_version"], promoted["who"], promoted["why"]) == \
        ("promote", "1", "manager 1", "better on last month's cases")
    assert "FAIL  beats champion" in promoted["evidence"]  # the gate's evidence goes into the audit log
    index = manager.get("/manager/workbench").text
    assert "version 2 is the champion now (was 1)" in index and "better on last month&#39;s cases" in index

    back = manager.get("/manager/workbench/credit-approval/rollback")
    assert back.status_code == 200 and "Roll back from version 2 to version 1?" in back.text
    assert customer.get("/manager/workbench/credit-approval/rollback").status_code == 403
    assert manager.post("/manager/workbench/credit-approval/rollback",
                        data={"csrf_token": token_of(back.text), "reason": "", "champion": "2"}).status_code == 422
    assert model_registry.champion_version(tracking_uri=store) == "2"
    done = manager.post("/manager/workbench/credit-approval/rollback",
                        data={"csrf_token": token_of(back.text), "reason": "complaints", "champion": "2"})
    assert done.status_code == 302
    assert model_registry.champion_version(tracking_uri=store) == "1"
    assert events(store)[3:] == [("promote", "1", "2", "manager 1", "better on last month's cases"),
                                 ("rollback", "2", "1", "manager 1", "complaints")]
    assert "Nothing to roll back to" in manager.get("/manager/workbench/credit-approval/rollback").text


def test_a_version_goes_into_the_shadow_from_the_page(manager, portal, store):
    url = "/manager/workbench/credit-approval/versions/2/challenge"
    assert url in manager.get("/manager/workbench").text  # the version's Shadow... button
    confirm = manager.get(url)
    assert confirm.status_code == 200 and "Watch version 2 in the shadow?" in confirm.text
    token = token_of(confirm.text)
    customer = portal.test_client()
    assert web_login(customer, "customer", 101, "customer123").status_code == 302
    assert customer.get(url).status_code == 403
    assert customer.post(url, data={"csrf_token": token_of(customer.get("/customers/101").text),
                                    "reason": "x"}).status_code == 403
    assert manager.post(url, data={"reason": "no token"}).status_code == 400  # CSRF
    assert manager.post(url, data={"csrf_token": token, "reason": "  "}).status_code == 422
    champion = manager.post("/manager/workbench/credit-approval/versions/1/challenge",
                            data={"csrf_token": token, "reason": "the champion itself"})
    assert champion.status_code == 409 and "a challenger must be another version" in champion.text
    assert model_registry.describe(tracking_uri=store)["challenger"] is None

    done = manager.post(url, data={"csrf_token": token, "reason": "watch it on live requests"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/manager/model/shadow")
    assert model_registry.describe(tracking_uri=store)["challenger"] == "2"
    assert events(store)[-1] == ("challenge", None, "2", "manager 1", "watch it on live requests")
    assert url not in manager.get("/manager/workbench").text  # already the challenger


def test_a_job_just_started_is_running_even_before_proc_shows_its_runner(tmp_path, monkeypatch):
    # Seen in CI: the page right after the start said the job was not running. Its runner's command line
    # is not in /proc for a moment after Popen returns; the store that started it asks its Popen instead.
    store = JobStore(tmp_path / "jobs")
    monkeypatch.setattr(JobStore, "command", lambda self, folder, options, who: [
        sys.executable, "-c", "import time; time.sleep(30)"])
    monkeypatch.setattr(jobs, "_alive", lambda pid, folder: False)  # /proc not showing the runner yet
    job = store.start(who="manager 1")
    runner = store._children[job["id"]]  # taken now: the store forgets a runner once it has ended
    try:
        assert job["state"] == "running" and store.get(job["id"])["state"] == "running"
    finally:
        store.cancel(job["id"], who="manager 1")
        runner.wait(10)
    assert store.get(job["id"])["state"] == "cancelled"


def test_a_retrain_job_completes_survives_a_restart_and_its_version_appears(store, demo_ledger_url, sqlite_url,
                                                                            tmp_path):
    service = workbench_service(store, demo_ledger_url, tmp_path / "workbench")
    try:
        service.start()
        app = portal_for(service.url, sqlite_url)
        client = app.test_client()
        assert web_login(client, "manager", 1, "manager123").status_code == 302
        job_id = start_job(client)
        page = client.get(f"/manager/workbench/jobs/{job_id}")
        assert page.status_code == 200 and "data-job-status=" in page.text and "Cancel this job" in page.text
        again = client.post("/manager/workbench/jobs", data={"csrf_token": token_of(page.text), "seed": "12"})
        assert again.status_code == 302  # one at a time: refused, and said so
        assert "is still running" in client.get("/manager/workbench").text

        service.stop()  # the service restarts; the job, in its own process group, goes on
        service.start()
        job = wait_for_job(client, job_id)
        assert job["state"] == "succeeded", job["log"]
        assert [s["state"] for s in job["stages"]] == ["done"] * 5

        page = client.get(f"/manager/workbench/jobs/{job_id}")
        assert "credit-approval version" in page.text and 'id="job-result"' in page.text
        assert "data-job-status=" not in page.text  # no more polling
        versions = model_registry.describe(tracking_uri=store)["versions"]
        assert versions[0]["version"] == "3" and versions[0]["tags"]["data_rows"] == "1000"
        assert ("register", None, "3", "manager 1") in [e[:4] for e in events(store)]  # who retrained, audited
        assert 'id="version-3"' in client.get("/manager/workbench").text
        result = json.loads((tmp_path / "workbench" / "var" / "jobs" / job_id / "result.json").read_text())
        assert result["version"] == "3" and result["gate"]["checks"]
        app.extensions["ledger_db"].dispose()
    finally:
        service.cleanup()


def test_a_running_job_can_be_cancelled(manager, service):
    job_id = start_job(manager)
    page = manager.get(f"/manager/workbench/jobs/{job_id}")
    r = manager.post(f"/manager/workbench/jobs/{job_id}/cancel", data={"csrf_token": token_of(page.text)})
    assert r.status_code == 302
    job = wait_for_job(manager, job_id)
    assert job["state"] == "cancelled"
    pid = json.loads((service.workdir / "var" / "jobs" / job_id / "job.json").read_text())["pid"]
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.killpg(pid, 0)
    page = manager.get(f"/manager/workbench/jobs/{job_id}")
    assert "Cancelled by manager 1" in page.text and "Cancel this job" not in page.text
    again = manager.post(f"/manager/workbench/jobs/{job_id}/cancel", data={"csrf_token": token_of(page.text)})
    assert again.status_code == 302 and "is not running" in manager.get(again.headers["Location"]).text

    # A job killed outright (the pipeline never says how it ended) shows that as its error.
    job_id = start_job(manager, seed="13")
    pid = json.loads((service.workdir / "var" / "jobs" / job_id / "job.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    job = wait_for_job(manager, job_id)
    assert job["state"] == "failed"
    assert "without recording how" in manager.get(f"/manager/workbench/jobs/{job_id}").text


def test_a_job_that_fails_shows_its_error(store, sqlite_url, tmp_path):
    missing = tmp_path / "no-such-folder" / "credit.db"
    with workbench_service(store, f"sqlite:///{missing}", tmp_path / "workbench") as service:
        app = portal_for(service.url, sqlite_url)
        client = app.test_client()
        assert web_login(client, "manager", 1, "manager123").status_code == 302
        job_id = start_job(client)
        job = wait_for_job(client, job_id)
        assert job["state"] == "failed"
        page = client.get(f"/manager/workbench/jobs/{job_id}")
        error = re.search(r'<pre class="log" id="job-error">(.*?)</pre>', page.text, re.S).group(1)
        assert "stopped" in error and "(exit code 2)" in error
        assert [v["version"] for v in model_registry.describe(tracking_uri=store)["versions"]] == ["2", "1"]

        app.extensions["ledger_db"].dispose()


def test_a_clear_page_when_the_workbench_is_down(sqlite_url):
    app = portal_for(f"http://127.0.0.1:{free_port()}", sqlite_url)
    client = app.test_client()
    assert web_login(client, "manager", 1, "manager123").status_code == 302
    page = client.get("/manager/workbench")
    assert page.status_code == 503
    assert "The model workbench is not answering" in page.text and "make workbench" in page.text
    app.extensions["ledger_db"].dispose()



def in_german(client) -> None:
    """Switch a client's pages to German with the header's language form."""
    token = token_of(client.get("/manager").text)
    assert client.post("/language", data={"csrf_token": token, "language": "de", "next": "/manager"}).status_code == 302


def test_the_workbench_pages_speak_german(manager, store):
    in_german(manager)
    index = manager.get("/manager/workbench")
    assert index.status_code == 200, index.text
    for part in ("Modellwerkstatt", "credit-approval: alle Versionen", "Champion: <strong>Version 1</strong>.",
                 "1.000 Zeilen", "Von der Freigabeprüfung zurückgehalten", "Zwei Versionen vergleichen",
                 "Neues Training starten", "Beförderungsverlauf", 'data-label="Ausfallquote"'):
        assert part in index.text, part
    compare = manager.get("/manager/workbench/compare?model=credit-approval&a=1&b=2")
    assert compare.status_code == 200 and "Kennzahlen auf zurückgehaltenen Daten, mit 95-%-Intervallen" in compare.text
    assert "version 2: nahe der Schwelle" in compare.text and "Rangordnungsgüte (AUC)" in compare.text
    confirm = manager.get("/manager/workbench/credit-approval/versions/2/promote")
    assert "Version 2 zum Champion machen?" in confirm.text and "Nicht bestanden</span> beats champion" in confirm.text
    blank = manager.post("/manager/workbench/credit-approval/versions/2/promote",
                         data={"csrf_token": token_of(confirm.text), "champion": "1", "reason": " "})
    assert blank.status_code == 422 and "Geben Sie einen Grund ein" in blank.text
    shadow = manager.get("/manager/workbench/credit-approval/versions/2/challenge")
    assert "Version 2 im Schatten beobachten?" in shadow.text
    assert model_registry.champion_version(tracking_uri=store) == "1"


def test_the_down_page_speaks_german(sqlite_url):
    app = portal_for(f"http://127.0.0.1:{free_port()}", sqlite_url)
    client = app.test_client()
    assert web_login(client, "manager", 1, "manager123").status_code == 302
    in_german(client)
    page = client.get("/manager/workbench")
    assert page.status_code == 503 and "Die Modellwerkstatt antwortet nicht" in page.text
    assert "Starten Sie ihn mit <code>make workbench</code>" in page.text
    app.extensions["ledger_db"].dispose()


# --------------------------------------------------------------------------- in a real browser

CHROMIUM = "/usr/bin/chromium"
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 375, "height": 812}


def no_sideways_scroll(page) -> None:
    page.wait_for_load_state("load")  # the job page reloads itself when its job ends
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways at {width[1]} px: {width}"


def images_drawn(page) -> int:
    """Return how many of the page's plots the browser decoded (a data: image the CSP refused has no size)."""
    return page.evaluate("[...document.querySelectorAll('.plots img')].filter(i => i.complete && i.naturalWidth > 0)"
                         ".length")


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM) and os.environ.get("TEST_BROWSER") != "1",
                    reason=f"{CHROMIUM} is missing (set TEST_BROWSER=1 to make this a failure)")
def test_the_workbench_journey_in_a_browser_at_1280_and_375_px(service, store, tmp_path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(ledger)
    db = Database(ledger)
    add_manager(db, 1, password="manager123")
    db.dispose()
    env = {"SECRET_KEY": "browser-test-secret-32-bytes-long!!", "WORKBENCH_URL": service.url, "SERVING_TOKEN": TOKEN,
           "SERVING_URL": f"http://127.0.0.1:{free_port()}"}
    with portal_server(ledger, env, workers=1, threads=4, ready_path="/", workdir=tmp_path) as web, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for viewport in (DESKTOP, PHONE):
            page = browser.new_context(viewport=viewport, base_url=web.url).new_page()
            page.set_default_timeout(30_000)
            page.goto("/manager/login")
            page.get_by_label("ID", exact=True).fill("1")
            page.get_by_label("Password", exact=True).fill("manager123")
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name="Workbench").click()
            expect(page.get_by_role("heading", name="Model workbench")).to_be_visible()
            expect(page.locator("#versions tbody tr")).to_have_count(2)
            no_sideways_scroll(page)

            page.get_by_role("button", name="Compare").click()
            expect(page.get_by_role("heading", name="credit-approval: version 1 and version 2")).to_be_visible()
            expect(page.locator(".plots img")).to_have_count(2)
            page.wait_for_load_state("load")
            assert images_drawn(page) == 2
            no_sideways_scroll(page)
            page.go_back()

            champion = model_registry.champion_version(tracking_uri=store)
            other = "2" if champion == "1" else "1"
            page.locator(f"#version-{other}").get_by_role("link", name="Promote…").click()
            expect(page.get_by_role("heading", name=f"Make version {other} the champion?")).to_be_visible()
            no_sideways_scroll(page)
            page.get_by_label("Reason", exact=True).fill(f"journey at {viewport['width']} px")
            page.get_by_role("button", name=f"Yes, make version {other} the champion").click()
            expect(page.get_by_text(f"version {other} is the champion now")).to_be_visible()
            page.get_by_role("link", name=re.compile("^Roll back to version")).click()
            expect(page.get_by_role("heading", name=re.compile("^Roll back from version"))).to_be_visible()
            no_sideways_scroll(page)
            page.get_by_label("Reason", exact=True).fill("back again")
            page.get_by_role("button", name=re.compile("^Yes, roll back")).click()
            expect(page.get_by_text(f"rolled back to version {champion}")).to_be_visible()
            assert model_registry.champion_version(tracking_uri=store) == champion
            page.context.close()

        # Retrain from the page: the job page follows the job by itself until its version appears.
        page = browser.new_context(viewport=PHONE, base_url=web.url).new_page()
        page.goto("/manager/login")
        page.get_by_label("ID", exact=True).fill("1")
        page.get_by_label("Password", exact=True).fill("manager123")
        page.get_by_role("button", name="Log in").click()
        page.goto("/manager/workbench")
        page.get_by_label("Seed (optional)").fill("21")
        page.get_by_role("button", name="Start retraining").click()
        expect(page.locator("#job-state")).to_have_text("running")
        no_sideways_scroll(page)
        expect(page.locator("#job-state")).to_have_text("succeeded", timeout=JOB_WAIT * 1000)
        expect(page.locator("#job-result")).to_contain_text("credit-approval version 3 registered")
        no_sideways_scroll(page)
        browser.close()
    events_now = events(store)
    assert [e[0] for e in events_now[3:8]] == ["promote", "rollback", "promote", "rollback", "register"]
    assert events_now[3][3] == "manager 1" and events_now[3][4] == "journey at 1280 px"
    assert events_now[7][2:4] == ("3", "manager 1")  # the retrain started from the page, in the audit log
