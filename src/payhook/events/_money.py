"""Money: decimal strings in yuan to integer minor units (fen), never floats."""

from __future__ import annotations

import re
from decimal import Decimal

from payhook.errors import NotificationError

__all__ = ["format_amount", "parse_amount", "parse_fen"]

# Digits, an optional point and at most two decimals: no sign, no exponent, no spaces.
_AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,2})?\Z")
_FEN = re.compile(r"(?:0|[1-9][0-9]{0,17})\Z")


def parse_amount(text: str, *, field: str = "amount") -> int:
    """Turn a decimal string in major units (``"88.88"``) into integer minor units (``8888``).

    Raises:
        NotificationError: more than two decimals, a sign, an exponent or not a number.
    """
    if not _AMOUNT.match(text):
        raise NotificationError(f"{field} is not a valid amount", reason="bad_amount")
    return int(Decimal(text) * 100)


def parse_fen(value: object, *, field: str = "amount") -> int:
    """Accept an integer amount already in minor units (WeChat Pay), as int or digit string."""
    if isinstance(value, bool):
        raise NotificationError(f"{field} is not a valid amount", reason="bad_amount")
    if isinstance(value, int):
        if value < 0:
            raise NotificationError(f"{field} is negative", reason="bad_amount")
        return value
    if isinstance(value, str) and _FEN.match(value):
        return int(value)
    raise NotificationError(f"{field} is not a valid amount", reason="bad_amount")


def format_amount(amount_minor: int) -> str:
    """Render minor units as a decimal string with two places (``8888`` -> ``"88.88"``)."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"
