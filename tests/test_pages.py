"""The pages through Flask's test client: access rules, logins, CSRF on every form, and each page's work.

Every test runs on SQLite and PostgreSQL (the `app` fixture).
"""
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import select, update

from pipeline.features import feature_years
from portal.credit_requests import request_credit
from portal.decision_service import DecisionService
from portal.ledger import payments
from portal.models import ApiToken, Customer
from portal.web.exports import statement_pdf
from testing.audit import check_invariants, snapshot
from testing.people import add_customer
from tests.factories import SETTINGS, form_token, login, tampered, token_of, web_login

THIS_YEAR = date.today().year
NEXT_YEAR = THIS_YEAR + 1
FIVE_YEARS = feature_years(THIS_YEAR)


@pytest.fixture
def ledger(ledger):
    """The shared ledger with names; 103 paid everything; 101 and 102 each paid once and asked for credit."""
    db = ledger
    with db.sessions.begin() as s:
        s.execute(update(Customer).where(Customer.id == 101).values(name="Asha Rao"))
        s.execute(update(Customer).where(Customer.id == 102).values(name="Ben Okafor"))
    dues = {(2024, m): 10_000 for m in range(1, 13)}
    add_customer(db, 103, dues, paid=dues, password="paid-up-pw", name="Carla Mendes")
    ids = {}
    with db.sessions() as s:
        ids["pay101"] = payments.pay(s, 101, 2024, 1, 5_000).payment_id
        ids["pay102"] = payments.pay(s, 102, 2024, 2, 5_000).payment_id
        for cid in (101, 102):
            ids[f"dec{cid}"] = request_credit(s, cid, NEXT_YEAR, 1, 10_000, "percentage", SETTINGS).request_id
    db.ids = ids
    return db


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text.replace("<wbr>", "")))


# --- access rules ---------------------------------------------------------------------------

OWN = ["/customers/101", "/customers/101?year=2024", "/customers/101/history.csv",
       "/customers/101/statement.pdf?year=all", "/payments/{pay101}", "/decisions/{dec101}"]
OTHERS = ["/customers/102", "/customers/102?year=2024", "/customers/102/history.csv",
          "/customers/102/statement.pdf", "/payments/{pay102}", "/decisions/{dec102}"]
CUSTOMER_ONLY = ["/customer", "/pay", "/credit"]
MANAGER_ONLY = ["/manager", "/manager?q=Ben&sort=balance&order=desc", "/manager/decisions",
                "/manager/decisions?customer_id=102&method=percentage", "/manager/customers/new",
                "/manager/customers/102/password", "/manager/payments/{pay102}/reverse"]


def test_public_pages(client, ledger):
    r = client.get("/")
    assert r.status_code == 200 and 'href="/customer/login"' in r.text and 'href="/manager/login"' in r.text
    for role in ("customer", "manager"):
        r = client.get(f"/{role}/login")
        assert r.status_code == 200 and 'name="csrf_token"' in r.text and 'aria-label="Show password"' in r.text


def test_anonymous_is_sent_to_the_right_login_and_back(client, ledger):
    for path in OWN + OTHERS + CUSTOMER_ONLY + MANAGER_ONLY:
        path = path.format(**ledger.ids)
        r = client.get(path)
        role = "manager" if path.startswith("/manager") else "customer"
        assert r.status_code == 302 and r.headers["Location"].startswith(f"/{role}/login?next="), path
        login_page = client.get(r.headers["Location"])
        assert login_page.status_code == 200 and f"{role.capitalize()} login" in login_page.text


def statuses(client, paths, ids) -> dict:
    return {path: client.get(path.format(**ids)).status_code for path in paths}


def test_customer_opens_own_pages_only(client, customer, ledger):
    ids = ledger.ids
    assert statuses(client, OWN + CUSTOMER_ONLY, ids) == {p: 302 if p == "/customer" else 200
                                                           for p in OWN + CUSTOMER_ONLY}
    # Another customer's pages do not exist for them; manager pages are refused.
    assert statuses(client, OTHERS, ids) == dict.fromkeys(OTHERS, 404)
    assert statuses(client, MANAGER_ONLY, ids) == dict.fromkeys(MANAGER_ONLY, 403)
    r = client.get("/customers/102")
    assert "Page not found" in r.text and "Ben Okafor" not in r.text
    r = client.get("/manager")
    assert "Not allowed" in r.text and "managers only" in r.text


def test_manager_opens_customer_and_manager_pages_but_not_customer_actions(client, manager, ledger):
    every = OWN + OTHERS + MANAGER_ONLY
    assert statuses(client, every, ledger.ids) == dict.fromkeys(every, 200)
    assert statuses(client, CUSTOMER_ONLY, ledger.ids) == dict.fromkeys(CUSTOMER_ONLY, 403)


def test_a_manager_id_is_not_a_customer_login(auth, ledger):
    r = auth.web_login("customer", 1, "manager123")
    assert r.status_code == 401 and "Wrong ID or password" in r.text


def test_unknown_customer_or_year_is_404(client, manager, ledger):
    assert client.get("/customers/999").status_code == 404
    assert client.get("/customers/101?year=1999").status_code == 404
    assert client.get("/customers/101?year=abcd").status_code == 404
    assert client.get("/decisions/not-a-request").status_code == 404
    assert client.get("/payments/99999").status_code == 404


# --- logins, next, sessions -----------------------------------------------------------------

def test_login_returns_to_next(client, ledger):
    r = client.get("/customers/101?year=2024")
    assert r.headers["Location"] == "/customer/login?next=/customers/101?year%3D2024"
    r = client.post(r.headers["Location"], data={"csrf_token": form_token(client, "/customer/login"),
                                                 "id": "101", "password": "customer123"})
    assert r.status_code == 302 and r.headers["Location"] == "/customers/101?year=2024"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example",
                                    "javascript:alert(1)", "/api/customer/summary/101", "customers/101"])
def test_next_must_be_a_local_page(auth, ledger, target):
    r = auth.web_login("customer", 101, "customer123", next_path=target)
    assert r.status_code == 302 and r.headers["Location"] == "/customer"


def test_bad_credentials_are_a_clear_error(client, auth, ledger):
    for user_id, password in ((101, "wrong"), (999, "customer123")):
        r = auth.web_login("customer", user_id, password)
        assert r.status_code == 401 and "Wrong ID or password" in r.text
    r = client.post("/customer/login", data={"csrf_token": form_token(client, "/customer/login"), "id": "abc",
                                             "password": ""})
    assert r.status_code == 400 and "An ID is a number" in r.text and "Enter your password" in r.text
    assert 'aria-invalid="true"' in r.text


def test_login_throttle_shows_the_message(auth, ledger):
    codes = [auth.web_login("customer", 101, "nope").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    r = auth.web_login("customer", 101, "customer123")
    assert r.status_code == 429 and "Too many failed logins" in r.text and r.headers.get("Retry-After")
    assert "Customer login" in r.text  # the login page, not a bare error
    assert auth.web_login("customer", 102, "other-pw").status_code == 302  # another id is not locked


def test_expired_session_goes_to_login_and_back(client, app, customer, ledger):
    with ledger.sessions.begin() as s:
        s.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    r = client.get("/pay")
    assert r.status_code == 302 and r.headers["Location"] == "/customer/login?next=/pay"
    page = client.get(r.headers["Location"])
    assert "Your session has ended" in page.text
    r = client.post(r.headers["Location"], data={"csrf_token": token_of(page.text), "id": "101",
                                                 "password": "customer123"})
    assert r.headers["Location"] == "/pay" and client.get("/pay").status_code == 200


def test_logout_ends_the_login(client, customer, ledger):
    r = client.post("/logout", data={"csrf_token": form_token(client, "/customers/101")})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert "You have logged out" in client.get("/").text
    assert client.get("/customers/101").status_code == 302
    with ledger.sessions() as s:
        assert all(t.revoked_at is not None for t in s.scalars(select(ApiToken)))


def test_api_keeps_json_errors(client, ledger):
    r = client.get("/api/customer/summary/101")
    assert r.status_code == 401 and r.json == {"error": "login required", "field": None}
    assert client.get("/api/nope").is_json
    r = client.get("/nope")
    assert r.status_code == 404 and r.mimetype == "text/html" and "site.css" in r.text


def test_error_500_page(app, ledger):
    def boom():
        raise RuntimeError("internal detail")

    app.add_url_rule("/boom", "boom", boom)
    app.add_url_rule("/api/boom", "api_boom", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    r = client.get("/boom")
    assert r.status_code == 500 and "Something went wrong" in r.text and "internal detail" not in r.text
    assert client.get("/api/boom").is_json


# --- CSRF on every form ---------------------------------------------------------------------

FORMS = [
    ("customer", "/pay", {"year": "2024", "month": "1", "amount": "1.00", "idempotency_key": "web-" + "a" * 32}),
    ("customer", "/credit", {"year": str(NEXT_YEAR), "month": "1", "amount": "1.00", "method": "percentage",
                             "idempotency_key": "web-" + "b" * 32}),
    ("customer", "/logout", {}),
    ("manager", "/manager/customers/new", {"name": "Eve", "password": "long-enough-pw"}),
    ("manager", "/manager/customers/101/password", {"password": "long-enough-pw"}),
    ("manager", "/manager/payments/{pay101}/reverse", {"reason": "mistake"}),
    ("manager", "/logout", {}),
]


@pytest.mark.parametrize("role,path,data", FORMS)
def test_every_form_needs_its_csrf_token(client, auth, ledger, role, path, data):
    auth.web_login(role, 1 if role == "manager" else 101, "manager123" if role == "manager" else "customer123")
    before = snapshot(ledger)
    for token in (None, "forged", tampered(form_token(client, "/"))):
        body = dict(data, **({"csrf_token": token} if token else {}))
        r = client.post(path.format(**ledger.ids), data=body)
        assert r.status_code == 400 and "The form has expired" in r.text, token
    assert snapshot(ledger) == before
    assert client.get("/manager" if role == "manager" else "/customers/101").status_code == 200  # still logged in


@pytest.mark.parametrize("role", ["customer", "manager"])
def test_login_forms_need_their_csrf_token(client, ledger, role):
    user_id, password = (1, "manager123") if role == "manager" else (101, "customer123")
    for extra in ({}, {"csrf_token": "forged"}):
        r = client.post(f"/{role}/login", data={"id": str(user_id), "password": password, **extra})
        assert r.status_code == 400 and "The form has expired" in r.text
        with client.session_transaction() as s:
            assert "_user_id" not in s


# --- customer pages -------------------------------------------------------------------------

def test_dashboard(client, customer, ledger):
    r = client.get("/customers/101")
    t = text_of(r)
    assert "Asha Rao" in t and "c101@example.com" in t
    assert "Total credit $1,300.00" in t and "Paid $50.00" in t and "Balance $1,250.00" in t
    assert "Bank credit $0.00" in t and "Whole account" in t
    assert re.findall(r'<option value="([^"]+)"', r.text)[:3] == ["all", "2024", "2025"]
    assert "Apply Filter" in t and "Due and paid per year" in t and r.text.count("<tr") >= 13
    r = client.get("/customers/101?year=2024")
    assert r.text.count('class="bar bar-due"') == 12 and "Due and paid per month in 2024" in r.text
    assert '<option value="2024" selected>' in r.text
    assert "Jan 2024: $50.00" in text_of(r)  # the payment history says where the money went


def test_pay_defaults_overflows_and_is_idempotent(client, customer, ledger):
    r = client.get("/pay")
    assert '<option selected value="2024">' in r.text and '<option selected value="1">January' in r.text
    key = re.search(r'name="idempotency_key" type="hidden" value="(web-[0-9a-f]{32})"', r.text).group(1)
    assert key != re.search(r'value="(web-[0-9a-f]{32})"', client.get("/pay").text).group(1)
    form = {"csrf_token": token_of(r.text), "year": "2024", "month": "12", "amount": "250.00", "idempotency_key": key}
    first = client.post("/pay", data=form)
    assert first.status_code == 302 and first.headers["Location"].startswith("/payments/")
    receipt = text_of(client.get(first.headers["Location"]))
    assert "December 2024 $100.00" in receipt and "January 2025 $100.00" in receipt
    assert "January 2024 $50.00" in receipt and "Bank credit $0.00" in receipt  # then the oldest month owed
    before = snapshot(ledger)
    again = client.post("/pay", data=form)  # a double submit of the same form
    assert again.headers["Location"] == first.headers["Location"]
    assert "already recorded" in client.get(again.headers["Location"]).text
    assert snapshot(ledger) == before
    changed = client.post("/pay", data=dict(form, amount="1.00"))  # the same form, edited after paying
    assert changed.status_code == 422 and "already used" in changed.text and snapshot(ledger) == before
    check_invariants(ledger)


@pytest.mark.parametrize("fields,message", [
    ({"amount": "12.345"}, "at most two decimals"),
    ({"amount": "-5"}, "at most two decimals"),
    ({"amount": "0"}, "Amount must be positive"),
    ({"amount": ""}, "Enter an amount"),
    ({"month": "2", "year": "2025"}, "is not in the customer&#39;s schedule"),
    ({"year": "1999"}, "Not a valid choice"),
    ({"idempotency_key": "x"}, "The form has expired"),
])
def test_pay_errors_are_shown_and_change_nothing(client, customer, ledger, fields, message):
    r = client.get("/pay")
    key = re.search(r'value="(web-[0-9a-f]{32})"', r.text).group(1)
    before = snapshot(ledger)
    form = {"csrf_token": token_of(r.text), "year": "2024", "month": "3", "amount": "10.00", "idempotency_key": key}
    r = client.post("/pay", data=dict(form, **fields))
    assert r.status_code == 422 and message in r.text
    assert snapshot(ledger) == before


def credit_form(client, **fields):
    page = client.get("/credit")
    key = re.search(r'value="(web-[0-9a-f]{32})"', page.text).group(1)
    return client.post("/credit", data={"csrf_token": token_of(page.text), "year": str(NEXT_YEAR), "month": "3",
                                        "amount": "500.00", "method": "percentage", "idempotency_key": key,
                                        **fields})


def test_credit_double_submit_gives_one_decision(client, customer, ledger):
    page = client.get("/credit")
    form = {"csrf_token": token_of(page.text), "year": str(NEXT_YEAR), "month": "3", "amount": "500.00",
            "method": "percentage", "idempotency_key": re.search(r'value="(web-[0-9a-f]{32})"', page.text).group(1)}
    first = client.post("/credit", data=form)
    before = snapshot(ledger)
    again = client.post("/credit", data=form)
    assert again.headers["Location"] == first.headers["Location"] and snapshot(ledger) == before
    changed = client.post("/credit", data=dict(form, amount="1.00"))
    assert changed.status_code == 409 and "already used" in changed.text and snapshot(ledger) == before


def test_credit_rejected_by_percentage(client, customer, ledger):
    r = credit_form(client)
    assert r.status_code == 302 and r.headers["Location"].startswith("/decisions/")
    page = text_of(client.get(r.headers["Location"]))
    assert "Credit rejected" in page and "You have paid 3.85% of everything that was due; 80% is needed." in page
    assert "$500.00" in page and "March " + str(NEXT_YEAR) in page and "below the 80% needed" in page
    assert "Pay now" in page and "Try again" in page


def test_credit_sanctioned_by_percentage(client, auth, ledger):
    auth.web_login("customer", 103, "paid-up-pw")
    form = text_of(client.get("/credit"))
    # 103 paid 1,200.00 over the last five years: a limit of 240.00 (a year's payments), nothing owed.
    assert "You have paid 100% of all your dues" in form and "Available credit $240.00" in form
    r = credit_form(client, amount="200.50")
    page = text_of(client.get(r.headers["Location"]))
    assert "Credit sanctioned" in page and "$200.50 has been added to your due for March" in page
    assert "100% (threshold 80%)" in page and "Credit limit: passed" in page
    assert "Total credit $1,400.50" in text_of(client.get("/customers/103"))
    assert "Available credit $39.50" in text_of(client.get("/credit"))


def test_credit_over_the_limit_says_what_can_be_borrowed(client, auth, ledger):
    auth.web_login("customer", 103, "paid-up-pw")
    before = snapshot(ledger)
    r = credit_form(client, amount="1250.50")
    page = text_of(client.get(r.headers["Location"]))
    assert "Credit rejected" in page and "more than your available credit of $240.00" in page
    assert "You can borrow up to $240.00 now" in page and "Credit limit: failed" in page and "Score: passed" in page
    after = snapshot(ledger)
    assert after["dues"] == before["dues"] and after["decisions"] == before["decisions"] + 1


def test_ml_method_says_not_available_yet(client, auth, ledger):
    add_customer(ledger, 104, {(y, m): 10_000 for y in FIVE_YEARS for m in range(1, 13)}, password="five-years")
    auth.web_login("customer", 104, "five-years")
    before = snapshot(ledger)
    r = credit_form(client, method="ml")
    assert r.status_code == 503 and "ML method unavailable right now" in r.text and "Credit sanctioned" not in r.text
    assert snapshot(ledger) == before


def test_ml_method_needs_five_years(client, customer, ledger):
    r = credit_form(client, method="ml")
    assert r.status_code == 422 and "needs dues in each of the last five complete years" in r.text


def test_ml_decision_page_shows_score_and_threshold(client, auth, ledger, monkeypatch):
    add_customer(ledger, 104, {(y, m): 10_000 for y in FIVE_YEARS for m in range(1, 13)}, password="five-years")
    reasons = [{"code": "strong_year", "text": f"Paid 0% in {FIVE_YEARS[-1]}", "feature": "paid_pct_1y_ago"}]
    monkeypatch.setattr(DecisionService, "score", lambda *a, **k: {"score": 0.42, "served_threshold": 0.8,
                                                                   "model_version": "7", "reasons": reasons})
    auth.web_login("customer", 104, "five-years")
    r = credit_form(client, method="ml")
    page = text_of(client.get(r.headers["Location"]))
    assert "Credit rejected" in page and "0.420 (threshold 0.800)" in page and "Model version 7" in page
    assert f"Paid 0% in {FIVE_YEARS[-1]}" in page and f"{FIVE_YEARS[0]}" in page


@pytest.mark.parametrize("fields,status,message", [
    ({"year": str(THIS_YEAR), "month": "1" if date.today().month > 1 else "13"}, 422, ""),
    ({"amount": "99999999.99"}, 422, "amount must be at most"),
    ({"amount": "1e3"}, 422, "at most two decimals"),
    ({"method": "astrology"}, 422, "Not a valid choice"),
])
def test_credit_errors_change_nothing(client, customer, ledger, fields, status, message):
    before = snapshot(ledger)
    r = credit_form(client, **fields)
    assert r.status_code == status and message.lower() in r.text.lower()
    assert snapshot(ledger) == before


def test_exports(client, customer, ledger):
    r = client.get("/customers/101/history.csv")
    assert r.mimetype == "text/csv" and 'filename="payments-101.csv"' in r.headers["Content-Disposition"]
    lines = r.text.splitlines()
    assert lines[0] == "kind,id,date,year,month,amount,allocations,to_bank_credit,source,reversed,reversed_at,reason"
    assert lines[1].startswith("payment,1,") and ",2024,1,50.00,2024-01 50.00,0.00,api,no,," in lines[1]
    r = client.get("/customers/101/statement.pdf?year=2024")
    assert r.mimetype == "application/pdf" and r.data.startswith(b"%PDF") and len(r.data) > 1000
    assert 'filename="statement-101-2024.pdf"' in r.headers["Content-Disposition"]


def test_imported_months_are_in_the_history_and_its_csv(client, manager, ledger):
    page = client.get("/customers/103")  # paid all of 2024 before this ledger: an opening balance, no payments
    t = text_of(page)
    assert "Nothing paid yet" not in t and page.text.count('class="history-imported"') == 12
    assert "December 2024 Paid before this account was opened here $100.00" in t
    lines = client.get("/customers/103/history.csv").text.splitlines()
    assert lines[1] == "imported,,2024-12,2024,12,100.00,,,import,,," and len(lines) == 13


def test_csv_cells_cannot_be_formulas(client, manager, ledger):
    pay = ledger.ids["pay101"]
    token = form_token(client, f"/manager/payments/{pay}/reverse")
    client.post(f"/manager/payments/{pay}/reverse", data={"csrf_token": token, "reason": "=HYPERLINK(\"x\")"})
    assert "'=HYPERLINK" in client.get("/customers/101/history.csv").text


# --- manager pages --------------------------------------------------------------------------

def test_portfolio_search_sort_and_pages(client, manager, ledger):
    for i in range(110, 130):
        add_customer(ledger, i, {(2024, 1): 1_000 * i})
    page = client.get("/manager")
    assert "Manager 1" in page.text and "Customers (23)" in text_of(page) and "Page 1 of 2" in page.text
    assert "Page 2 of 2" in client.get("/manager?page=2").text
    assert ">Ben Okafor</a>" in client.get("/manager?q=ben").text
    by_id = client.get("/manager?q=102").text
    assert ">Ben Okafor</a>" in by_id and "Asha Rao" not in by_id
    ranked = client.get("/manager?sort=balance&order=desc").text
    assert ranked.index("Customer 129") < ranked.index("Asha Rao") and 'aria-sort="descending"' in ranked
    assert client.get("/manager?sort=password_hash").status_code == 400
    assert client.get("/manager?page=0").status_code == 400


def test_manager_sees_a_customer_read_only(client, manager, ledger):
    t = text_of(client.get("/customers/102"))
    assert "Manager view: read-only" in t and "Overdue months" in t and "Reset password" in t
    assert 'href="/pay"' not in client.get("/customers/102").text.split("<main", 1)[1]
    assert "Reverse…" in t


def test_decisions_log(client, manager, ledger):
    t = text_of(client.get("/manager/decisions"))
    assert "Log (2)" in t and "Rejected" in t and "You have paid 3.85% of everything that was due; 80% is needed." in t
    assert "Log (1)" in text_of(client.get("/manager/decisions?customer_id=102"))
    assert "Log (0)" in text_of(client.get("/manager/decisions?method=ml"))


def test_create_customer(manager, client, ledger, app):
    token = form_token(client, "/manager/customers/new")
    bad = client.post("/manager/customers/new", data={"csrf_token": token, "name": "Dana", "password": "short",
                                                       "email": "nope", "age": "12", "id": "101"})
    assert bad.status_code == 422
    assert "Shorter than minimum length 8" in bad.text or "Length must be" in bad.text
    assert "Not a valid email address" in bad.text and "Must be greater than or equal to 18" in bad.text
    taken = client.post("/manager/customers/new", data={"csrf_token": token, "name": "Dana", "id": "101",
                                                         "password": "long-enough-pw"})
    assert taken.status_code == 422 and "customer 101 already exists" in taken.text.lower()
    new = {"csrf_token": token, "name": "Dana Lee", "email": "dana@example.com", "password": "long-enough-pw",
           "age": "40", "phone": "555 0101"}
    r = client.post("/manager/customers/new", data=new)
    assert r.status_code == 302 and r.headers["Location"] == "/customers/104"
    assert "Customer 104 (Dana Lee) created" in client.get(r.headers["Location"]).text
    other = app.test_client()
    assert web_login(other, "customer", 104, "long-enough-pw").status_code == 302


def test_reset_password_ends_the_customers_sessions(client, app, manager, ledger):
    victim = app.test_client()
    web_login(victim, "customer", 102, "other-pw")
    bearer = login(app.test_client(), "customer", 102, "other-pw")
    token = form_token(client, "/manager/customers/102/password")
    short = client.post("/manager/customers/102/password", data={"csrf_token": token, "password": "short"})
    assert short.status_code == 422 and victim.get("/customers/102").status_code == 200
    r = client.post("/manager/customers/102/password", data={"csrf_token": token, "password": "a-new-password"})
    assert r.status_code == 302 and "Password changed for customer 102" in client.get(r.headers["Location"]).text
    assert victim.get("/customers/102").status_code == 302
    assert app.test_client().get("/api/customer/summary/102", headers=bearer).status_code == 401
    assert web_login(app.test_client(), "customer", 102, "a-new-password").status_code == 302
    assert client.get("/manager/customers/999/password").status_code == 404


def test_reverse_a_payment_after_confirming(client, manager, ledger):
    pay = ledger.ids["pay101"]
    confirm = client.get(f"/manager/payments/{pay}/reverse")
    assert "Reverse payment #" in confirm.text and "Yes, reverse this payment" in confirm.text
    assert "January 2024 $50.00" in text_of(confirm)
    token = token_of(confirm.text)
    before = snapshot(ledger)
    empty = client.post(f"/manager/payments/{pay}/reverse", data={"csrf_token": token, "reason": "  "})
    assert empty.status_code == 422 and snapshot(ledger) == before
    r = client.post(f"/manager/payments/{pay}/reverse", data={"csrf_token": token, "reason": "Cheque bounced"})
    assert r.status_code == 302 and r.headers["Location"] == "/customers/101"
    page = text_of(client.get("/customers/101"))
    assert f"Payment #{pay} reversed" in page and "Reversed" in page and "Balance $1,300.00" in page
    again = client.post(f"/manager/payments/{pay}/reverse", data={"csrf_token": token, "reason": "twice"})
    assert again.status_code == 409 and "already reversed" in again.text
    assert "This payment was reversed" in client.get(f"/manager/payments/{pay}/reverse").text
    check_invariants(ledger)


# --- markup: CSP-safe, labelled, styled -----------------------------------------------------

class FieldAudit(HTMLParser):
    """Collect form fields, labels, inline scripts and inline styles."""

    def __init__(self):
        super().__init__()
        self.fields, self.labels, self.problems, self._script = [], set(), [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "style" in a or tag == "style":
            self.problems.append(f"inline style on <{tag}>")
        if tag == "script":
            if "src" not in a:
                self.problems.append("inline script")
        if any(name.startswith("on") for name in a):
            self.problems.append(f"inline handler on <{tag}>")
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.fields.append(a)


PAGES = {"customer": ["/", "/customers/101", "/customers/101?year=2024", "/pay", "/credit",
                      "/payments/{pay101}", "/decisions/{dec101}"],
         "manager": ["/manager", "/manager/decisions", "/manager/customers/new", "/manager/customers/101/password",
                     "/manager/payments/{pay101}/reverse", "/customers/102"],
         None: ["/", "/customer/login", "/manager/login", "/nope"]}


@pytest.mark.parametrize("role", ["customer", "manager", None])
def test_pages_are_csp_safe_and_every_field_has_a_label(client, auth, ledger, role):
    if role:
        auth.web_login(role, 1 if role == "manager" else 101, "manager123" if role == "manager" else "customer123")
    for path in PAGES[role]:
        r = client.get(path.format(**ledger.ids))
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert '<link rel="stylesheet" href="/static/site.css">' in r.text and "http://" not in r.text
        audit = FieldAudit()
        audit.feed(r.text)
        assert audit.problems == [], (path, audit.problems)
        for f in audit.fields:
            assert f.get("id") in audit.labels or f.get("aria-label"), (path, f)


def test_static_files(client):
    assert client.get("/static/site.css").status_code == 200
    js = client.get("/static/site.js")
    assert js.status_code == 200 and "dataset.show" in js.text and "data-busy" in js.text


def test_statement_pdf_draws_names_beyond_latin_1(app):
    info = {"customer": {"id": 7, "name": "Zoë Ångström Łukasz Дмитрий", "email": "z@example.com", "phone": None},
            "total_credit": "1.00", "total_paid": "0.00", "balance": "1.00", "bank_credit": "0.00",
            "percentage_paid": 0.0}
    with app.test_request_context():  # amounts and dates are formatted with the app's locale and currency
        pdf = statement_pdf(info, None, [], {"amount_to_pay": "0.00", "amount_paid": "0.00", "needtopay": "0.00"},
                            [], date(2026, 11, 27))
    assert pdf.startswith(b"%PDF") and b"DejaVu" in pdf  # the Unicode font is embedded: no "?" for Ł or Д


# --- where the money will go, and refunds ------------------------------------------------------------

def test_pay_preview_says_where_the_money_goes_and_pays_nothing(client, customer, ledger):
    before = snapshot(ledger)
    fragment = text_of(client.get("/pay/preview?year=2024&month=1&amount=120.00"))
    assert "Where $120.00 will go" in fragment and "January 2024 $50.00" in fragment
    assert "February 2024 $70.00" in fragment and "already paid" not in fragment
    page = client.get("/pay")
    key = re.search(r'value="(web-[0-9a-f]{32})"', page.text).group(1)
    shown = client.post("/pay", data={"csrf_token": token_of(page.text), "year": "2024", "month": "1",
                                      "amount": "60.00", "idempotency_key": key, "preview": "Show where it goes"})
    assert shown.status_code == 200 and "Where $60.00 will go" in text_of(shown)
    assert snapshot(ledger) == before
    assert "at most two decimals" in client.get("/pay/preview?year=2024&month=1&amount=12.345").text


def test_pay_preview_says_when_the_month_is_already_paid(client, auth, ledger):
    add_customer(ledger, 105, {(2024, 1): 10_000, (2024, 2): 10_000}, paid={(2024, 2): 10_000}, password="pw-105-ok")
    auth.web_login("customer", 105, "pw-105-ok")
    t = text_of(client.get("/pay/preview?year=2024&month=2&amount=150.00"))
    assert "February 2024 is already paid" in t and "January 2024 $100.00" in t
    assert "Bank credit (nothing is owed any more) $50.00" in t
    assert '<option selected value="1">January' in client.get("/pay").text  # the oldest month owed first


def test_manager_refunds_bank_credit_after_confirming(client, manager, ledger):
    add_customer(ledger, 106, {(2024, 1): 10_000}, paid={(2024, 1): 10_000}, bank_credit=7_500)
    assert "Refund bank credit…" in text_of(client.get("/customers/106"))
    page = client.get("/manager/customers/106/refund")
    assert 'value="75.00"' in page.text and "holds $75.00 of bank credit" in text_of(page)
    bad = client.post("/manager/customers/106/refund", data={"csrf_token": token_of(page.text), "amount": "75.01",
                                                             "reason": "asked"})
    assert bad.status_code == 422 and "at most the bank credit" in bad.text
    done = client.post("/manager/customers/106/refund", data={"csrf_token": token_of(page.text), "amount": "25.00",
                                                              "reason": "asked by phone"})
    assert done.status_code == 302
    t = text_of(client.get("/customers/106"))
    assert "$25.00 of bank credit refunded" in t and "Bank credit $50.00" in t and "Bank credit refunded" in t
    check_invariants(ledger)


def test_an_ml_approval_says_what_counted_and_what_held_the_score_back(client, auth, ledger, monkeypatch):
    five = {(y, m): 10_000 for y in FIVE_YEARS for m in range(1, 13)}
    add_customer(ledger, 107, five, paid=five, password="five-years")
    said = "You paid {}% of what was due in {}; approved customers typically paid {}% or more."
    reasons = [{"code": "raised_score", "year": FIVE_YEARS[0], "text": said.format(100, FIVE_YEARS[0], 97)},
               {"code": "lowered_score", "year": FIVE_YEARS[1], "text": said.format(80, FIVE_YEARS[1], 93)}]
    monkeypatch.setattr(DecisionService, "score", lambda *a, **k: {"score": 0.802, "served_threshold": 0.8,
                                                                   "model_version": "7", "reasons": reasons})
    auth.web_login("customer", 107, "five-years")
    page = text_of(client.get(credit_form(client, method="ml").headers["Location"]))
    assert "Credit sanctioned" in page and "0.802 (threshold 0.800)" in page
    assert f"What counted for you You paid 100% of what was due in {FIVE_YEARS[0]}" in page
    assert f"What held your score back You paid 80% of what was due in {FIVE_YEARS[1]}" in page
