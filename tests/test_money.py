"""Money parsing and formatting: exact, strict, never floats."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.money import MoneyError, format_cents, parse_amount


@given(st.integers(0, 10**14 - 1))
def test_round_trip(cents):
    assert parse_amount(format_cents(cents)) == cents


@pytest.mark.parametrize("text,cents", [("0", 0), ("1", 100), ("1.5", 150), ("1250.00", 125_000), ("0.01", 1)])
def test_parses(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1.234", "1e3", "NaN", "Infinity", "1,000", "01", ".5",
                                 "1.", "1000000000000", 12.5, 100, None, True, float("nan")])
def test_rejects(bad):
    with pytest.raises(MoneyError):
        parse_amount(bad)


def test_format_negative():
    assert format_cents(-1205) == "-12.05"
