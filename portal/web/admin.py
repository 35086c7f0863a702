"""The admin panel for managers: manager accounts, a customer's account (contact details, deactivation),
the audit trail and the emails the sender gave up on.

Every page is for managers only (checked before anything is looked up, so a customer or an
anonymous visitor learns nothing about ids); every write is a FlaskForm (CSRF) and is audited
by the account function it calls (``portal.auth.accounts``, ``portal.mail.outbox.retry``).
Deactivation has a confirmation step.
"""
from __future__ import annotations

import math

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from portal import audit
from portal.api.schemas import ContactIn, ManagerIn, PageArgs
from portal.auth import accounts
from portal.db import get_session
from portal.ledger import statements
from portal.ledger.errors import LedgerError
from portal.mail import outbox
from portal.models import Customer, Manager
from portal.refusals import sentence
from portal.web.auth import login_required
from portal.web.formdata import load_form, optional, query_args
from portal.web.forms import FORM_EXPIRED, ActionForm, ContactForm, ManagerForm
from portal.web.manager import PER_PAGE

bp = Blueprint("web_admin", __name__, url_prefix="/manager/admin")

ROLES = {"manager": Manager, "customer": Customer}
# One sentence per role: the role is a word of the sentence, and languages inflect around it.
DEACTIVATED = {"manager": _l("Manager %(id)s (%(name)s) deactivated: their logins have ended."),
               "customer": _l("Customer %(id)s (%(name)s) deactivated: their logins have ended.")}
ALREADY_DEACTIVATED = {"manager": _l("Manager %(id)s (%(name)s) was already deactivated."),
                       "customer": _l("Customer %(id)s (%(name)s) was already deactivated.")}
REACTIVATED = {"manager": _l("Manager %(id)s (%(name)s) is active again and can log in."),
               "customer": _l("Customer %(id)s (%(name)s) is active again and can log in.")}
CONTACT_LABELS = {"name": _l("name"), "email": _l("email"), "phone": _l("phone")}


@bp.before_request
@login_required("manager")
def managers_only():
    """Send anonymous visitors to the manager login and answer 403 to customers, before any lookup."""
    return None


def _message(error: LedgerError) -> str:
    return sentence(error.message, ".")


def _posted_action() -> None:
    """Check the CSRF token of a button that writes; 400 when it is missing or stale."""
    if not ActionForm().validate_on_submit():
        abort(400, description=FORM_EXPIRED)


def _person(role: str, person_id: int):
    person = get_session().get(ROLES[role], person_id)
    if person is None:
        abort(404)
    return person


def _back(role: str, person_id: int):
    if role == "manager":
        return redirect(url_for(".managers"))
    return redirect(url_for(".customer", customer_id=person_id))


@bp.route("")
def index():
    """Open the admin panel at the managers' list."""
    return redirect(url_for(".managers"))


@bp.route("/managers")
def managers():
    """List the manager accounts, active and deactivated."""
    rows = get_session().scalars(select(Manager).order_by(Manager.id)).all()
    return render_template("manager/admin/managers.html", rows=rows, action_form=ActionForm())


@bp.route("/managers/new", methods=["GET", "POST"])
def new_manager():
    """Create a manager account."""
    form = ManagerForm()
    if form.validate_on_submit():
        data = {"name": (form.name.data or "").strip(), "password": form.password.data or ""}
        for name, number in (("id", True), ("email", False), ("phone", False)):
            value = optional(getattr(form, name).data, number)
            if value is not None:
                data[name] = value
        body = load_form(ManagerIn(), data, form)
        if body is not None:
            try:
                m = accounts.create_manager(get_session(), body["name"], body["password"], body["id"], body["email"],
                                            body["phone"], by=current_user.user_id)
            except LedgerError as exc:
                getattr(form, exc.field or "", form.name).errors.append(_message(exc))
            else:
                flash(_("Manager %(id)s (%(name)s) created. They can log in with the password you set.",
                        id=m.id, name=m.name), "success")
                return redirect(url_for(".managers"))
    return render_template("manager/admin/new_manager.html", form=form), 422 if form.is_submitted() else 200


@bp.route("/<any(manager, customer):role>s/<id:person_id>/deactivate", methods=["GET", "POST"])
def deactivate(role, person_id):
    """Deactivate a manager or a customer after a confirmation step: no login, every record kept."""
    person = _person(role, person_id)
    form = ActionForm()
    error, status = None, 200
    if request.method == "POST":
        _posted_action()
        try:
            changed = accounts.set_active(get_session(), role, person_id, False, by=current_user.user_id)
        except LedgerError as exc:
            error, status = _message(exc), exc.status
        else:
            said = DEACTIVATED[role] if changed else ALREADY_DEACTIVATED[role]
            flash(said % {"id": person_id, "name": person.name}, "success")
            return _back(role, person_id)
    return render_template("manager/admin/deactivate.html", role=role, person=person, form=form,
                           error=error), status


@bp.route("/<any(manager, customer):role>s/<id:person_id>/reactivate", methods=["POST"])
def reactivate(role, person_id):
    """Reactivate a manager or a customer: they can log in again."""
    person = _person(role, person_id)
    _posted_action()
    accounts.set_active(get_session(), role, person_id, True, by=current_user.user_id)
    flash(REACTIVATED[role] % {"id": person_id, "name": person.name}, "success")
    return _back(role, person_id)


@bp.route("/customers/<id:customer_id>", methods=["GET", "POST"])
def customer(customer_id):
    """Show a customer's account (status, contact details, their audit trail) and edit the contact details."""
    db = get_session()
    person = statements.get_customer(db, customer_id)  # 404 for an unknown id
    form = ContactForm(obj=None if request.method == "POST" else person)
    status = 200
    if form.validate_on_submit():
        data = {"name": (form.name.data or "").strip()}
        for name in ("email", "phone"):
            value = optional(getattr(form, name).data)
            if value is not None:
                data[name] = value
        body = load_form(ContactIn(), data, form)
        if body is not None:
            changed = accounts.update_contact(db, customer_id, body, by=current_user.user_id)
            flash(_("Saved: %(fields)s changed.", fields=", ".join(str(CONTACT_LABELS.get(f, f)) for f in changed))
                  if changed else _("Nothing changed."), "success")
            return redirect(url_for(".customer", customer_id=customer_id))
    if form.is_submitted():
        status = 422
    trail = audit.events(db, 1, 10, "customer", customer_id)
    return render_template("manager/admin/customer.html", customer=person, form=form, trail=trail,
                           action_form=ActionForm(), names=_actor_names(trail.rows)), status


def _actor_names(rows) -> dict[int, str]:
    ids = {r.actor_id for r in rows if r.actor_id is not None}
    if not ids:
        return {}
    return dict(get_session().execute(select(Manager.id, Manager.name).where(Manager.id.in_(ids))).all())


@bp.route("/audit")
def audit_log():
    """Show every audited action, newest first, 20 a page."""
    args = query_args(PageArgs())
    page = audit.events(get_session(), args["page"], PER_PAGE)
    return render_template("manager/admin/audit.html", page=page, names=_actor_names(page.rows),
                           actions=audit.ACTIONS, pages=max(1, math.ceil(page.total / PER_PAGE)))


@bp.route("/mail")
def mail():
    """Show how many emails are pending, sent and failed, and the failed ones with their last error."""
    args = query_args(PageArgs())
    db = get_session()
    rows, total = outbox.failed(db, args["page"], PER_PAGE)
    return render_template("manager/admin/mail.html", counts=outbox.status_counts(db), rows=rows, total=total,
                           page=args["page"], pages=max(1, math.ceil(total / PER_PAGE)), action_form=ActionForm())


@bp.route("/mail/<id:message_id>/retry", methods=["POST"])
def retry_mail(message_id):
    """Queue a failed email again, with fresh attempts."""
    _posted_action()
    if not outbox.retry(get_session(), message_id, by=current_user.user_id):
        abort(404)
    flash(_("Email #%(id)s is queued again.", id=message_id), "success")
    return redirect(url_for(".mail"))
