"""The admin panel: managers managed by managers, a customer's contact details and deactivation, one audit page.

Rules: a manager cannot deactivate themself; the last active manager cannot be deactivated;
every action leaves one audit row (who, when, old and new values) in the same transaction;
CSRF and the manager role are checked on every page; ids cannot be probed from outside.
"""
from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select

from portal.auth import accounts
from portal.ledger import payments
from portal.ledger.errors import Conflict
from portal.models import AuditEvent, Customer, Manager
from testing.people import add_manager
from tests.factories import form_token, login, token_of

ADMIN_PAGES = ["/manager/admin/managers", "/manager/admin/managers/new", "/manager/admin/audit",
               "/manager/admin/mail", "/manager/admin/customers/101", "/manager/admin/customers/101/deactivate",
               "/manager/admin/managers/2/deactivate"]
ADMIN_WRITES = ["/manager/admin/managers/new", "/manager/admin/customers/101",
                "/manager/admin/customers/101/deactivate", "/manager/admin/customers/101/reactivate",
                "/manager/admin/managers/2/deactivate", "/manager/admin/managers/2/reactivate",
                "/manager/admin/mail/1/retry"]


def events(db) -> list[AuditEvent]:
    with db.sessions() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


@pytest.fixture
def two_managers(ledger):
    add_manager(ledger, 2, password="manager-two")
    return ledger


@pytest.fixture
def admin(auth, two_managers):
    """Manager 1 logged in on the pages."""
    assert auth.web_login("manager", 1, "manager123").status_code == 302
    return two_managers


def post(client, path: str, data: dict | None = None, token_from: str | None = None):
    """Submit a form with the CSRF token of the page it is on."""
    return client.post(path, data={"csrf_token": form_token(client, token_from or path), **(data or {})})


# --------------------------------------------------------------------------- who may

@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_anonymous_visitors_go_to_the_manager_login_and_customers_get_403(app, client, auth, two_managers, path):
    r = client.get(path)
    assert r.status_code == 302 and "/manager/login" in r.headers["Location"]
    auth.web_login("customer", 101, "customer123")
    assert client.get(path).status_code == 403
    # An unknown id answers the customer exactly as a known one: no probing.
    assert client.get(path.replace("101", "999999").replace("/2/", "/999/")).status_code == 403


@pytest.mark.parametrize("path", ADMIN_WRITES)
def test_every_admin_write_needs_a_csrf_token(client, admin, path):
    assert client.post(path, data={"name": "X"}).status_code == 400
    assert client.post(path, data={"name": "X", "csrf_token": "forged"}).status_code == 400
    assert events(admin) == []


def test_the_api_token_of_a_customer_cannot_open_admin_pages(client, two_managers):
    headers = login(client, "customer", 101, "customer123")
    assert client.get("/manager/admin/managers", headers=headers).status_code == 403


# --------------------------------------------------------------------------- managers

def test_create_a_manager_who_can_then_log_in(app, client, admin):
    r = post(client, "/manager/admin/managers/new",
             {"name": "Dana Field", "email": "dana@example.com", "phone": "", "id": "", "password": "dana-pass-1"})
    assert r.status_code == 302
    page = client.get("/manager/admin/managers").text
    assert "Dana Field" in page and "Manager 3 (Dana Field) created" in page
    [event] = events(admin)
    assert (event.actor_id, event.action, event.target_type, event.target_id) == (1, "manager.create", "manager", 3)
    assert event.new == {"name": "Dana Field", "email": "dana@example.com", "phone": None}
    assert "password" not in str(event.new)
    fresh = app.test_client()
    assert fresh.post("/api/manager/login", json={"id": 3, "password": "dana-pass-1"}).status_code == 200


def test_new_manager_form_errors(client, admin):
    r = post(client, "/manager/admin/managers/new", {"name": "", "password": "short"})
    assert r.status_code == 422 and "Enter a name" in r.text
    r = post(client, "/manager/admin/managers/new", {"name": "X", "id": "2", "password": "long-enough"})
    assert r.status_code == 422 and "Manager 2 already exists" in r.text
    r = post(client, "/manager/admin/managers/new", {"name": "X\nY", "password": "long-enough"})
    assert r.status_code == 422
    assert events(admin) == []


def test_a_manager_cannot_deactivate_themself(client, admin):
    page = client.get("/manager/admin/managers").text
    assert "Deactivate manager 2" in page and "Deactivate manager 1" not in page  # no button for oneself
    r = post(client, "/manager/admin/managers/1/deactivate")
    assert r.status_code == 409 and "You cannot deactivate your own account" in r.text
    with admin.sessions() as s:
        assert s.get(Manager, 1).active
    assert events(admin) == []


def test_deactivate_another_manager_with_a_confirmation_step(app, client, admin):
    other = app.test_client()
    other_token = login(other, "manager", 2, "manager-two")
    confirm = client.get("/manager/admin/managers/2/deactivate")
    assert confirm.status_code == 200 and "Deactivate manager 2?" in confirm.text
    with admin.sessions() as s:
        assert s.get(Manager, 2).active  # showing the confirmation changed nothing
    r = post(client, "/manager/admin/managers/2/deactivate")
    assert r.status_code == 302
    assert "deactivated: their logins have ended" in client.get("/manager/admin/managers").text
    # Their live login ended, and a new one is refused like a wrong password.
    assert other.get("/api/manager/me", headers=other_token).status_code == 401
    assert other.post("/api/manager/login", json={"id": 2, "password": "manager-two"}).json == {
        "error": "wrong id or password", "field": None}
    [event] = events(admin)
    assert (event.action, event.target_id, event.old, event.new) == (
        "manager.deactivate", 2, {"active": True}, {"active": False, "logins_ended": 1})
    # Reactivation gives the login back.
    assert post(client, "/manager/admin/managers/2/reactivate", token_from="/manager/admin/managers").status_code == 302
    assert other.post("/api/manager/login", json={"id": 2, "password": "manager-two"}).status_code == 200
    assert [e.action for e in events(admin)] == ["manager.deactivate", "manager.reactivate"]


def test_the_last_active_manager_cannot_be_deactivated(two_managers):
    with two_managers.sessions() as s:
        accounts.set_active(s, "manager", 2, False, by=1)
        # Manager 2, deactivated a moment ago, was still on the page: the last active manager stays.
        with pytest.raises(Conflict, match="last active manager"):
            accounts.set_active(s, "manager", 1, False, by=2)
        with pytest.raises(Conflict, match="no longer active"):
            add_manager(two_managers, 3, password="manager-three")
            accounts.set_active(s, "manager", 3, False, by=2)
        assert s.get(Manager, 1).active
    assert [e.action for e in events(two_managers)] == ["manager.deactivate"]


def test_two_managers_deactivating_each_other_at_once_leave_one(db_url, two_managers):
    barrier = threading.Barrier(2)
    outcomes = []

    def deactivate(target, by):
        with two_managers.sessions() as s:
            barrier.wait()
            try:
                outcomes.append(accounts.set_active(s, "manager", target, False, by=by))
            except Conflict as exc:
                outcomes.append(exc.message)

    threads = [threading.Thread(target=deactivate, args=args) for args in ((2, 1), (1, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with two_managers.sessions() as s:
        active = s.scalar(select(func.count()).select_from(Manager).where(Manager.active.is_(True)))
    assert active == 1 and outcomes.count(True) == 1, outcomes


# --------------------------------------------------------------------------- customers

def test_edit_contact_details_is_audited_with_old_and_new_values(client, admin):
    page = client.get("/manager/admin/customers/101")
    assert page.status_code == 200 and 'value="c101@example.com"' in page.text
    r = post(client, "/manager/admin/customers/101",
             {"name": "Customer 101", "email": "new@example.org", "phone": "555 0199"})
    assert r.status_code == 302
    assert "Saved: email, phone changed." in client.get("/manager/admin/customers/101").text
    with admin.sessions() as s:
        c = s.get(Customer, 101)
        assert (c.email, c.phone) == ("new@example.org", "555 0199")
    [event] = events(admin)
    assert (event.actor_id, event.action, event.target_id) == (1, "customer.contact", 101)
    assert event.old == {"email": "c101@example.com", "phone": "555-0100"}
    assert event.new == {"email": "new@example.org", "phone": "555 0199"}
    # Saving the same values again changes nothing and writes no audit row.
    post(client, "/manager/admin/customers/101", {"name": "Customer 101", "email": "new@example.org",
                                                   "phone": "555 0199"})
    assert len(events(admin)) == 1
    # Bad input is refused with the field's message.
    r = post(client, "/manager/admin/customers/101", {"name": "Eve\r\nBcc: x@example.net", "email": "nope"})
    assert r.status_code == 422 and "Not a valid email address" in r.text
    assert client.get("/manager/admin/customers/999999").status_code == 404


def test_deactivate_a_customer_keeps_their_data_and_ends_their_login(app, client, admin):
    api = app.test_client()
    token = login(api, "customer", 101, "customer123")
    with admin.sessions() as s:
        before = s.get(Customer, 101).total_due_cents
    assert post(client, "/manager/admin/customers/101/deactivate").status_code == 302
    assert api.get("/api/customer/summary/101", headers=token).status_code == 401
    assert api.post("/api/customer/login", json={"id": 101, "password": "customer123"}).status_code == 401
    page = api.post("/customer/login", data={"csrf_token": form_token(api, "/customer/login"), "id": "101",
                                             "password": "customer123"})
    assert page.status_code == 401 and "Wrong ID or password" in page.text
    # Managers still see everything.
    dashboard = client.get("/customers/101")
    assert dashboard.status_code == 200 and "Account…" in dashboard.text
    assert "Deactivated" in client.get("/manager/admin/customers/101").text
    with admin.sessions() as s:
        assert s.get(Customer, 101).total_due_cents == before
    assert post(client, "/manager/admin/customers/101/reactivate",
                token_from="/manager/admin/customers/101").status_code == 302
    assert api.post("/api/customer/login", json={"id": 101, "password": "customer123"}).status_code == 200
    assert [e.action for e in events(admin)] == ["customer.deactivate", "customer.reactivate"]


# --------------------------------------------------------------------------- the audit page

def test_existing_manager_actions_are_audited_too(client, admin):
    with admin.sessions() as s:
        payment = payments.pay(s, 101, 2024, 1, 5_000).payment_id
    headers = login(client, "manager", 1, "manager123")
    created = client.post("/api/manager/customers", headers=headers,
                          json={"name": "New One", "password": "pass-word-1"})
    assert created.status_code == 201
    client.post("/api/manager/customers/101/password", headers=headers, json={"password": "another-pw-1"})
    client.post(f"/api/manager/payments/{payment}/reversal", headers=headers, json={"reason": "bounced"})
    got = [(e.action, e.target_type, e.target_id, e.actor_id) for e in events(admin)]
    assert got == [("customer.create", "customer", created.json["id"], 1),
                   ("customer.password_reset", "customer", 101, 1),
                   ("payment.reverse", "payment", payment, 1)]
    assert "another-pw-1" not in str([(e.old, e.new) for e in events(admin)])


def test_the_audit_page_lists_every_action_newest_first_in_pages(client, admin):
    with admin.sessions() as s:
        for i in range(25):
            accounts.update_contact(s, 101, {"phone": f"555 {i:04d}"}, by=1)
    first = client.get("/manager/admin/audit")
    assert first.status_code == 200 and "Page 1 of 2" in first.text
    phones = re.findall(r"555 (\d{4}) *</li>", first.text)
    assert phones[:2] == ["0024", "0023"]  # the newest change first (old, then new value)
    assert len(re.findall(r"<code>customer.contact</code>", first.text)) == 20
    second = client.get("/manager/admin/audit?page=2")
    assert len(re.findall(r"<code>customer.contact</code>", second.text)) == 5
    assert "Manager 1 (Manager 1)" in first.text
    assert client.get("/manager/admin/audit?page=0").status_code == 400


def test_admin_pages_are_csp_safe_and_label_their_fields(client, admin):
    for path in ADMIN_PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert "<script>" not in r.text and " style=" not in r.text and "onclick" not in r.text, path
        for field_id in re.findall(r'<input[^>]+id="([^"]+)"', r.text):
            if 'type="hidden"' not in r.text.split(f'id="{field_id}"')[0].rsplit("<input", 1)[1]:
                assert f'for="{field_id}"' in r.text, (path, field_id)
    assert token_of(client.get("/manager/admin/managers/new").text)
