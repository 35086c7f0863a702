"""Manager endpoints: portfolio, one customer, decisions log, and manager actions."""
from __future__ import annotations

from datetime import date

from flask import current_app
from flask_smorest import Blueprint

from portal import present
from portal.api.schemas import (
    CustomerDetailOut,
    CustomerIn,
    DecisionsArgs,
    DecisionsOut,
    MessageOut,
    ModelOverviewOut,
    PasswordIn,
    PortfolioArgs,
    PortfolioOut,
    RefundIn,
    RefundOut,
    ReplayOut,
    ReversalIn,
    ReversalOut,
    ShadowArgs,
    ShadowOut,
    UserOut,
)
from portal.auth import accounts
from portal.auth.access import require_login
from portal.db import get_session
from portal.errors import ErrorSchema
from portal.ledger import bank_credit, payments, portfolio
from portal.ledger.percentage import percentage_paid
from portal.model_overview import overview
from portal.models import Manager, Payment
from portal.money import format_cents
from portal.replay import replay
from portal.shadow_report import shadow_page

blp = Blueprint("manager", __name__, url_prefix="/api/manager", description="Managers only")


@blp.before_request
def managers_only():
    """Answer 401/403 before a request's body or arguments are looked at."""
    require_login("manager")


@blp.route("/me")
@blp.response(200, UserOut)
def me():
    """Return the logged-in manager's details."""
    user = require_login("manager")
    return present.user(get_session().get(Manager, user.user_id), "manager")


@blp.route("/portfolio")
@blp.arguments(PortfolioArgs(), location="query")
@blp.response(200, PortfolioOut)
def portfolio_page(args):
    """Search, sort and page through customers with their balance, paid % and overdue months."""
    require_login("manager")
    db = get_session()
    page = portfolio.portfolio(db, args["q"], args["sort"], args["order"] == "desc",
                               args["page"], args["per_page"], date.today())
    headrooms = present.headrooms(db, [c for c, _ in page.rows])
    rows = []
    for c, overdue in page.rows:
        pct = percentage_paid(c.total_paid_cents, c.total_due_cents)
        rows.append({"id": c.id, "name": c.name, "total_credit": format_cents(c.total_due_cents),
                     "total_paid": format_cents(c.total_paid_cents),
                     "balance": format_cents(c.total_due_cents - c.total_paid_cents),
                     "bank_credit": format_cents(c.bank_credit_cents),
                     "percentage_paid": None if pct is None else round(pct, 2), "overdue_months": overdue,
                     **headrooms[c.id]})
    return {"total": page.total, "page": page.page, "per_page": page.per_page, "customers": rows}


@blp.route("/customers/<id:customer_id>")
@blp.response(200, CustomerDetailOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such customer")
def customer(customer_id):
    """Return one customer's summary and overdue months."""
    require_login("manager")
    db = get_session()
    data = present.summary(db, customer_id)
    data["overdue_months"] = portfolio.overdue_months(db, [customer_id], date.today())[customer_id]
    return data


@blp.route("/customers", methods=["POST"])
@blp.arguments(CustomerIn())
@blp.response(201, UserOut)
@blp.alt_response(409, schema=ErrorSchema, description="the id is taken")
def create_customer(body):
    """Create a customer (no dues yet)."""
    user = require_login("manager")
    c = accounts.create_customer(get_session(), body["name"], body["password"], body["id"],
                                 body["email"], body["age"], body["phone"], by=user.user_id)
    return present.user(c, "customer")


@blp.route("/customers/<id:customer_id>/password", methods=["POST"])
@blp.arguments(PasswordIn())
@blp.response(200, MessageOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such customer")
def reset_password(body, customer_id):
    """Set a customer's new password and end their open sessions."""
    user = require_login("manager")
    accounts.reset_password(get_session(), customer_id, body["password"], by=user.user_id)
    return {"message": "password changed; the customer's sessions were ended"}


@blp.route("/payments/<id:payment_id>/reversal", methods=["POST"])
@blp.arguments(ReversalIn())
@blp.response(201, ReversalOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such payment")
@blp.alt_response(409, schema=ErrorSchema, description="already reversed")
def reverse(body, payment_id):
    """Reverse a payment: its allocations and bank credit are undone, the payment stays."""
    user = require_login("manager")
    db = get_session()
    reversal = payments.reverse_payment(db, payment_id, user.user_id, body["reason"])
    customer_id = db.get(Payment, payment_id).customer_id
    return {"payment_id": payment_id, "reversed_by": reversal.manager_id, "reason": reversal.reason,
            "created_at": reversal.created_at, "summary": present.summary(db, customer_id)}


@blp.route("/customers/<id:customer_id>/bank-credit/refund", methods=["POST"])
@blp.arguments(RefundIn())
@blp.response(201, RefundOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such customer")
@blp.alt_response(422, schema=ErrorSchema, description="more than the customer's bank credit, or no reason")
def refund(body, customer_id):
    """Pay bank credit back to the customer: a refund row with who, when and why."""
    user = require_login("manager")
    db = get_session()
    entry = bank_credit.refund(db, customer_id, user.user_id, body["amount"], body["reason"])
    return {"customer_id": customer_id, "amount": format_cents(entry.amount_cents), "refunded_by": entry.manager_id,
            "reason": entry.reason, "created_at": entry.created_at, "summary": present.summary(db, customer_id)}


@blp.route("/decisions")
@blp.arguments(DecisionsArgs(), location="query")
@blp.response(200, DecisionsOut)
def decisions(args):
    """Return the credit decisions log, newest first."""
    require_login("manager")
    page = portfolio.decisions(get_session(), args["page"], args["per_page"], args["customer_id"], args["method"])
    return {"total": page.total, "page": page.page, "per_page": page.per_page,
            "decisions": [present.decision(d) for d in page.rows]}




@blp.route("/decisions/<string:request_id>/replay", methods=["POST"])
@blp.response(200, ReplayOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such decision")
def replay_decision(request_id):
    """Recompute a stored decision with the rule or model version that made it."""
    require_login("manager")
    return replay(get_session(), request_id, current_app.extensions["decision_service"])


@blp.route("/model")
@blp.response(200, ModelOverviewOut)
def model():
    """Return the live model: version, metrics, threshold, recent ML decisions and drift."""
    require_login("manager")
    return overview(get_session(), current_app.extensions["decision_service"])


@blp.route("/model/shadow")
@blp.arguments(ShadowArgs(), location="query")
@blp.response(200, ShadowOut)
def model_shadow(args):
    """Compare the champion and the challenger on the same live ML decisions (shadow scoring)."""
    return shadow_page(get_session(), current_app.extensions["decision_service"], args["champion"],
                       args["challenger"])
