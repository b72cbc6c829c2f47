"""Character sets of the Alipay identifier fields payhook reads (providers.md §1.9).

Alipay signs the *decoded* values joined with ``&`` and ``=``, so a captured genuine
notification can be re-encoded with ``&key=value`` folded into the previous field
(``%26key%3Dvalue``) and still verify. Every identifier payhook maps is therefore checked
against the characters Alipay documents for it, which excludes ``&``, ``=`` and ``%``: a
folded value can never pass as an order number, trade number or app id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from payhook.errors import NotificationError

__all__ = ["check_identifiers"]

# out_trade_no / out_biz_no: "64个字符以内、可包含字母、数字、下划线" (alipay.trade.* request
# docs); hyphens are accepted by Alipay in practice and widely used, so they are allowed.
_MERCHANT_NO = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")
# trade_no String(64), app_id / auth_app_id String(32), seller_id / buyer_id String(28):
# digits in every notification Alipay documents; letters are tolerated, nothing else.
_ALNUM_64 = re.compile(r"[A-Za-z0-9]{1,64}\Z")
_ALNUM_32 = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_ALNUM_28 = re.compile(r"[A-Za-z0-9]{1,28}\Z")
# buyer_open_id (the open-id model): letters, digits, "_" and "-", up to 128.
_OPEN_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}\Z")
# notify_id: letters and digits, up to 128; trade_status / notify_type: upper-case words.
_ALNUM_128 = re.compile(r"[A-Za-z0-9]{1,128}\Z")
_WORD = re.compile(r"[A-Za-z_]{1,64}\Z")

_IDENTIFIERS: Mapping[str, re.Pattern[str]] = {
    "out_trade_no": _MERCHANT_NO,
    "out_biz_no": _MERCHANT_NO,
    "trade_no": _ALNUM_64,
    "app_id": _ALNUM_32,
    "auth_app_id": _ALNUM_32,
    "seller_id": _ALNUM_28,
    "buyer_id": _ALNUM_28,
    "buyer_open_id": _OPEN_ID,
    "notify_id": _ALNUM_128,
    "trade_status": _WORD,
    "notify_type": _WORD,
}


def check_identifiers(fields: Mapping[str, str]) -> None:
    """Refuse a notification whose identifier fields hold characters Alipay never sends.

    An empty value is left to the mapping (required fields are checked there).

    Raises:
        NotificationError: a present, non-empty identifier does not match its character
            set (``malformed_field``); the message names the field, never its value.
    """
    for name, pattern in _IDENTIFIERS.items():
        value = fields.get(name)
        if value and not pattern.match(value):
            raise NotificationError(
                f"{name} holds characters Alipay does not use in it", reason="malformed_field"
            )
