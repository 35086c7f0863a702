"""Reading numbers typed by people or sent in URLs: ASCII digits only."""
from __future__ import annotations


def is_digits(text: str) -> bool:
    """Tell whether text is made of ASCII digits 0-9 only (str.isdigit also takes "२०२५" and "²")."""
    return text.isascii() and text.isdigit()
