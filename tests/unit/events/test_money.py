"""Money parsing: decimal strings to integer fen, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from payhook.errors import NotificationError
from payhook.events import format_amount, parse_amount, parse_fen


@pytest.mark.parametrize(
    ("text", "fen"),
    [("88.88", 8888), ("20", 2000), ("0.01", 1), ("0", 0), ("1.5", 150), ("100000000.00", 10**10)],
    ids=["two-decimals", "integer", "one-fen", "zero", "one-decimal", "large"],
)
def test_parse_amount_valid(text: str, fen: int) -> None:
    """Valid decimal strings become exact integer fen."""
    assert parse_amount(text) == fen


@pytest.mark.parametrize(
    "text",
    ["88.888", "-1.00", "1e2", "1E2", "abc", "", " 1.00", "1.00 ", "+1", "NaN", "Infinity", "01.00",
     "1.", ".5", "1,00", "１.００"],
    ids=["three-decimals", "negative", "exponent", "exponent-upper", "letters", "empty",
         "leading-space", "trailing-space", "plus", "nan", "inf", "leading-zero", "trailing-point",
         "leading-point", "comma", "fullwidth-digits"],
)  # fmt: skip
def test_parse_amount_refuses(text: str) -> None:
    """Anything but a plain non-negative decimal with at most two places is refused."""
    with pytest.raises(NotificationError):
        parse_amount(text)


@given(st.integers(min_value=0, max_value=10**15))
def test_round_trip(fen: int) -> None:
    """format_amount and parse_amount are inverse on every non-negative amount."""
    assert parse_amount(format_amount(fen)) == fen
    assert Decimal(format_amount(fen)) * 100 == fen


@pytest.mark.parametrize("value", [True, -1, 1.5, "1.5", "-1", None, "１"], ids=str)
def test_parse_fen_refuses(value: object) -> None:
    """Integer fen must be a non-negative int or digit string."""
    with pytest.raises(NotificationError):
        parse_fen(value)


def test_parse_fen_accepts() -> None:
    """Ints and digit strings pass through."""
    assert parse_fen(8888) == 8888
    assert parse_fen("8888") == 8888
