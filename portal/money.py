"""Money: integer minor units inside, two-decimal strings at the edge. Never floats."""
from __future__ import annotations

import re

# Up to 12 integer digits keeps every sum far inside a signed 64-bit column.
AMOUNT_PATTERN = r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?"
_AMOUNT = re.compile(AMOUNT_PATTERN)


class MoneyError(ValueError):
    """An amount that is not a valid two-decimal string."""


def parse_amount(value: object) -> int:
    """Parse a decimal string like "1250.00" into minor units; reject everything else.

    JSON numbers are refused on purpose: a float cannot carry money exactly and
    an integer would be ambiguous (units or cents?).
    """
    if not isinstance(value, str):
        raise MoneyError('must be a decimal string such as "1250.00"')
    match = _AMOUNT.fullmatch(value)  # exactly the pattern: no spaces, no other scripts' digits
    if match is None:
        raise MoneyError('must be a decimal string with at most two decimals, such as "1250.00"')
    units, fraction = match.group(1), (match.group(2) or ".")[1:]
    return int(units) * 100 + int(fraction.ljust(2, "0"))


def format_cents(cents: int) -> str:
    """Format minor units as a two-decimal string ("-12.05" for -1205)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{frac:02d}"
