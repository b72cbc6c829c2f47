"""Money: decimal strings in yuan to integer minor units (fen), never floats.

Both parsers accept exactly the amounts from 0 to ``MAX_AMOUNT`` fen, written canonically:
ASCII digits only, no sign, no exponent, no spaces, no leading zeros, no trailing newline.

Zero is a valid amount. It is well formed, and a provider's signed notification is a fact:
refusing it would only make the provider retry for a day and hide the notification. Whether
zero is acceptable for an order is the business checks' concern (an amount that differs from
the registered order's is published and raised as ``order.amount_mismatch``).
"""

from __future__ import annotations

import re
from decimal import Decimal

from payhook.errors import NotificationError

__all__ = ["MAX_AMOUNT", "format_amount", "parse_amount", "parse_fen"]

MAX_AMOUNT = 10**18 - 1
"""The largest amount, in fen: 18 digits (9 999 999 999 999 999.99 yuan).

Amounts are stored in PostgreSQL ``BIGINT`` columns (at most 9 223 372 036 854 775 807,
19 digits): every accepted amount, and the sum of up to nine of them, fits. A 19-digit fen
amount or a 17-digit yuan amount is refused.
"""

# Matched with fullmatch: the whole string, so a trailing newline is refused too.
# Yuan: 0 or up to 16 digits without a leading zero, then optionally a point and one or two
# decimals. Fen: 0 or up to 18 digits without a leading zero. Both stop at MAX_AMOUNT.
_YUAN = re.compile(r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,2})?")
_FEN = re.compile(r"0|[1-9][0-9]{0,17}")


def _invalid(field: str) -> NotificationError:
    return NotificationError(f"{field} is not a valid amount", reason="bad_amount")


def parse_amount(text: str, *, field: str = "amount") -> int:
    """Turn a decimal string in major units (``"88.88"``) into integer minor units (``8888``).

    Raises:
        NotificationError: more than two decimals, a sign, an exponent, a leading zero,
            more than ``MAX_AMOUNT`` fen or not a number (reason ``bad_amount``).
    """
    if not _YUAN.fullmatch(text):
        raise _invalid(field)
    return int(Decimal(text) * 100)


def parse_fen(value: object, *, field: str = "amount") -> int:
    """Accept an integer amount already in minor units (WeChat Pay), as int or digit string.

    Raises:
        NotificationError: a bool, a float, a negative number, more than ``MAX_AMOUNT``, a
            string that is not plain digits without a leading zero (reason ``bad_amount``).
    """
    if isinstance(value, bool):
        raise _invalid(field)
    if isinstance(value, int):
        if value < 0:
            raise NotificationError(f"{field} is negative", reason="bad_amount")
        if value > MAX_AMOUNT:
            raise NotificationError(f"{field} is above the maximum amount", reason="bad_amount")
        return value
    if isinstance(value, str) and _FEN.fullmatch(value):
        return int(value)
    raise _invalid(field)


def format_amount(amount_minor: int) -> str:
    """Render minor units as a decimal string with two places (``8888`` -> ``"88.88"``)."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"
