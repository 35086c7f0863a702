"""Customer endpoints: summary, monthly data, history, payments and credit requests."""
from __future__ import annotations

from flask import current_app, g, request
from flask_smorest import Blueprint, abort
from sqlalchemy.orm import Session
from werkzeug.exceptions import Unauthorized

from portal import present
from portal.api.schemas import (
    CreditIn,
    DecisionOut,
    IdempotencyHeader,
    PageArgs,
    PaymentHistoryOut,
    PaymentIn,
    PaymentOut,
    PaymentPreviewArgs,
    PaymentPreviewOut,
    SummaryOut,
    YearDataOut,
)
from portal.auth.access import require_claim, require_customer_access, require_login
from portal.auth.sessions import Claim, verify_claims
from portal.credit_requests import CreditSettings, request_credit
from portal.db import get_session
from portal.errors import ErrorSchema
from portal.inputs import is_digits
from portal.ledger import payments, statements
from portal.money import format_cents

blp = Blueprint("customer", __name__, url_prefix="/api/customer", description="A customer's account")
# Writes only a customer may make (managers read customers' accounts).
CUSTOMER_WRITES = {"customer.pay", "customer.credit_request"}


@blp.before_request
def logged_in_first():
    """Answer 401 (403 for a manager's write) before a request's body or arguments are looked at.

    A payment with a bearer token has its token checked here and its login record in its batch (``write_payments``).
    """
    if request.endpoint == "customer.pay":
        require_claim("customer")
        # Counted until the request ends: a batch being written waits for the payments of requests in flight.
        current_app.extensions["payment_batches"].request_started()
        g.payment_counted = True
    else:
        require_login("customer" if request.endpoint in CUSTOMER_WRITES else None)


@blp.teardown_request
def payment_done(_exc=None):
    """Stop counting a payment request (``logged_in_first``), whether it paid or was refused."""
    if g.pop("payment_counted", False):
        current_app.extensions["payment_batches"].request_ended()


@blp.route("/summary/<id:customer_id>")
@blp.response(200, SummaryOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such customer (or not yours)")
def summary(customer_id):
    """Return a customer's details and totals."""
    require_customer_access(customer_id)
    return present.summary(get_session(), customer_id)


@blp.route("/data/<id:customer_id>/<string:year>")
@blp.response(200, YearDataOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such customer or year")
def year_data(customer_id, year):
    """Return the monthly table for one year, or for `all` years."""
    require_customer_access(customer_id)
    if year != "all" and not (is_digits(year) and len(year) == 4):
        abort(404, message="year must be a four-digit year or `all`")
    rows = statements.months(get_session(), customer_id, None if year == "all" else int(year))
    months, totals = present.month_rows(rows)
    return {"customer_id": customer_id, "year": year, "months": months, "totals": totals}


@blp.route("/payments/<id:customer_id>")
@blp.arguments(PageArgs(), location="query")
@blp.response(200, PaymentHistoryOut)
@blp.alt_response(404, schema=ErrorSchema, description="no such customer (or not yours)")
def history(args, customer_id):
    """Return the customer's payments, newest first."""
    require_customer_access(customer_id)
    entries = statements.payment_history(get_session(), customer_id, limit=args["per_page"],
                                         offset=(args["page"] - 1) * args["per_page"])
    return {"customer_id": customer_id, "payments": [present.payment_entry(e) for e in entries]}


@blp.route("/payment", methods=["POST"])
@blp.arguments(IdempotencyHeader(), location="headers")
@blp.arguments(PaymentIn())
@blp.response(200, PaymentOut)
@blp.alt_response(409, schema=ErrorSchema, description="Idempotency-Key reused with a different body")
@blp.alt_response(422, schema=ErrorSchema, description="invalid amount, month or year")
def pay(headers, body):
    """Pay dues from a chosen month on: excess flows forward, then to the oldest months owed, then to bank credit.

    A bearer token's login record is read when the payment is written, with the payments made at the
    same time: a revoked or expired login answers 401 then, after the schema's checks of the body (422).
    """
    claim = require_claim("customer")
    order = payments.Order(claim.user_id, body["year"], body["month"], body["amount"],
                           headers.get("idempotency_key"), "api", current_app.config["MAX_PAYMENT_CENTS"])
    # Written with the payments other threads of this process are making now, in one transaction.
    result = current_app.extensions["payment_batches"].submit(get_session(), (claim, order))
    return {
        "payment_id": result.payment_id, "year": result.year, "month": result.month,
        "amount": format_cents(result.amount_cents),
        "allocations": present.allocations(result.allocations),
        "to_bank_credit": format_cents(result.to_bank_credit_cents),
        "replayed": result.replayed, "reversed": result.reversed_at is not None, "reversed_at": result.reversed_at,
        "summary": result.summary,
    }


def write_payments(session: Session, items: list[tuple[Claim, payments.Order]]) -> list:
    """Check a batch's callers' login records in one statement, then pay the live callers' orders (``pay_many``).

    Each item's outcome is its PaymentResult or the exception to raise: a 401, as ``require_login``
    answers, for a login revoked, expired or deactivated since its token was signed. On PostgreSQL
    the check and the payments are one transaction (the write carries the read on).
    """
    principals = verify_claims(session, [claim for claim, _ in items])
    live = [i for i, principal in enumerate(principals) if principal is not None]
    paid = payments.pay_many(session, [items[i][1] for i in live], summarize=present.summaries)
    outcomes: list = [Unauthorized("login required") for _ in items]  # one each: raised in separate threads
    for i, outcome in zip(live, paid, strict=True):
        outcomes[i] = outcome
    return outcomes


@blp.route("/payment-preview")
@blp.arguments(PaymentPreviewArgs(), location="query")
@blp.response(200, PaymentPreviewOut)
@blp.alt_response(422, schema=ErrorSchema, description="invalid amount, month or year")
def payment_preview(args):
    """Say where a payment would go now (the allocation rule), writing nothing."""
    user = require_login("customer")
    return present.plan(payments.preview(get_session(), user.user_id, args["year"], args["month"], args["amount"]))


@blp.route("/credit-request", methods=["POST"])
@blp.arguments(IdempotencyHeader(), location="headers")
@blp.arguments(CreditIn())
@blp.response(200, DecisionOut)
@blp.alt_response(422, schema=ErrorSchema, description="invalid amount or month")
@blp.alt_response(409, schema=ErrorSchema, description="Idempotency-Key reused with a different body")
@blp.alt_response(503, schema=ErrorSchema, description="ML method unavailable")
def credit_request(headers, body):
    """Ask for credit by the percentage or the ML method; the decision is stored."""
    user = require_login("customer")
    row = request_credit(get_session(), user.user_id, body["year"], body["month"], body["amount"], body["method"],
                         CreditSettings.from_app(current_app),
                         idempotency_key=headers.get("idempotency_key"))
    return present.decision(row)
