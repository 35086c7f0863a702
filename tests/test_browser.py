"""The pages in a real browser: Playwright drives Debian's Chromium against a live gunicorn.

Skipped when /usr/bin/chromium is missing, unless TEST_BROWSER=1 (CI), which makes that a
failure. The layout rules are checked at phone (375x812) and desktop (1280x800) size. The
screenshots in docs/ come from the demo data instead (`make screenshots`, docs/screenshots.py).
"""
from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import pytest

from portal.cli import migrate
from portal.credit_requests import request_credit
from portal.db import Database
from portal.ledger import payments
from testing.people import add_customer, add_manager
from testing.servers import free_port, portal
from tests.factories import SETTINGS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
THIS = date.today().year
LANGUAGE_CUSTOMERS = {"desktop": 130, "phone": 131}
LAST = THIS - 1

if not os.path.exists(CHROMIUM):
    if os.environ.get("TEST_BROWSER") == "1":
        pytest.fail(f"TEST_BROWSER=1 but {CHROMIUM} is missing", pytrace=False)
    pytest.skip(f"{CHROMIUM} is missing (set TEST_BROWSER=1 to make this a failure)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def seed(db: Database) -> int:
    """Write the small ledger the journeys use; return the payment the manager reverses."""
    add_manager(db, 1, password="manager123")
    year = {(LAST, m): 10_000 for m in range(1, 13)}
    # 101 has the five years the ML method needs and paid 58 of 60 months (97%): sanctioned by
    # percentage; owes November and December of last year.
    five = [(y, m) for y in range(LAST - 4, LAST + 1) for m in range(1, 13)]
    add_customer(db, 101, dict.fromkeys(five, 10_000), name="Asha Rao", password="customer123",
                 paid={ym: 10_000 for ym in five if ym < (LAST, 11)})
    # 102 paid half of their dues: rejected.
    add_customer(db, 102, year, paid={(LAST, m): 10_000 for m in range(1, 7)}, name="Ben Okafor",
                 password="customer123")
    add_customer(db, 103, year, name="Carla Mendes", password="customer123")
    for i in range(104, 130):  # enough customers for a second portfolio page
        add_customer(db, i, year, paid={(LAST, m): 10_000 for m in range(1, 1 + i % 12)}, name=f"Customer {i}")
    for i in LANGUAGE_CUSTOMERS.values():  # their own: the language journey stores a language on them
        add_customer(db, i, year, paid={(LAST, 1): 10_000}, name=f"Dana {i}", password="customer123")
    with db.sessions() as s:
        # Two decisions for the log from the start (its layout is checked whatever ran before).
        request_credit(s, 102, THIS + 1, 2, 40_000, "percentage", SETTINGS)
        request_credit(s, 103, THIS + 1, 2, 10_000, "percentage", SETTINGS)
        return payments.pay(s, 103, LAST, 1, 15_000, source="api").payment_id


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Start gunicorn on a free loopback port over a freshly migrated and seeded SQLite ledger."""
    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'ledger.db'}"
    migrate(url)
    db = Database(url)
    payment_id = seed(db)
    db.dispose()
    # No decision service listens on SERVING_URL: the ML method must say it is not available.
    with portal(url, {"SECRET_KEY": "browser-test-secret-32-bytes-long!!", "VAR_DIR": str(tmp),
                      "SERVING_URL": f"http://127.0.0.1:{free_port()}", "SERVING_TIMEOUT": "1"},
                workers=2, ready_path="/", workdir=tmp) as server:
        yield {"base": server.url, "payment_id": payment_id}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser, server, viewport=DESKTOP):
    context = browser.new_context(viewport=viewport, base_url=server["base"], accept_downloads=True)
    context.set_default_timeout(10_000)
    return context.new_page()


def log_in(page, role: str, user_id: int, password: str) -> None:
    page.goto(f"/{role}/login")
    page.get_by_label("ID", exact=True).fill(str(user_id))
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def no_sideways_scroll(page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways: {width}"


def test_customer_journey(browser, server):
    page = new_page(browser, server)
    page.goto("/")
    page.get_by_role("link", name=re.compile("^Customer")).click()
    expect(page.get_by_role("heading", name="Customer login")).to_be_visible()

    # The eye toggle shows and hides the password.
    page.get_by_label("ID", exact=True).fill("101")
    password = page.get_by_label("Password", exact=True)
    password.fill("wrong-password")
    eye = page.get_by_role("button", name="Show password")
    eye.click()
    expect(password).to_have_attribute("type", "text")
    expect(page.get_by_role("button", name="Hide password")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Hide password").click()
    expect(password).to_have_attribute("type", "password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong ID or password")
    page.get_by_label("Password", exact=True).fill("customer123")
    page.get_by_role("button", name="Log in").click()

    # Dashboard: details, cards, year filter, chart and table.
    expect(page.get_by_role("heading", name="Asha Rao")).to_be_visible()
    expect(page.locator(".card", has_text="Balance")).to_contain_text("$200.00")
    page.get_by_label("Year", exact=True).select_option(str(LAST))
    page.get_by_role("button", name="Apply Filter").click()
    expect(page).to_have_url(f"{server['base']}/customers/101?year={LAST}")
    expect(page.locator("#months tbody tr")).to_have_count(12)
    expect(page.locator(".chart svg title").first).to_have_text(f"Due and paid per month in {LAST}")
    expect(page.locator(".chart rect.bar-paid")).to_have_count(12)

    # Pay from the oldest unpaid month: 250.00 pays November, December, and 50.00 becomes bank credit.
    page.get_by_role("link", name="Pay", exact=True).first.click()
    expect(page.get_by_label("Year", exact=True)).to_have_value(str(LAST))
    expect(page.get_by_label("Month", exact=True)).to_have_value("11")
    page.get_by_label("Amount", exact=True).fill("250.00")
    # Before paying, the page says where the money will go (the server's preview, as the customer types).
    expect(page.locator("#payment-preview")).to_contain_text("Where $250.00 will go")
    expect(page.locator("#payment-preview")).to_contain_text(f"December {LAST}")
    expect(page.locator("#payment-preview")).to_contain_text("Bank credit (nothing is owed any more)")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    rows = page.locator("#allocations tbody tr")
    expect(rows.nth(0)).to_contain_text(f"November {LAST}")
    expect(rows.nth(0)).to_contain_text("$100.00")
    expect(rows.nth(1)).to_contain_text(f"December {LAST}")
    expect(page.locator("#to-bank-credit")).to_have_text("$50.00")
    expect(page.locator(".card", has_text="Bank credit")).to_contain_text("$50.00")

    # Credit by percentage: the wait state shows for as long as the request is held.
    page.get_by_role("link", name="Request credit").first.click()
    expect(page.get_by_text("You have paid 100% of all your dues")).to_be_visible()
    page.get_by_label("Amount", exact=True).fill("500.00")
    # Playwright cannot query a page whose navigation is held, so the page records its own wait state.
    page.evaluate("""() => { const busy = document.querySelector('.busy');
      new MutationObserver(() => sessionStorage.setItem('busy', JSON.stringify([busy.textContent, Date.now()])))
        .observe(busy, {childList: true, characterData: true, subtree: true});
      setInterval(() => sessionStorage.setItem('alive', Date.now()), 50); }""")
    held = []
    page.route("**/credit", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    page.get_by_role("button", name="Request credit").click(no_wait_after=True)
    while not held:
        page.wait_for_timeout(20)
    page.wait_for_timeout(800)  # the request "takes" 0.8 s
    held[0].continue_()
    expect(page.get_by_role("heading", name="Credit sanctioned")).to_be_visible()
    page.unroute("**/credit")
    busy, alive, answered = page.evaluate("""[JSON.parse(sessionStorage.getItem('busy')),
        +sessionStorage.getItem('alive'),
        performance.timeOrigin + performance.getEntriesByType('navigation')[0].responseStart]""")
    # Shown on submit, never cleared, and the old page lived on until the answer came.
    assert busy[0] == "Checking credit score…" and answered - busy[1] >= 700 and alive >= answered - 250
    expect(page.locator(".decision")).to_contain_text("$500.00")
    expect(page.locator(".decision")).to_contain_text("threshold 80%")

    # With no decision service the ML method says it is unavailable, and approves nothing.
    page.goto("/credit")
    page.get_by_label("Amount", exact=True).fill("500.00")
    page.get_by_label("ML model score", exact=True).check()
    page.get_by_role("button", name="Request credit").click()
    expect(page.get_by_role("alert")).to_contain_text("ML method unavailable right now")

    # Exports: the history as CSV and the statement as PDF.
    page.goto("/customer")
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="Export CSV").click()
    text = Path(csv_download.value.path()).read_text()
    assert text.startswith("kind,id,date,") and ",250.00," in text and "\nimported," in text
    assert csv_download.value.suggested_filename == "payments-101.csv"
    with page.expect_download() as pdf_download:
        page.get_by_role("link", name="PDF statement").click()
    assert Path(pdf_download.value.path()).read_bytes().startswith(b"%PDF")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You have logged out.")).to_be_visible()
    page.goto("/customer")
    expect(page.get_by_role("heading", name="Customer login")).to_be_visible()
    page.context.close()


def test_rejected_credit_with_the_keyboard(browser, server):
    page = new_page(browser, server)
    page.goto("/customer/login")
    page.get_by_label("ID", exact=True).focus()
    page.keyboard.type("102")
    page.keyboard.press("Tab")
    page.keyboard.type("customer123")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the eye toggle
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("type", "text")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Ben Okafor")).to_be_visible()
    page.goto("/credit")
    page.get_by_label("Amount", exact=True).fill("300.00")
    page.get_by_label("Amount", exact=True).press("Enter")
    expect(page.get_by_role("heading", name="Credit rejected")).to_be_visible()
    expect(page.locator(".reasons")).to_contain_text("You have paid 50% of everything that was due; 80% is needed.")
    expect(page.get_by_role("link", name="Pay now")).to_be_visible()
    expect(page.get_by_role("link", name="Try again")).to_be_visible()
    page.context.close()


def test_manager_journey(browser, server):
    page = new_page(browser, server)
    page.goto("/")
    page.get_by_role("link", name=re.compile("^Manager")).click()
    log_in(page, "manager", 1, "manager123")
    expect(page.get_by_role("heading", name="Portfolio")).to_be_visible()
    expect(page.locator("#portfolio tbody tr")).to_have_count(20)
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    page.get_by_role("link", name="Balance").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Balance")

    page.get_by_label("Search by ID or name", exact=True).fill("carla")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#portfolio tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Carla Mendes").click()
    expect(page.get_by_text("Manager view: read-only")).to_be_visible()
    expect(page.get_by_role("link", name="Pay", exact=True)).to_have_count(0)
    expect(page.locator(".card", has_text="Balance")).to_contain_text("$1,050.00")

    # Reset the customer's password; the new one works.
    page.get_by_role("link", name="Reset password").click()
    page.get_by_label("New password", exact=True).fill("brand-new-pw")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_text("Password changed for customer 103")).to_be_visible()

    # Reverse a payment, with a confirmation step.
    page.get_by_role("link", name="Reverse…").click()
    expect(page.get_by_role("heading", name=f"Reverse payment #{server['payment_id']}?")).to_be_visible()
    page.get_by_label("Reason", exact=True).fill("Cheque bounced")
    page.get_by_role("button", name="Yes, reverse this payment").click()
    expect(page.get_by_text(f"Payment #{server['payment_id']} reversed")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Reversed")
    expect(page.locator(".card", has_text="Balance")).to_contain_text("$1,200.00")

    page.get_by_role("link", name="Decisions").first.click()
    expect(page.get_by_role("heading", name="Credit decisions")).to_be_visible()
    page.goto("/no-such-page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    page.context.close()

    customer = new_page(browser, server)
    log_in(customer, "customer", 103, "brand-new-pw")
    expect(customer.get_by_role("heading", name="Carla Mendes")).to_be_visible()
    customer.context.close()


def fits(locator) -> bool:
    """Tell whether an element shows all it holds without scrolling sideways."""
    return locator.evaluate("e => e.scrollWidth <= e.clientWidth + 1")


def all_cells_visible(page, table: str) -> None:
    """Every cell of the table's first row lies inside the viewport: nothing hidden in a scroll box."""
    width = page.viewport_size["width"]
    for cell in page.locator(f"{table} tbody tr").first.locator("td").all():
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (table, cell.inner_text(), box)


def test_phone_tables_become_stacked_rows(browser, server):
    page = new_page(browser, server, PHONE)
    for path in ("/", "/customer/login"):
        page.goto(path)
        no_sideways_scroll(page)
    log_in(page, "customer", 101, "customer123")
    for path in ("/customer", f"/customers/101?year={LAST}", "/pay", "/credit", "/no-such-page"):
        page.goto(path)
        no_sideways_scroll(page)
    page.goto(f"/customers/101?year={LAST}")
    all_cells_visible(page, "#months")  # Paid and Need to pay no longer hide in a scroll box
    assert page.locator("#months td[data-label='Need to pay']").first.evaluate(
        "e => getComputedStyle(e, '::before').content").strip('"') == "Need to pay"
    all_cells_visible(page, "#history")
    assert all(fits(box) for box in page.locator(".table-scroll").all())
    page.get_by_role("button", name="Log out").click()

    log_in(page, "manager", 1, "manager123")
    for path, table in (("/manager", "#portfolio"), ("/customers/103", "#history"),
                        ("/manager/decisions", "#decisions")):
        page.goto(path)
        no_sideways_scroll(page)
        all_cells_visible(page, table)
        assert all(fits(box) for box in page.locator(".table-scroll").all()), path
    page.context.close()


def test_desktop_layout(browser, server):
    page = new_page(browser, server, DESKTOP)
    log_in(page, "customer", 101, "customer123")
    page.goto(f"/customers/101?year={LAST}")
    box = page.locator("#months").locator("xpath=..")
    # A year's twelve months and its total show whole: no scrolling inside the table's box.
    assert box.evaluate("e => e.scrollHeight <= e.clientHeight + 1 && e.scrollWidth <= e.clientWidth + 1")
    expect(page.locator("#cards-h")).to_contain_text("Whole account")
    email = page.locator(".email").first
    assert email.evaluate("e => getComputedStyle(e).overflowWrap") == "normal"  # breaks only at @ and dots
    page.get_by_role("button", name="Log out").click()

    log_in(page, "manager", 1, "manager123")
    page.goto("/manager/decisions")
    no_sideways_scroll(page)
    assert fits(page.locator("#decisions").locator("xpath=.."))  # every column, Reasons included, is on screen
    all_cells_visible(page, "#decisions")
    heights = page.locator("#decisions tbody tr").evaluate_all("rows => rows.map(r => r.offsetHeight)")
    assert max(heights) < 200, heights  # rows stay short: no column squeezed to a sliver
    page.goto("/manager")
    all_cells_visible(page, "#portfolio")
    page.context.close()


def test_admin_journey(browser, server):
    page = new_page(browser, server)
    log_in(page, "manager", 1, "manager123")
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page.get_by_role("heading", name="Managers")).to_be_visible()

    # A new manager, deactivated after a confirmation step, then reactivated.
    page.get_by_role("link", name="New manager").click()
    page.get_by_label("Name", exact=True).fill("Dana Field")
    page.get_by_label("Email (optional)", exact=True).fill("dana@example.com")
    page.get_by_label("Password", exact=True).fill("dana-pass-1")
    page.get_by_role("button", name="Create manager").click()
    expect(page.get_by_text("Manager 2 (Dana Field) created")).to_be_visible()
    expect(page.get_by_role("link", name="Deactivate manager 1")).to_have_count(0)  # not oneself
    page.get_by_role("link", name="Deactivate manager 2").click()
    expect(page.get_by_role("heading", name="Deactivate manager 2?")).to_be_visible()
    page.get_by_role("button", name="Yes, deactivate Dana Field").click()
    expect(page.get_by_text("deactivated: their logins have ended")).to_be_visible()
    expect(page.locator("#managers tbody tr", has_text="Dana Field")).to_contain_text("Deactivated")
    page.get_by_role("button", name="Reactivate manager 2").click()
    expect(page.locator("#managers tbody tr", has_text="Dana Field")).to_contain_text("Active")

    # A customer's contact details, then their deactivation: they cannot log in until reactivated.
    page.goto("/customers/104")
    page.get_by_role("link", name="Account…").click()
    expect(page.get_by_role("heading", name="Contact details")).to_be_visible()
    page.get_by_label("Phone (optional)", exact=True).fill("555 0104")
    page.get_by_role("button", name="Save contact details").click()
    expect(page.get_by_text("Saved: phone changed.")).to_be_visible()
    expect(page.locator("#audit tbody tr").first).to_contain_text("555-0100 → 555 0104")
    page.get_by_role("link", name="Deactivate…").click()
    page.get_by_role("button", name="Yes, deactivate Customer 104").click()
    expect(page.get_by_text("This customer cannot log in")).to_be_visible()
    customer = new_page(browser, server)
    customer.goto("/customer/login")
    customer.get_by_label("ID", exact=True).fill("104")
    customer.get_by_label("Password", exact=True).fill("secret-pw")
    customer.get_by_role("button", name="Log in").click()
    expect(customer.get_by_role("alert")).to_contain_text("Wrong ID or password")
    page.get_by_role("button", name="Reactivate").click()
    expect(page.get_by_text("is active again and can log in")).to_be_visible()
    customer.get_by_label("Password", exact=True).fill("secret-pw")
    customer.get_by_role("button", name="Log in").click()
    expect(customer.get_by_role("heading", name="Customer 104")).to_be_visible()
    customer.context.close()

    # One audit log, newest first.
    page.get_by_role("link", name="Admin", exact=True).click()
    page.get_by_role("link", name="Audit log").click()
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_contain_text("customer.reactivate")
    for action in ("customer.deactivate", "customer.contact", "manager.reactivate", "manager.deactivate",
                   "manager.create"):
        expect(page.locator("#audit")).to_contain_text(action)
    page.get_by_role("link", name="Emails").click()
    expect(page.locator("#mail-pending")).to_be_visible()
    page.context.close()


def test_admin_pages_at_phone_width(browser, server):
    page = new_page(browser, server, PHONE)
    log_in(page, "manager", 1, "manager123")
    for path in ("/manager/admin/managers", "/manager/admin/customers/104", "/manager/admin/audit",
                 "/manager/admin/mail", "/manager/admin/managers/new", "/manager/admin/customers/104/deactivate"):
        page.goto(path)
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        no_sideways_scroll(page)
    page.context.close()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_language_switcher_journey(browser, server, size):
    """Switch to German before login: the words change, stay after a reload and a login, and on a new browser."""
    viewport = DESKTOP if size == "desktop" else PHONE
    customer = LANGUAGE_CUSTOMERS[size]
    page = new_page(browser, server, viewport)
    page.goto("/")
    expect(page.get_by_role("heading", name="Your credit account, in one place")).to_be_visible()
    expect(page.get_by_role("button", name="English")).to_be_disabled()  # the language in use
    page.get_by_role("button", name="Deutsch").click()
    expect(page.get_by_role("heading", name="Ihr Kreditkonto an einem Ort")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "de"
    no_sideways_scroll(page)
    page.reload()
    expect(page.get_by_role("heading", name="Ihr Kreditkonto an einem Ort")).to_be_visible()

    page.get_by_role("link", name="Kunde Ihre Fälligkeiten, Zahlungen und Kreditanträge").click()
    expect(page.get_by_role("heading", name="Kundenanmeldung")).to_be_visible()
    page.get_by_label("ID", exact=True).fill(str(customer))
    page.get_by_label("Passwort", exact=True).fill("customer123")
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Monatliche Fälligkeiten", exact=False)).to_be_visible()
    expect(page.locator("#months tfoot")).to_contain_text("1.200,00 $")  # German numbers, the same dollars
    no_sideways_scroll(page)
    page.reload()
    nav = page.get_by_role("navigation", name="Hauptnavigation")
    expect(nav.get_by_role("link", name="Kredit beantragen", exact=True)).to_be_visible()
    nav.get_by_role("link", name="Zahlen", exact=True).click()
    expect(page.get_by_role("heading", name="Zahlung leisten")).to_be_visible()
    expect(page.get_by_label("Monat", exact=True)).to_contain_text("Dezember")
    no_sideways_scroll(page)
    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_text("Sie haben sich abgemeldet.")).to_be_visible()

    # A new browser (English by default) gets the language the customer chose, at login.
    fresh = new_page(browser, server, viewport)
    fresh.goto("/customer/login")
    expect(fresh.get_by_role("heading", name="Customer login")).to_be_visible()
    fresh.get_by_label("ID", exact=True).fill(str(customer))
    fresh.get_by_label("Password", exact=True).fill("customer123")
    fresh.get_by_role("button", name="Log in").click()
    expect(fresh.get_by_role("button", name="Abmelden")).to_be_visible()
    fresh.get_by_role("button", name="English").click()
    expect(fresh.get_by_role("button", name="Log out")).to_be_visible()
    expect(fresh.get_by_role("heading", name="Monthly dues", exact=False)).to_be_visible()


def test_the_browsers_language_is_the_default(browser, server):
    context = browser.new_context(viewport=PHONE, base_url=server["base"], locale="de-DE")
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Ihr Kreditkonto an einem Ort")).to_be_visible()
    expect(page.get_by_role("button", name="Deutsch")).to_be_disabled()
    context.close()
