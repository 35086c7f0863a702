"""The ledger's refusals said in the page's language: the API keeps them in English, pages translate them here.

A refusal (``LedgerError.message``, a money or decision-service error) is English with
its numbers inside ("amount must be at most 1000000.00"). To find its translation, each
number (an amount, a year, a year-month, an id) becomes a placeholder ``%(1)s``, ``%(2)s``...
in order; the catalogue holds these templates (``REFUSALS``, extracted by ``make translations``),
and the numbers go back into the translated sentence. A message with no template stays English.
"""
from __future__ import annotations

import re

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

# A number, a year-month, an amount, or a list of them ("2021, 2022, 2023"): one placeholder each.
NUMBER = re.compile(r"\d(?:[\d.,:-]|, (?=\d))*\d|\d")

# The catalogue's copy of every refusal a page can show (the raise sites' wording, numbers as %(n)s).
REFUSALS = (
    _l("amount must be positive"),
    _l("amount must be at most %(1)s"),
    _l("amount must be at most the bank credit of %(1)s"),
    _l("a reason is required"),
    _l("%(1)s is not in the customer's schedule"),
    _l("no such payment"),
    _l("no such customer"),
    _l("no such manager"),
    _l("no such decision"),
    _l("payment is already reversed"),
    _l("month must be between %(1)s and %(2)s"),
    _l("year must be at most %(1)s"),
    _l("credit can only be booked on this month or a later one"),
    _l("the ML method is not configured here"),
    _l("method must be one of percentage, ml"),
    _l("Idempotency-Key was already used for a different request"),
    _l("%(1)s of this payment's bank credit was refunded to the customer; it cannot be reversed here"),
    _l("no dues in %(1)s"),
    _l("customer %(1)s already exists"),
    _l("manager %(1)s already exists"),
    _l("no id is free after the largest one; give the new account an id"),
    _l("you cannot deactivate your own account"),
    _l("the last active manager cannot be deactivated"),
    _l("your account is no longer active"),
    _l("this decision had nothing to score (no history)"),
    _l("the ML method needs dues in each of the last five complete years (%(1)s); none in %(2)s. "
       "Use the percentage method."),
    _l('must be a decimal string such as "%(1)s"'),
    _l('must be a decimal string with at most two decimals, such as "%(1)s"'),
    _l("the decision service is failing; the portal will try it again within %(1)s s"),
    _l("the decision service did not answer"),
    _l("the decision service answered %(1)s"),
    _l("the answer is not signed by the decision service"),
    _l("the decision service answered badly"),
    _l("the model is still loading; try again in a minute"),
    # The API schemas' messages on the managers' forms (portal.api.schemas, marshmallow's own).
    _l("must be text without control characters"),
    _l("must be text without control characters, not blank"),
    _l("must be one line of text without control characters"),
    _l("must be one line of text without control characters, not blank"),
    _l("Not a valid email address."),
    _l("Not a valid integer."),
    _l("Missing data for required field."),
    _l("Shorter than minimum length %(1)s."),
    _l("Longer than maximum length %(1)s."),
    _l("Length must be between %(1)s and %(2)s."),
    _l("Must be greater than or equal to %(1)s and less than or equal to %(2)s."),
    _l("String does not match expected pattern."),
)


def said(message: str) -> str:
    """Return a refusal in the page's language (a capitalised one stays capitalised), else as it is."""
    values = NUMBER.findall(message)
    numbers = iter(range(1, len(values) + 1))
    template = NUMBER.sub(lambda _m: f"%({next(numbers)})s", message)
    capital = template[:1].isupper() and template[:1].lower() + template[1:]
    filled = {str(i): value for i, value in enumerate(values, 1)}
    for candidate in filter(None, (template, capital)):
        translated = gettext(candidate, **filled)
        if translated != candidate % filled:  # the catalogue knows it
            return translated[:1].upper() + translated[1:] if candidate is capital else translated
    return message


def sentence(message: str, end: str = "") -> str:
    """Return a refusal in the page's language as a sentence: capitalised, with `end` ("." or nothing)."""
    text = said(message)
    return text[:1].upper() + text[1:] + end
