"""The shadow page in a real browser at desktop and phone width (Playwright, Debian's Chromium, live gunicorn).

The decisions are written straight into the ledger, shadow scores included (tests/test_shadow.py
makes them through a live decision service); no decision service listens, so the page also
shows that it says so and still compares what is stored.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from portal.cli import migrate
from portal.db import Database
from portal.models import CreditDecision
from testing.people import add_customer, add_manager
from testing.servers import free_port, portal
from tests.test_browser import (  # browser: the module's Chromium fixture, shared
    DESKTOP,
    PHONE,
    all_cells_visible,
    browser,  # noqa: F401
    fits,
    log_in,
    new_page,
    no_sideways_scroll,
)

pytestmark = pytest.mark.browser

from playwright.sync_api import expect  # noqa: E402  (after test_browser's skip when Chromium is missing)

# (customer, champion score, challenger score): 0.8 is the threshold, so 102 and 104 are disagreements.
SCORES = [(101, 0.93, 0.91), (102, 0.85, 0.62), (103, 0.41, 0.35), (104, 0.71, 0.88), (105, 0.97, 0.95)]


def seed(db: Database) -> None:
    add_manager(db, 1, password="manager123")
    for customer_id, _, _ in SCORES:
        add_customer(db, customer_id, name=f"Customer {customer_id}", password="customer123")
    start = datetime.now(UTC) - timedelta(hours=1)
    with db.sessions.begin() as s:
        for i, (customer_id, score, shadow) in enumerate(SCORES):
            s.add(CreditDecision(request_id=str(uuid.uuid4()), customer_id=customer_id, year=2030, month=1,
                                 amount_cents=10_000, method="ml", approved=score >= 0.8, score=score, threshold=0.8,
                                 inputs={}, reasons=[], model_version="1", checks=[], shadow_version="2",
                                 shadow_score=shadow, shadow_approved=shadow >= 0.8,
                                 created_at=start + timedelta(minutes=i)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shadow-browser")
    url = f"sqlite:///{tmp / 'ledger.db'}"
    migrate(url)
    db = Database(url)
    seed(db)
    db.dispose()
    with portal(url, {"SECRET_KEY": "browser-test-secret-32-bytes-long!!", "VAR_DIR": str(tmp),
                      "SERVING_URL": f"http://127.0.0.1:{free_port()}", "SERVING_TIMEOUT": "1"},
                workers=1, ready_path="/", workdir=tmp) as server:
        yield {"base": server.url}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "375"])
def test_a_manager_compares_champion_and_challenger(browser, server, viewport):  # noqa: F811 - the fixture
    page = new_page(browser, server, viewport)
    log_in(page, "manager", 1, "manager123")
    page.goto("/manager/model")
    page.get_by_role("link", name="Champion and challenger on live requests (shadow scoring)").click()
    expect(page.get_by_role("heading", name="Champion and challenger on live requests")).to_be_visible()
    expect(page.get_by_text("The decision service is not answering")).to_be_visible()
    expect(page.get_by_role("heading", name="Version 1 against version 2")).to_be_visible()
    rates = page.locator("#rates tbody tr")
    expect(rates.nth(0).locator("td")).to_have_text(["Champion", "1", "60%"])  # 3 of 5 each, not the same 3
    expect(rates.nth(1).locator("td")).to_have_text(["Challenger", "2", "60%"])
    expect(page.locator("#agreement")).to_have_text("On the latest 5 decisions they agree on 60% (2 disagree).")
    expect(page.locator("svg[role=img] rect.bar-challenger")).to_have_count(10)
    disagreements = page.locator("#disagreements tbody tr")
    expect(disagreements).to_have_count(2)
    no_sideways_scroll(page)
    if viewport is PHONE:
        all_cells_visible(page, "#disagreements")
    for box in page.locator(".table-scroll").all():
        assert fits(box), box.evaluate("e => [e.getAttribute('aria-label'), e.scrollWidth, e.clientWidth]")
    disagreements.first.get_by_role("link", name="104").click()  # the newest first
    expect(page).to_have_url(f"{server['base']}/customers/104")
    page.context.close()
