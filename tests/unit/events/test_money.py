"""Money parsing: decimal strings to integer fen, never floats, never past MAX_AMOUNT."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from payhook.errors import NotificationError
from payhook.events import format_amount, parse_amount, parse_fen
from payhook.events._money import MAX_AMOUNT

BIGINT_MAX = 2**63 - 1  # PostgreSQL BIGINT, the amount columns' type


def _refused(call: object, value: object, message: str) -> None:
    """``call(value)`` raises NotificationError with reason bad_amount and this message."""
    assert callable(call)
    with pytest.raises(NotificationError) as caught:
        call(value)
    assert caught.value.reason == "bad_amount"
    assert str(caught.value) == message


def test_max_amount_is_eighteen_digits_and_fits_bigint() -> None:
    """The documented maximum: every 18-digit fen amount, nine of them summed still fit."""
    assert MAX_AMOUNT == 999_999_999_999_999_999
    assert 9 * MAX_AMOUNT <= BIGINT_MAX < 10 * MAX_AMOUNT


# -- parse_amount (yuan strings) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [("88.88", 8888), ("20", 2000), ("0.01", 1), ("0", 0), ("0.0", 0), ("0.00", 0),
     ("1.5", 150), ("7", 700), ("10.05", 1005), ("100000000.00", 10**10),
     ("9999999999999999.99", MAX_AMOUNT), ("9999999999999999", MAX_AMOUNT - 99),
     ("1000000000000000", 10**17)],
    ids=["two-decimals", "integer", "one-fen", "zero", "zero-one-decimal", "zero-two-decimals",
         "one-decimal", "one-digit", "zero-in-decimals", "large", "maximum", "sixteen-digits",
         "sixteen-digits-round"],
)  # fmt: skip
def test_parse_amount_valid(text: str, fen: int) -> None:
    """Valid decimal strings become exact integer fen, zero and the maximum included."""
    assert parse_amount(text) == fen


@pytest.mark.parametrize(
    "text",
    ["88.888", "-1.00", "1e2", "1E2", "abc", "", " 1.00", "1.00 ", "+1", "NaN", "Infinity",
     "01.00", "00", "00.5", "007", "1.", ".5", "1,00", "１.００", "1\n", "1.00\n", "0\n",
     "10000000000000000", "10000000000000000.00", "99999999999999999", "1.0.0", "1..0",
     "٣", "1_000"],
    ids=["three-decimals", "negative", "exponent", "exponent-upper", "letters", "empty",
         "leading-space", "trailing-space", "plus", "nan", "inf", "leading-zero",
         "double-zero", "leading-zero-decimal", "leading-zeros", "trailing-point",
         "leading-point", "comma", "fullwidth-digits", "trailing-newline",
         "trailing-newline-decimals", "zero-trailing-newline", "seventeen-digits",
         "seventeen-digits-decimals", "seventeen-nines", "two-points", "double-point",
         "arabic-indic-digit", "underscore"],
)  # fmt: skip
def test_parse_amount_refuses(text: str) -> None:
    """Anything but a canonical decimal of at most 16 + 2 digits is refused as bad_amount."""
    _refused(parse_amount, text, "amount is not a valid amount")


def test_parse_amount_names_the_field() -> None:
    """The refusal names the provider's field."""
    with pytest.raises(NotificationError, match=r"^total_amount is not a valid amount$"):
        parse_amount("1.234", field="total_amount")


@given(st.integers(min_value=0, max_value=MAX_AMOUNT))
def test_round_trip(fen: int) -> None:
    """format_amount and parse_amount are inverse on every amount up to the maximum."""
    assert parse_amount(format_amount(fen)) == fen
    assert Decimal(format_amount(fen)) * 100 == fen


# -- parse_fen (WeChat Pay integers) --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fen"),
    [(8888, 8888), ("8888", 8888), (0, 0), ("0", 0), (1, 1), ("1", 1), ("10", 10),
     ("5", 5), (MAX_AMOUNT, MAX_AMOUNT), (str(MAX_AMOUNT), MAX_AMOUNT),
     ("100000000000000000", 10**17)],
    ids=["int", "string", "zero", "zero-string", "one", "one-string", "ten-string",
         "one-digit-string", "maximum", "maximum-string", "eighteen-digits-string"],
)  # fmt: skip
def test_parse_fen_accepts(value: object, fen: int) -> None:
    """Non-negative ints and canonical digit strings up to MAX_AMOUNT pass through as int."""
    parsed = parse_fen(value)
    assert parsed == fen
    assert type(parsed) is int


@pytest.mark.parametrize(
    "value",
    [True, False, 1.5, 1.0, "1.5", "-1", None, "１", "", "01", "00", "007", " 1", "1 ", "1\n",
     "0\n", "+1", "1e3", str(MAX_AMOUNT + 1), str(BIGINT_MAX), b"1", [1]],
    ids=["true", "false", "float", "integral-float", "decimal-string", "negative-string",
         "none", "fullwidth", "empty", "leading-zero", "double-zero", "leading-zeros",
         "leading-space", "trailing-space", "trailing-newline", "zero-trailing-newline", "plus",
         "exponent", "nineteen-digits", "bigint-max-string", "bytes", "list"],
)  # fmt: skip
def test_parse_fen_refuses(value: object) -> None:
    """Integer fen must be a non-negative int or a canonical digit string."""
    _refused(parse_fen, value, "amount is not a valid amount")


@pytest.mark.parametrize("value", [-1, -(10**18)], ids=["minus-one", "large-negative"])
def test_parse_fen_refuses_negative(value: int) -> None:
    """A negative int is refused as bad_amount."""
    _refused(parse_fen, value, "amount is negative")


@pytest.mark.parametrize(
    "value",
    [MAX_AMOUNT + 1, BIGINT_MAX, BIGINT_MAX + 1],
    ids=["max-plus-one", "bigint-max", "overflow"],
)
def test_parse_fen_refuses_above_the_maximum(value: int) -> None:
    """A 19-digit int would overflow (or nearly) the BIGINT column: refused as bad_amount."""
    _refused(parse_fen, value, "amount is above the maximum amount")


def test_parse_fen_names_the_field() -> None:
    """The refusal names the provider's field."""
    with pytest.raises(NotificationError, match=r"^total_fee is not a valid amount$"):
        parse_fen("1.5", field="total_fee")
    with pytest.raises(NotificationError, match=r"^amount\.total is negative$"):
        parse_fen(-5, field="amount.total")


@pytest.mark.parametrize("fen", [0, 1, 99, 100, MAX_AMOUNT], ids=str)
def test_both_paths_agree_on_the_range(fen: int) -> None:
    """Every amount in range is accepted as yuan, as int fen and as a fen string alike."""
    assert parse_amount(format_amount(fen)) == parse_fen(fen) == parse_fen(str(fen)) == fen


def test_both_paths_refuse_one_past_the_maximum() -> None:
    """MAX_AMOUNT + 1 is refused as yuan, as int fen and as a fen string."""
    with pytest.raises(NotificationError):
        parse_amount(format_amount(MAX_AMOUNT + 1))
    with pytest.raises(NotificationError):
        parse_fen(MAX_AMOUNT + 1)
    with pytest.raises(NotificationError):
        parse_fen(str(MAX_AMOUNT + 1))


# -- format_amount ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [(8888, "88.88"), (0, "0.00"), (1, "0.01"), (-1, "-0.01"), (-150, "-1.50"), (100, "1.00"),
     (99, "0.99"), (2000, "20.00"), (MAX_AMOUNT, "9999999999999999.99")],
    ids=["two-decimals", "zero", "one-fen", "minus-one-fen", "negative", "one-yuan",
         "ninety-nine-fen", "integer", "maximum"],
)  # fmt: skip
def test_format_amount(fen: int, text: str) -> None:
    """Two decimal places always; a minus sign only below zero."""
    assert format_amount(fen) == text
