"""Manager pages: portfolio, decisions log and replay, the live model, new customer, password reset, reversal."""
from __future__ import annotations

import math
from datetime import date

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal import present
from portal.api.schemas import CustomerIn, DecisionsArgs, PasswordIn, PortfolioArgs, RefundIn, ReversalIn
from portal.auth import accounts
from portal.db import get_session
from portal.ledger import bank_credit, payments, portfolio, statements
from portal.ledger.errors import LedgerError
from portal.ledger.percentage import percentage_paid
from portal.model_overview import overview
from portal.models import Manager
from portal.money import format_cents
from portal.refusals import sentence
from portal.replay import replay
from portal.web.auth import login_required
from portal.web.customer import load_payment
from portal.web.formats import money
from portal.web.formdata import load_form, optional, query_args
from portal.web.forms import ActionForm, CustomerForm, PasswordForm, PortfolioSearch, RefundForm, ReversalForm

bp = Blueprint("web_manager", __name__, url_prefix="/manager")

PER_PAGE = 20


@bp.route("")
@login_required("manager")
def home():
    """Show the manager's details and the portfolio (search, sort, paging)."""
    db = get_session()
    args = query_args(PortfolioArgs())
    args["per_page"] = PER_PAGE
    page = portfolio.portfolio(db, args["q"], args["sort"], args["order"] == "desc", args["page"], PER_PAGE,
                               date.today())
    rows = [(c, overdue, percentage_paid(c.total_paid_cents, c.total_due_cents)) for c, overdue in page.rows]
    return render_template("manager/home.html", manager=present.user(db.get(Manager, current_user.user_id), "manager"),
                           search=PortfolioSearch(request.args), page=page, rows=rows, args=args,
                           headrooms=present.headrooms(db, [c for c, _ in page.rows]),
                           pages=max(1, math.ceil(page.total / PER_PAGE)))


@bp.route("/decisions")
@login_required("manager")
def decisions():
    """Show the credit decisions log, newest first."""
    args = query_args(DecisionsArgs())
    page = portfolio.decisions(get_session(), args["page"], PER_PAGE, args["customer_id"], args["method"])
    return render_template("manager/decisions.html", page=page, args=args,
                           rows=[present.decision(d) for d in page.rows],
                           pages=max(1, math.ceil(page.total / PER_PAGE)))


@bp.route("/customers/new", methods=["GET", "POST"])
@login_required("manager")
def new_customer():
    """Create a customer (no dues yet)."""
    form = CustomerForm()
    status = 200
    if form.validate_on_submit():
        data = {"name": form.name.data.strip(), "password": form.password.data or ""}
        for name, number in (("id", True), ("age", True), ("email", False), ("phone", False)):
            value = optional(getattr(form, name).data, number)
            if value is not None:
                data[name] = value
        body = load_form(CustomerIn(), data, form)
        if body is not None:
            try:
                c = accounts.create_customer(get_session(), body["name"], body["password"], body["id"],
                                             body["email"], body["age"], body["phone"], by=current_user.user_id)
            except LedgerError as exc:
                field = getattr(form, exc.field or "", None) or form.name
                field.errors = [*field.errors, sentence(exc.message)]
            else:
                flash(_("Customer %(id)s (%(name)s) created. They can log in with the password you set.", id=c.id,
                        name=c.name), "success")
                return redirect(url_for("web_customer.dashboard", customer_id=c.id))
    if form.is_submitted():
        status = 422
    return render_template("manager/new_customer.html", form=form), status


@bp.route("/customers/<id:customer_id>/password", methods=["GET", "POST"])
@login_required("manager")
def reset_password(customer_id):
    """Set a customer's new password and end their open sessions."""
    db = get_session()
    customer = statements.get_customer(db, customer_id)
    form = PasswordForm()
    if form.validate_on_submit() and load_form(PasswordIn(), {"password": form.password.data or ""}, form):
        ended = accounts.reset_password(db, customer_id, form.password.data, by=current_user.user_id)
        flash(_("Password changed for customer %(id)s; %(ended)s open session(s) ended.", id=customer_id, ended=ended),
              "success")
        return redirect(url_for("web_customer.dashboard", customer_id=customer_id))
    status = 422 if form.is_submitted() else 200
    return render_template("manager/reset_password.html", form=form, customer=customer), status


@bp.route("/payments/<id:payment_id>/reverse", methods=["GET", "POST"])
@login_required("manager")
def reverse(payment_id):
    """Reverse a payment after a confirmation step: its allocations and bank credit are undone."""
    db = get_session()
    payment, _allocations, _reversal = load_payment(db, payment_id)
    form = ReversalForm()
    error, status = None, 200
    if form.validate_on_submit() and load_form(ReversalIn(), {"reason": (form.reason.data or "").strip()}, form):
        try:
            payments.reverse_payment(db, payment_id, current_user.user_id, form.reason.data)
        except LedgerError as exc:
            error, status = sentence(exc.message, "."), exc.status
        else:
            flash(_("Payment #%(id)s reversed. The months it paid are owed again.", id=payment_id), "success")
            return redirect(url_for("web_customer.dashboard", customer_id=payment.customer_id))
    payment, allocations, reversal = load_payment(db, payment_id)  # as they are now
    if form.is_submitted() and status == 200:
        status = 422
    return render_template("manager/reverse.html", form=form, payment=payment, allocations=allocations,
                           reversal=reversal, error=error,
                           customer=statements.get_customer(db, payment.customer_id)), status


@bp.route("/customers/<id:customer_id>/refund", methods=["GET", "POST"])
@login_required("manager")
def refund(customer_id):
    """Refund a customer's bank credit after a confirmation step: a refund row with who, when and why."""
    db = get_session()
    customer = statements.get_customer(db, customer_id)
    form = RefundForm()
    error, status = None, 200
    if request.method == "GET":
        form.amount.data = format_cents(customer.bank_credit_cents)
    elif form.validate_on_submit():
        body = load_form(RefundIn(), {"amount": (form.amount.data or "").strip(),
                                      "reason": (form.reason.data or "").strip()}, form)
        if body is not None:
            try:
                entry = bank_credit.refund(db, customer_id, current_user.user_id, body["amount"], body["reason"])
            except LedgerError as exc:
                field = getattr(form, exc.field or "", None)
                if field is None:
                    error = sentence(exc.message, ".")
                else:
                    field.errors = [*field.errors, sentence(exc.message)]
                status = exc.status
            else:
                flash(_("%(amount)s of bank credit refunded to customer %(id)s.", amount=money(entry.amount_cents),
                        id=customer_id), "success")
                return redirect(url_for("web_customer.dashboard", customer_id=customer_id))
    if form.is_submitted() and status == 200:
        status = 422
    customer = statements.get_customer(db, customer_id)
    return render_template("manager/refund.html", form=form, customer=customer, error=error), status


@bp.route("/model")
@login_required("manager")
def model():
    """Show the live model: version, metrics, training date, threshold, recent ML decisions and drift."""
    info = overview(get_session(), current_app.extensions["decision_service"])
    peak = max((b["count"] for b in info["recent"]["score_histogram"]), default=0)
    return render_template("manager/model.html", info=info, peak=peak, replay_form=ActionForm())


@bp.route("/decisions/<string:request_id>/replay", methods=["POST"])
@login_required("manager")
def replay_decision(request_id):
    """Replay a stored decision with the rule or model version that made it, and show the comparison."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description=_("The form has expired; go back and try again."))
    result = replay(get_session(), request_id, current_app.extensions["decision_service"])
    return render_template("manager/replay.html", result=result)
