"""A credit decision in words for pages: each check and each reason, with amounts and scores formatted.

The stored texts (the API's ``detail`` and ``text``) keep plain "1250.00"
amounts; a page says the same from the stored numbers, formatted for people.
Reasons from the decision service (the ML method) about a yearly paid share are said
from their numbers too; any other feature's reason (a table of one's own, issue 11) is
shown as serving wrote it.
"""
from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_percent
from flask import Blueprint
from flask_babel import get_locale
from flask_babel import gettext as _

from portal.web.formats import money, pct, score

bp = Blueprint("wording", __name__)


@bp.app_template_filter("check_detail")
def check_detail(check: dict, d: dict) -> str:
    """Say what a policy check compared, for the decision `d` (as ``present.decision`` shapes it)."""
    name, passed = check.get("name"), check.get("passed")
    if name == "eligibility":
        return _("there is a repayment record") if passed else _("nothing has ever been due")
    if name == "score" and d.get("score") is not None:
        if d["method"] == "percentage":
            values = {"paid": pct(d["score"]), "needed": pct(d["threshold"])}
            return (_("paid %(paid)s of all dues; %(needed)s needed", **values) if passed
                    else _("paid %(paid)s of all dues, below the %(needed)s needed", **values))
        values = {"score": score(d["score"]), "threshold": score(d["threshold"])}
        return (_("score %(score)s, at or above the threshold of %(threshold)s", **values) if passed
                else _("score %(score)s, below the threshold of %(threshold)s", **values))
    if name == "limit" and d.get("credit_limit") is not None:
        values = {"owed": money(d["exposure"]), "asked": money(d["amount"]), "limit": money(d["credit_limit"])}
        return (_("%(owed)s owed plus %(asked)s asked fits the limit of %(limit)s", **values) if passed
                else _("%(owed)s owed plus %(asked)s asked is more than the limit of %(limit)s", **values))
    return check.get("detail", "")


def share(value: float, other: float | None) -> str:
    """Show a paid share as serving words it: whole percents, one decimal where whole ones would look equal."""
    digits = 1 if other is not None and round(value) == round(other) else 0
    return format_percent(Decimal(str(value)) / 100, "#,##0.0%" if digits else "#,##0%", locale=get_locale())


@bp.app_template_filter("reason")
def reason(r: dict, d: dict) -> str:
    """Say one reason of the decision `d` in words a customer can act on."""
    code = r.get("code")
    if code == "over_limit" and d.get("credit_limit") is not None:
        return _("The amount is more than your available credit of %(available)s (your limit is %(limit)s, "
                 "of which %(owed)s is still owed).", available=money(d["available_credit"]),
                 limit=money(d["credit_limit"]), owed=money(d["exposure"]))
    if code == "paid_percentage" and d.get("score") is not None:
        if d["approved"] or d["score"] >= d["threshold"]:
            return _("You have paid %(paid)s of everything that was due.", paid=pct(d["score"]))
        return _("You have paid %(paid)s of everything that was due; %(needed)s is needed.",
                 paid=pct(d["score"]), needed=pct(d["threshold"]))
    if code == "no_history":
        return _("Nothing has been due yet, so there is no payment record to judge")
    if r.get("year") is not None and isinstance(r.get("value"), (int, float)):  # a yearly paid share (ML)
        value, typical = r["value"], r.get("reference")
        if not isinstance(typical, (int, float)):
            return _("You paid %(paid)s of what was due in %(year)s.", paid=share(value, None), year=r["year"])
        return _("You paid %(paid)s of what was due in %(year)s; approved customers typically paid %(typical)s "
                 "or more.", paid=share(value, typical), year=r["year"], typical=share(typical, value))
    return r.get("text", "")
