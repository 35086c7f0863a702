"""Marshmallow schemas: they validate input and generate the OpenAPI document."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from portal.models import MAX_ID
from portal.money import AMOUNT_PATTERN, MoneyError, parse_amount

Strict = {"strict": True, "required": True}


class Amount(ma.fields.String):
    """A money amount: a decimal string with at most two decimals, loaded as minor units."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].update({"pattern": f"^{AMOUNT_PATTERN}$", "example": "1250.00"})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ma.ValidationError('must be a decimal string such as "1250.00"')
        try:
            return parse_amount(value)
        except MoneyError as exc:
            raise ma.ValidationError(str(exc)) from exc


# Characters text may not hold: NUL and the other C0 controls and DEL (PostgreSQL cannot store NUL).
_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"  # tab, line feed and carriage return allowed
_CONTROL_ONE_LINE = "\\x00-\\x1f\\x7f"


def text_pattern(*, blank: bool = True, one_line: bool = False) -> str:
    """Return the pattern a Text field checks (and the OpenAPI document states)."""
    ok = f"[^{_CONTROL_ONE_LINE if one_line else _CONTROL}]"
    return f"^{ok}*$" if blank else f"^{ok}*[^\\s{_CONTROL_ONE_LINE}]{ok}*$"


class WholeMatch(validate.Regexp):
    """A Regexp validator that must match the whole value (Python's $ would also end before a final newline)."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class Text(ma.fields.String):
    """A string without NUL or other control characters; ``blank=False`` refuses spaces only, ``one_line`` breaks.

    The rule is a pattern, so the OpenAPI document states exactly what is accepted.
    """

    def __init__(self, *, blank: bool = True, one_line: bool = False, validate=None, **kwargs):
        message = ("must be " + ("one line of " if one_line else "") + "text without control characters"
                   + ("" if blank else ", not blank"))
        rules = [WholeMatch(text_pattern(blank=blank, one_line=one_line), error=message)]
        rules += validate if isinstance(validate, list) else [validate] if validate else []
        super().__init__(validate=rules, **kwargs)


class Closed(ma.Schema):
    """Refuse unknown fields."""

    class Meta:
        unknown = ma.RAISE


class LoginIn(Closed):
    id = ma.fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_ID))
    password = Text(required=True, validate=validate.Length(min=1, max=200))


class UserOut(ma.Schema):
    id = ma.fields.Integer()
    role = ma.fields.String()
    name = ma.fields.String()
    email = ma.fields.String(allow_none=True)
    age = ma.fields.Integer(allow_none=True)
    phone = ma.fields.String(allow_none=True)


class TokenOut(ma.Schema):
    token = ma.fields.String(metadata={"description": "a JWT (HS256): send as `Authorization: Bearer <token>`"})
    expires_at = ma.fields.DateTime(metadata={"description": "when the token expires (TOKEN_MAX_AGE after issue); "
                                                             "POST /api/token before then gives a fresh one"})


class LoginOut(TokenOut):
    user = ma.fields.Nested(UserOut)
    csrf_token = ma.fields.String(metadata={"description": "send as X-CSRFToken on cookie-authenticated writes"})


class MessageOut(ma.Schema):
    message = ma.fields.String()


class SummaryOut(ma.Schema):
    customer = ma.fields.Nested(UserOut)
    total_credit = ma.fields.String(metadata={"example": "1250.00"})
    total_paid = ma.fields.String()
    balance = ma.fields.String()
    bank_credit = ma.fields.String()
    percentage_paid = ma.fields.Float(allow_none=True)
    credit_limit = ma.fields.String(metadata={"description": "what the customer may owe in all (the credit policy)"})
    exposure = ma.fields.String(metadata={"description": "everything still owed, booked months ahead included"})
    available_credit = ma.fields.String(metadata={"description": "credit_limit - exposure, never negative"})
    years = ma.fields.List(ma.fields.Integer())


class MonthOut(ma.Schema):
    year = ma.fields.Integer()
    month = ma.fields.Integer()
    amount_to_pay = ma.fields.String()
    amount_paid = ma.fields.String()
    needtopay = ma.fields.String()


class TotalsOut(ma.Schema):
    amount_to_pay = ma.fields.String()
    amount_paid = ma.fields.String()
    needtopay = ma.fields.String()


class YearDataOut(ma.Schema):
    customer_id = ma.fields.Integer()
    year = ma.fields.String(metadata={"description": "the year asked for, or `all`"})
    months = ma.fields.List(ma.fields.Nested(MonthOut))
    totals = ma.fields.Nested(TotalsOut)


class PaymentIn(Closed):
    year = ma.fields.Integer(**Strict, validate=validate.Range(min=1900, max=2200))
    month = ma.fields.Integer(**Strict, validate=validate.Range(min=1, max=12))
    amount = Amount(required=True)


class IdempotencyHeader(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    idempotency_key = Text(data_key="Idempotency-Key", blank=False, one_line=True,
                           validate=validate.Length(min=1, max=120))


class AllocationOut(ma.Schema):
    year = ma.fields.Integer()
    month = ma.fields.Integer()
    amount = ma.fields.String()


class PaymentOut(ma.Schema):
    payment_id = ma.fields.Integer()
    year = ma.fields.Integer()
    month = ma.fields.Integer()
    amount = ma.fields.String()
    allocations = ma.fields.List(ma.fields.Nested(AllocationOut))
    to_bank_credit = ma.fields.String()
    replayed = ma.fields.Boolean(metadata={"description": "true: the first answer to this Idempotency-Key"})
    reversed = ma.fields.Boolean(metadata={"description": "true: a manager has reversed this payment since"})
    reversed_at = ma.fields.DateTime(allow_none=True)
    summary = ma.fields.Nested(SummaryOut)


class PaymentPreviewArgs(Closed):
    year = ma.fields.Integer(required=True, validate=validate.Range(min=1900, max=2200))
    month = ma.fields.Integer(required=True, validate=validate.Range(min=1, max=12))
    amount = Amount(required=True)


class PaymentPreviewOut(ma.Schema):
    year = ma.fields.Integer()
    month = ma.fields.Integer()
    amount = ma.fields.String()
    month_owed = ma.fields.String(metadata={"description": "what the chosen month still owes"})
    month_already_paid = ma.fields.Boolean()
    allocations = ma.fields.List(ma.fields.Nested(AllocationOut))
    to_bank_credit = ma.fields.String()


class PaymentHistoryItem(ma.Schema):
    payment_id = ma.fields.Integer()
    year = ma.fields.Integer()
    month = ma.fields.Integer()
    amount = ma.fields.String()
    to_bank_credit = ma.fields.String()
    source = ma.fields.String()
    created_at = ma.fields.DateTime()
    allocations = ma.fields.List(ma.fields.Nested(AllocationOut))
    reversed = ma.fields.Boolean()
    reversed_at = ma.fields.DateTime(allow_none=True)
    reversal_reason = ma.fields.String(allow_none=True)


class PaymentHistoryOut(ma.Schema):
    customer_id = ma.fields.Integer()
    payments = ma.fields.List(ma.fields.Nested(PaymentHistoryItem))


class PageArgs(Closed):
    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=200))


class CreditIn(Closed):
    year = ma.fields.Integer(**Strict, validate=validate.Range(min=1900, max=2200))
    month = ma.fields.Integer(**Strict, validate=validate.Range(min=1, max=12))
    amount = Amount(required=True)
    method = ma.fields.String(required=True, validate=validate.OneOf(["percentage", "ml"]))


class ReasonOut(ma.Schema):
    code = ma.fields.String()
    text = ma.fields.String()
    feature = ma.fields.String(allow_none=True)
    value = ma.fields.Float(allow_none=True, metadata={"description": "the applicant's value of the feature"})
    reference = ma.fields.Float(allow_none=True, metadata={"description": "applicants near the cut-off"})
    contribution = ma.fields.Float(allow_none=True, metadata={"description": "score change against the reference"})
    year = ma.fields.Integer(allow_none=True, metadata={"description": "the real year a yearly feature stands for"})
    available = ma.fields.String(allow_none=True, metadata={"description": "over_limit: the credit still available"})


class CheckOut(ma.Schema):
    name = ma.fields.String(metadata={"description": "eligibility, score or limit, in the order they ran"})
    passed = ma.fields.Boolean()
    detail = ma.fields.String()


class DecisionOut(ma.Schema):
    request_id = ma.fields.String()
    customer_id = ma.fields.Integer()
    year = ma.fields.Integer()
    month = ma.fields.Integer()
    amount = ma.fields.String()
    approved = ma.fields.Boolean()
    method = ma.fields.String()
    score = ma.fields.Float(allow_none=True)
    threshold = ma.fields.Float()
    percentage_paid = ma.fields.Float(allow_none=True)
    yearly_percentages = ma.fields.List(ma.fields.Dict(), allow_none=True)
    model_version = ma.fields.String(allow_none=True)
    reasons = ma.fields.List(ma.fields.Nested(ReasonOut))
    created_at = ma.fields.DateTime()
    credit_limit = ma.fields.String(allow_none=True, metadata={"description": "the customer's limit when deciding"})
    exposure = ma.fields.String(allow_none=True, metadata={"description": "what they owed when deciding"})
    available_credit = ma.fields.String(allow_none=True)
    checks = ma.fields.List(ma.fields.Nested(CheckOut))
    failed_checks = ma.fields.List(ma.fields.String())


class PortfolioArgs(PageArgs):
    q = Text(load_default=None, one_line=True, validate=validate.Length(max=120))
    sort = ma.fields.String(load_default="id",
                            validate=validate.OneOf(["id", "name", "balance", "paid_pct", "bank_credit"]))
    order = ma.fields.String(load_default="asc", validate=validate.OneOf(["asc", "desc"]))


class PortfolioRow(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    total_credit = ma.fields.String()
    total_paid = ma.fields.String()
    balance = ma.fields.String()
    bank_credit = ma.fields.String()
    percentage_paid = ma.fields.Float(allow_none=True)
    credit_limit = ma.fields.String()
    exposure = ma.fields.String()
    available_credit = ma.fields.String()
    overdue_months = ma.fields.Integer()


class PortfolioOut(ma.Schema):
    total = ma.fields.Integer()
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    customers = ma.fields.List(ma.fields.Nested(PortfolioRow))


class DecisionsArgs(PageArgs):
    customer_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))
    method = ma.fields.String(load_default=None, validate=validate.OneOf(["percentage", "ml"]))


class DecisionsOut(ma.Schema):
    total = ma.fields.Integer()
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    decisions = ma.fields.List(ma.fields.Nested(DecisionOut))


class Password(Text):
    """A new password: 8 to 200 characters, not all blank."""

    def __init__(self, **kwargs):
        super().__init__(blank=False, one_line=True, validate=validate.Length(min=8, max=200), **kwargs)


class ContactIn(Closed):
    name = Text(required=True, blank=False, one_line=True, validate=validate.Length(min=1, max=120))
    email = ma.fields.Email(load_default=None, validate=validate.Length(max=254))
    phone = ma.fields.String(load_default=None, validate=validate.Regexp(r"^[0-9 +()-]{3,32}$"))


class ManagerIn(ContactIn):
    id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_ID))
    password = Password(required=True)


class CustomerIn(ManagerIn):
    age = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=18, max=120))


class PasswordIn(Closed):
    password = Password(required=True)


class ReversalIn(Closed):
    reason = Text(required=True, blank=False, validate=validate.Length(min=1, max=500))


class ReversalOut(ma.Schema):
    payment_id = ma.fields.Integer()
    reversed_by = ma.fields.Integer()
    reason = ma.fields.String()
    created_at = ma.fields.DateTime()
    summary = ma.fields.Nested(SummaryOut)


class RefundIn(Closed):
    amount = Amount(required=True)
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=500))


class RefundOut(ma.Schema):
    customer_id = ma.fields.Integer()
    amount = ma.fields.String()
    refunded_by = ma.fields.Integer()
    reason = ma.fields.String()
    created_at = ma.fields.DateTime()
    summary = ma.fields.Nested(SummaryOut)


class CustomerDetailOut(SummaryOut):
    overdue_months = ma.fields.Integer()


class ReplayOut(ma.Schema):
    request_id = ma.fields.String()
    method = ma.fields.String()
    model_version = ma.fields.String(allow_none=True)
    stored_score = ma.fields.Float(allow_none=True)
    replayed_score = ma.fields.Float(allow_none=True)
    threshold = ma.fields.Float()
    stored_approved = ma.fields.Boolean()
    replayed_approved = ma.fields.Boolean()
    match = ma.fields.Boolean()


class ModelOverviewOut(ma.Schema):
    serving = ma.fields.Dict(metadata={"description": "what the decision service reports (GET /version)"})
    registry = ma.fields.Dict(metadata={"description": "the champion's registry entry: metrics, threshold, dates"})
    recent = ma.fields.Dict(metadata={"description": "recent ML decisions: count, approval rate, score histogram"})
    drift = ma.fields.List(ma.fields.Dict(), metadata={"description": "PSI per feature vs the training data"})


class ShadowArgs(Closed):
    champion = ma.fields.String(load_default=None, validate=validate.Regexp(r"^[0-9]{1,9}$"),
                                metadata={"description": "champion version (default: the newest pair)"})
    challenger = ma.fields.String(load_default=None, validate=validate.Regexp(r"^[0-9]{1,9}$"),
                                  metadata={"description": "challenger version (default: the newest pair)"})


class ShadowSideOut(ma.Schema):
    approval_rate = ma.fields.Float(allow_none=True, metadata={"description": "share whose score passed the threshold"})
    score_histogram = ma.fields.List(ma.fields.Dict(), metadata={"description": "[{from, to, count}] per tenth"})


class ShadowDisagreementOut(ma.Schema):
    request_id = ma.fields.String()
    customer_id = ma.fields.Integer()
    created_at = ma.fields.DateTime()
    threshold = ma.fields.Float()
    champion_score = ma.fields.Float()
    challenger_score = ma.fields.Float()
    champion_approved = ma.fields.Boolean()
    challenger_approved = ma.fields.Boolean()
    approved = ma.fields.Boolean(metadata={"description": "the decision actually made (policy checks included)"})


class ShadowOut(ma.Schema):
    pairs = ma.fields.List(ma.fields.Dict(), metadata={"description": "[{champion, challenger, decisions}]"})
    champion_version = ma.fields.String(allow_none=True)
    challenger_version = ma.fields.String(allow_none=True)
    count = ma.fields.Integer(metadata={"description": "decisions both scored (the most recent 1,000 at most)"})
    agreement_rate = ma.fields.Float(allow_none=True)
    disagreement_count = ma.fields.Integer()
    champion = ma.fields.Nested(ShadowSideOut)
    challenger = ma.fields.Nested(ShadowSideOut)
    disagreements = ma.fields.List(ma.fields.Nested(ShadowDisagreementOut), metadata={"description": "newest 50"})
    serving = ma.fields.Dict(metadata={"description": "the challenger serving scores now, or why it cannot"})
