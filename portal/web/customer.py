"""Customer pages: dashboard, exports, pay, credit requests and their decisions."""
from __future__ import annotations

import math
import re
import uuid
from datetime import date

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import ml, present
from portal.auth.access import require_customer_access
from portal.credit_requests import CreditSettings, request_credit
from portal.db import get_session
from portal.decision_service import ServiceUnavailable
from portal.inputs import is_digits
from portal.ledger import payments, portfolio, statements
from portal.ledger.credit import MAX_YEARS_AHEAD
from portal.ledger.errors import Conflict, InvalidRequest, LedgerError
from portal.ledger.percentage import percentage_paid
from portal.models import Allocation, BankCreditEntry, CreditDecision, Payment, PaymentReversal
from portal.money import MoneyError, parse_amount
from portal.refusals import said, sentence
from portal.web import chart, exports
from portal.web.auth import login_required
from portal.web.formats import money, pct
from portal.web.forms import CreditForm, PayForm, year_choices

bp = Blueprint("web_customer", __name__)

HISTORY_ON_PAGE = 20


@bp.route("/customer")
@login_required("customer")
def home():
    """Send a customer to their dashboard."""
    return redirect(url_for(".dashboard", customer_id=current_user.user_id))


def chosen_year(db, customer_id: int) -> tuple[int | None, list[int]]:
    """Read ?year= (a year of the schedule, or all); 404 for any other value."""
    years = statements.years(db, customer_id)
    raw = request.args.get("year", "all")
    if raw == "all":
        return None, years
    if is_digits(raw) and int(raw) in years:
        return int(raw), years
    abort(404, description=_("There are no dues in that year."))


@bp.route("/customers/<id:customer_id>")
@login_required()
def dashboard(customer_id):
    """Show a customer's details, totals, monthly table, chart and payment history."""
    user = require_customer_access(customer_id)
    db = get_session()
    info = present.summary(db, customer_id)  # 404 for an unknown id (managers)
    year, years = chosen_year(db, customer_id)
    rows = statements.months(db, customer_id, year)
    months, totals = present.month_rows(rows)
    history = statements.history(db, customer_id, limit=HISTORY_ON_PAGE)
    overdue = None
    if user.is_manager:
        overdue = portfolio.overdue_months(db, [customer_id], date.today())[customer_id]
    return render_template("customer/dashboard.html", info=info, customer_id=customer_id, year=year,
                           years=years, months=months, totals=totals, history=history,
                           chart=chart.due_vs_paid(rows, year), read_only=user.is_manager,
                           overdue=overdue, history_limit=HISTORY_ON_PAGE)


@bp.route("/customers/<id:customer_id>/history.csv")
@login_required()
def history_csv(customer_id):
    """Download the whole history (payments, imported months, bank credit) as CSV."""
    require_customer_access(customer_id)
    body = exports.history_csv(statements.history(get_session(), customer_id))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="payments-{customer_id}.csv"'})


@bp.route("/customers/<id:customer_id>/statement.pdf")
@login_required()
def statement_pdf(customer_id):
    """Download a PDF statement: details, totals, the months of ?year= and the payments."""
    require_customer_access(customer_id)
    db = get_session()
    info = present.summary(db, customer_id)
    year, _years = chosen_year(db, customer_id)
    months, totals = present.month_rows(statements.months(db, customer_id, year))
    pdf = exports.statement_pdf(info, year, months, totals, statements.history(db, customer_id), date.today())
    name = f"statement-{customer_id}-{year or 'all'}.pdf"
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _field_error(form, error: LedgerError) -> bool:
    """Attach a ledger error to its form field; tell whether there was such a field."""
    field = getattr(form, error.field or "", None)
    if field is None or not hasattr(field, "errors"):
        return False
    field.errors = [*field.errors, sentence(error.message)]
    return True


def _amount(form) -> int | None:
    try:
        return parse_amount((form.amount.data or "").strip())  # a person's stray spaces are forgiven
    except MoneyError as exc:
        form.amount.errors = [*form.amount.errors, _("Amount %(problem)s", problem=said(str(exc)))]
        return None


@bp.route("/pay", methods=["GET", "POST"])
@login_required("customer")
def pay():
    """Pay from a chosen month on; preview where the money goes first; show where it went (idempotent per form)."""
    db = get_session()
    uid = current_user.user_id
    info = present.summary(db, uid)
    form = PayForm()
    form.year.choices = year_choices(info["years"])
    error, status, plan = None, 200, None
    if form.is_submitted() and form.preview.data:  # "Preview": nothing is paid
        if form.validate():
            plan = _plan(db, uid, form)
        status = 200 if plan is not None else 422
    elif form.validate_on_submit():
        cents = _amount(form)
        if cents is not None:
            try:
                result = payments.pay(db, uid, form.year.data, form.month.data, cents,
                                      idempotency_key=form.idempotency_key.data, source="web",
                                      max_cents=current_app.config["MAX_PAYMENT_CENTS"])
            except Conflict:
                error = _("This form was already used for a different payment. Check the details and pay again.")
                form.idempotency_key.data = None
            except LedgerError as exc:
                if not _field_error(form, exc):
                    error = said(exc.message)
            else:
                if result.replayed:
                    flash(_("This payment was already recorded. It was not taken twice."), "info")
                return redirect(url_for(".receipt", payment_id=result.payment_id))
        status = 422
    elif form.is_submitted():
        if form.idempotency_key.errors:  # missing or tampered: a fresh one below
            error = _("The form has expired. Please check the details and pay again.")
            form.idempotency_key.data = None
        status = 422
    else:
        start = statements.oldest_unpaid(db, uid)
        if start is None and info["years"]:
            start = statements.months(db, uid, info["years"][-1])[-1]
            start = (start.year, start.month)
        if start:
            form.year.data, form.month.data = start
    if not form.idempotency_key.data:
        form.idempotency_key.data = f"web-{uuid.uuid4().hex}"
    oldest = statements.oldest_unpaid(db, uid)
    return render_template("customer/pay.html", form=form, info=info, error=error, plan=plan,
                           oldest=oldest), status


def _plan(db, customer_id: int, form) -> payments.Plan | None:
    """Preview the form's payment; put what is wrong on the form's fields."""
    cents = _amount(form)
    if cents is None:
        return None
    try:
        return payments.preview(db, customer_id, form.year.data, form.month.data, cents)
    except LedgerError as exc:
        _field_error(form, exc)
        return None


@bp.route("/pay/preview")
@login_required("customer")
def pay_preview():
    """Return the preview of a payment as a fragment of the pay page (the script asks as the customer types)."""
    db = get_session()
    form = PayForm(request.args, meta={"csrf": False})
    form.year.choices = year_choices(statements.years(db, current_user.user_id))
    fields = (form.year, form.month, form.amount)
    plan = _plan(db, current_user.user_id, form) if all([f.validate(form) for f in fields]) else None
    errors = [e for f in fields for e in f.errors]
    return render_template("customer/_preview.html", plan=plan, errors=errors,
                           oldest=statements.oldest_unpaid(db, current_user.user_id))


def load_payment(db, payment_id: int):
    """Return a payment, the months it paid and its reversal (or None); 404 if there is no such payment."""
    payment = db.get(Payment, payment_id)
    if payment is None:
        abort(404)
    allocations = db.scalars(select(Allocation).where(Allocation.payment_id == payment_id)
                             .order_by(Allocation.year, Allocation.month)).all()
    reversal = db.scalars(select(PaymentReversal).where(PaymentReversal.payment_id == payment_id)).first()
    return payment, allocations, reversal


@bp.route("/payments/<id:payment_id>")
@login_required()
def receipt(payment_id):
    """Show one payment: the months it paid, its bank credit, and whether it was reversed."""
    db = get_session()
    payment, allocations, reversal = load_payment(db, payment_id)
    user = require_customer_access(payment.customer_id)
    return render_template("customer/receipt.html", payment=payment, allocations=allocations,
                           reversal=reversal, info=present.summary(db, payment.customer_id),
                           read_only=user.is_manager)


@bp.route("/credit", methods=["GET", "POST"])
@login_required("customer")
def credit():
    """Ask for credit by the percentage or the ML method."""
    db = get_session()
    uid = current_user.user_id
    info = present.summary(db, uid)
    today = date.today()
    form = CreditForm()
    form.year.choices = year_choices(range(today.year, today.year + MAX_YEARS_AHEAD + 1))
    error, detail, status = None, None, 200
    if request.method == "GET":
        form.year.data, form.month.data = today.year, today.month
    elif form.validate_on_submit():
        cents = _amount(form)
        if cents is not None:
            try:
                row = request_credit(db, uid, form.year.data, form.month.data, cents, form.method.data,
                                     CreditSettings.from_app(current_app),
                                     idempotency_key=form.idempotency_key.data)
            except Conflict:
                error = _("This form was already used for a different request. Check the details and ask again.")
                form.idempotency_key.data = None
                status = 409
            except ServiceUnavailable as exc:  # never a made-up score: say so, approve nothing
                detail = re.sub(r"\s*\([^)]*\)$", "", exc.message.removeprefix("ML method unavailable: "))
                detail = _("%(problem)s. Please use the percentage method for now.",
                           problem=said(detail[:1].upper() + detail[1:]))
                error, status = _("ML method unavailable right now"), 503
            except LedgerError as exc:
                if not _field_error(form, exc):
                    error = said(exc.message)
                status = exc.status
            else:
                return redirect(url_for(".decision", request_id=row.request_id))
        else:
            status = 422
    else:
        if form.idempotency_key.errors:  # missing or tampered: a fresh one below
            error = _("The form has expired. Please check the details and ask again.")
            form.idempotency_key.data = None
        status = 422
    if not form.idempotency_key.data:
        form.idempotency_key.data = f"web-{uuid.uuid4().hex}"
    yearly, ml_note = model_preview(db, uid)
    return render_template("customer/credit.html", form=form, info=info, error=error, detail=detail,
                           threshold=current_app.config["PERCENTAGE_THRESHOLD"], yearly=yearly,
                           ml_note=ml_note), status


def model_preview(db, customer_id: int) -> tuple[list[dict] | None, str | None]:
    """Return the yearly percentages the model would see, or why the ML method cannot be used."""
    try:
        return ml.model_inputs(db, customer_id)["yearly_percentages"], None
    except InvalidRequest as exc:
        return None, sentence(exc.message)


def advice(d: dict, customer_id: int, db) -> list[str]:
    """Say what would change a rejection, for the checks that failed (the customer's numbers as they are now)."""
    failed, now = d["failed_checks"], statements.summary(db, customer_id)
    tips = []
    if "eligibility" in failed:
        tips.append(_("Nothing has been due on your account yet, so there is no repayment record to judge. "
                      "Ask again once you have paid some dues."))
    if "score" in failed and d["method"] == "percentage":
        needed = math.ceil(d["threshold"] / 100 * now.total_credit_cents) - now.total_paid_cents
        if needed > 0:
            tips.append(_("You have paid %(paid)s of everything due; %(needed)s is needed. Paying %(more)s more "
                          "towards the months you still owe would get you there.",
                          paid=pct(percentage_paid(now.total_paid_cents, now.total_credit_cents)),
                          needed=pct(d["threshold"]), more=money(needed)))
    if "score" in failed and d["method"] == "ml":
        low = sorted({str(r["year"]) for r in d["reasons"] if r.get("year") and r.get("code") != "raised_score"})
        next_year = date.today().year + 1
        tips.append(_("The model weighs whole years of payments (%(years)s counted against you). What you pay this "
                      "year counts from %(next)s; until then the percentage method may suit you better.",
                      years=", ".join(low), next=next_year) if low else
                    _("The model weighs whole years of payments. What you pay this year counts from %(next)s; "
                      "until then the percentage method may suit you better.", next=next_year))
    if "limit" in failed:
        h = present.summary(db, customer_id)
        tips.append(_("You can borrow up to %(available)s now (limit %(limit)s, of which %(owed)s is still owed). "
                      "Ask for that much or less, or pay what you owe to free up more.",
                      available=money(h["available_credit"]), limit=money(h["credit_limit"]),
                      owed=money(h["exposure"])))
    return tips


@bp.route("/decisions/<request_id>")
@login_required()
def decision(request_id):
    """Show a credit decision: the sanctioned or the rejected page."""
    db = get_session()
    row = db.scalars(select(CreditDecision).where(CreditDecision.request_id == request_id[:36])).first()
    if row is None:
        abort(404)
    user = require_customer_access(row.customer_id)
    d = present.decision(row)
    if row.approved:
        applied = db.scalars(select(BankCreditEntry).where(BankCreditEntry.credit_decision_id == row.id)).first()
        return render_template("customer/sanctioned.html", d=d, row=row, read_only=user.is_manager, applied=applied)
    return render_template("customer/rejected.html", d=d, row=row, read_only=user.is_manager,
                           advice=advice(d, row.customer_id, db))
