"""A credit decision in words for pages: each check and each reason, with amounts and scores formatted.

The stored texts (the API's ``detail`` and ``text``) keep plain "1250.00"
amounts; a page says the same from the stored numbers, formatted for people.
Reasons from the decision service (the ML method) are shown as serving wrote them.
"""
from __future__ import annotations

from flask import Blueprint
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
    return r.get("text", "")
