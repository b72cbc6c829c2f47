"""Alipay's form wire format: parse a raw notification body, build its string to sign, and
build signed notifications the way Alipay does (:class:`AlipaySimulator`).

Alipay POSTs ``application/x-www-form-urlencoded`` bytes percent-encoded in the charset
named by the signed ``charset`` field (providers.md §1.1). The body is parsed here, on raw
bytes, exactly once: never through Starlette's form parser, which decodes as UTF-8 with
replacement and destroys GBK text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote_plus, unquote_to_bytes

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from payhook.errors import NotificationError
from payhook.events import BEIJING, format_amount
from payhook.providers._base import SimulatedCallback
from payhook.signing import RsaDigest, rsa_sign

__all__ = [
    "SIGN_TYPES",
    "AlipayForm",
    "AlipaySimulator",
    "codec_for",
    "decode_fields",
    "encode_form",
    "parse_form",
    "sign_notification",
    "string_to_sign",
]

# The charsets Alipay sends (providers.md §1.1). GB18030 is a superset of GBK and GB2312,
# so it decodes what either names; keys are compared lower-case.
_CODECS = {"utf-8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030"}

SIGN_TYPES: Mapping[str, RsaDigest] = {"RSA2": "sha256", "RSA": "sha1"}
"""``sign_type`` values and their digests: RSA2 is SHA256withRSA, RSA is SHA1withRSA."""

# The two keys Alipay leaves out of the string to sign (official SDK getSignCheckContentV1).
_UNSIGNED = frozenset({"sign", "sign_type"})

# Field names Alipay uses are ASCII identifiers; anything else is not an Alipay form.
_KEY = re.compile(rb"[A-Za-z0-9_.\-]{1,64}\Z")
# A "%" not followed by two hex digits: Java's URLDecoder refuses it, and so does payhook.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlipayForm:
    """A notification body split into fields, each value percent-decoded exactly once.

    ``values`` keeps the decoded *bytes* in body order: the string to sign is built from
    them, so verification never depends on a str round trip. ``codec`` is the Python codec
    for the form's ``charset`` field (UTF-8 when the field is absent).
    """

    values: Mapping[str, bytes]
    codec: str


def codec_for(charset: str) -> str | None:
    """The Python codec for an Alipay ``charset`` value, or ``None`` when payhook refuses it."""
    return _CODECS.get(charset.lower())


# "+" is a space and "%XX" an escape. Translated to "=XX", the escapes are exactly what
# binascii.a2b_qp decodes, in C; it copies every other byte unchanged.
_PLUS_PERCENT = bytes.maketrans(b"+%", b" =")


def _unquote(raw: bytes) -> bytes:
    # Callers have checked that every "%" starts a valid escape (_BAD_ESCAPE). A value
    # holding a literal "=" would be misread by a2b_qp, so it takes the general path.
    if b"%" not in raw:  # the common case for names and plain values: nothing to decode
        return raw.replace(b"+", b" ") if b"+" in raw else raw
    if b"=" in raw:
        return unquote_to_bytes(raw.replace(b"+", b" "))
    return binascii.a2b_qp(raw.translate(_PLUS_PERCENT))


# Valid field names seen before, sent plain (no escape, no "+"): every notification repeats
# the same two dozen. Bounded, so a flood of made-up names cannot grow it.
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 1024


def _field_name(raw: bytes) -> str | None:
    name = _NAMES.get(raw)
    if name is None:
        key = _unquote(raw)
        if not _KEY.match(key):
            return None
        name = key.decode("ascii")
        if key == raw and len(_NAMES) < _MAX_NAMES:
            _NAMES[raw] = name
    return name


def parse_form(body: bytes) -> AlipayForm:
    """Split ``body`` at ``&`` and the first ``=``, turn ``+`` into space, percent-decode once.

    Raises:
        NotificationError: empty body, a pair without ``=``, a malformed escape or field
            name, a duplicated field (``duplicate_field``) or an unknown ``charset``
            (``unknown_charset``).
    """
    if not body:
        raise NotificationError("the body is empty", reason="malformed")
    if _BAD_ESCAPE.search(body):
        raise NotificationError("the form holds a malformed percent escape", reason="malformed")
    values = _split_whole(body)
    if values is None:
        values = _split_pairs(body)
    charset = values.get("charset")
    codec = "utf-8" if charset is None else codec_for(charset.decode("latin-1"))
    if codec is None:
        raise NotificationError(
            "the charset field names an unknown charset", reason="unknown_charset"
        )
    return AlipayForm(values=values, codec=codec)


# The whole-body fast path: "=" separators become NUL, escapes become "=XX", and one
# a2b_qp call decodes the body. Exact only when the body has no NUL byte, exactly one "="
# per pair, and no escape that decodes to "&" or NUL; otherwise _split_pairs does the work.
_WHOLE = bytes.maketrans(b"+%=", b" =\x00")
_SEPARATOR_ESCAPE = re.compile(rb"%(?:26|00)")


def _split_whole(body: bytes) -> dict[str, bytes] | None:
    if (
        b"\x00" in body
        or body.count(b"=") != body.count(b"&") + 1
        or _SEPARATOR_ESCAPE.search(body)
    ):
        return None
    values: dict[str, bytes] = {}
    for segment in binascii.a2b_qp(body.translate(_WHOLE)).split(b"&"):
        raw_name, sep, value = segment.partition(b"\x00")
        name = _NAMES.get(raw_name)
        if not sep or name is None or name in values:
            return None  # a pair without "=", a new or repeated name: the general path decides
        values[name] = value
    return values


def _split_pairs(body: bytes) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for segment in body.split(b"&"):
        name, sep, value = segment.partition(b"=")
        if not sep:
            raise NotificationError("a form pair has no '='", reason="malformed")
        text = _field_name(name)
        if text is None:
            raise NotificationError("a form field name is not valid", reason="malformed")
        if text in values:
            # Alipay sends each field once; a second copy could smuggle a value past checks.
            raise NotificationError(f"field {text} appears twice", reason="duplicate_field")
        values[text] = _unquote(value)
    return values


def decode_fields(form: AlipayForm) -> dict[str, str]:
    """Every value decoded with the form's charset, in body order.

    Raises:
        NotificationError: a value is not valid in that charset (``bad_encoding``).
    """
    fields: dict[str, str] = {}
    for key, value in form.values.items():
        try:
            fields[key] = value.decode(form.codec)
        except UnicodeDecodeError:
            raise NotificationError(
                f"field {key} is not valid in the form's charset", reason="bad_encoding"
            ) from None
    return fields


def string_to_sign(form: AlipayForm, *, drop_empty: bool = False) -> bytes:
    """All fields but ``sign`` and ``sign_type``, sorted by name, ``k=v`` joined by ``&``.

    The values are the decoded bytes as received, i.e. the string encoded in the form's
    charset. ``drop_empty`` leaves out empty values, the variant some signers use
    (providers.md §1.2: which one Alipay uses is unconfirmed, so the verifier tries both).
    """
    items = sorted(
        (key, value)
        for key, value in form.values.items()
        if key not in _UNSIGNED and not (drop_empty and not value)
    )
    return b"&".join(key.encode("ascii") + b"=" + value for key, value in items)


def encode_form(pairs: Iterable[tuple[str, str]], codec: str) -> bytes:
    """Percent-encode ``pairs`` in ``codec`` as a form body (``+`` for space)."""
    return "&".join(
        f"{quote_plus(key)}={quote_plus(value.encode(codec))}" for key, value in pairs
    ).encode("ascii")


def sign_notification(
    fields: Mapping[str, str],
    private_key: RSAPrivateKey,
    *,
    sign_type: str = "RSA2",
    charset: str = "utf-8",
) -> bytes:
    """The form body of ``fields`` exactly as Alipay sends it, signed with ``private_key``.

    Values are percent-encoded in ``charset`` with ``+`` for space; ``sign_type`` (when
    ``fields`` lacks it) and ``sign`` are appended. Empty values are signed as ``k=``, as
    Alipay's official SDK does. Used by the simulator and by tests; never by the receiver.

    Raises:
        ValueError: unknown ``sign_type`` or ``charset``, ``fields`` already holds ``sign``
            or a name that is not an ASCII identifier, or its ``sign_type``/``charset`` field
            disagrees with the arguments.
    """
    digest = SIGN_TYPES.get(sign_type)
    if digest is None:
        raise ValueError(f"unknown sign_type {sign_type!r}")
    codec = codec_for(charset)
    if codec is None:
        raise ValueError(f"unknown charset {charset!r}")
    if "sign" in fields:
        raise ValueError("fields already hold a sign")
    if not all(_KEY.match(key.encode()) for key in fields):
        raise ValueError("a field name is not an Alipay field name")
    if fields.get("sign_type", sign_type) != sign_type:
        raise ValueError("the sign_type field disagrees with sign_type")
    if codec_for(fields.get("charset", charset)) != codec:
        raise ValueError("the charset field disagrees with charset")
    content = "&".join(
        f"{key}={value}" for key, value in sorted(fields.items()) if key not in _UNSIGNED
    )
    signature = base64.b64encode(rsa_sign(private_key, content.encode(codec), digest=digest))
    pairs = list(fields.items())
    if "sign_type" not in fields:
        pairs.append(("sign_type", sign_type))
    pairs.append(("sign", signature.decode("ascii")))
    return encode_form(pairs, codec)


class AlipaySimulator:
    """Builds ``trade_status_sync`` notifications signed with a test key, as Alipay would.

    ``trade_no`` and ``buyer_id`` are derived from ``app_id`` and the order id, so the
    payment and the refunds of one order share a trade; ``notify_id`` is random.

    Args:
        app_id: the channel's application id.
        private_key: the simulator's *test* private key (its public key is the one the
            channel verifies with).
        seller_id: the seller id to send; defaults to ``"2088000000000000"``.
        sign_type: ``"RSA2"`` (default) or ``"RSA"``.
        charset: ``"utf-8"`` (default), ``"GBK"``, ``"gb2312"`` or ``"gb18030"``.

    Raises:
        ValueError: unknown ``sign_type`` or ``charset``.
    """

    def __init__(
        self,
        *,
        app_id: str,
        private_key: RSAPrivateKey,
        seller_id: str | None = None,
        sign_type: str = "RSA2",
        charset: str = "utf-8",
    ) -> None:
        if sign_type not in SIGN_TYPES:
            raise ValueError(f"unknown sign_type {sign_type!r}")
        if codec_for(charset) is None:
            raise ValueError(f"unknown charset {charset!r}")
        self.app_id = app_id
        self._private_key = private_key
        self.seller_id = seller_id or "2088000000000000"
        self.sign_type = sign_type
        self.charset = charset

    def __repr__(self) -> str:
        return f"AlipaySimulator(app_id={self.app_id!r}, private_key=<hidden>)"

    def build(
        self,
        *,
        order_id: str,
        amount: int,
        event: str,
        refund_amount: int | None,
        now: datetime,
    ) -> SimulatedCallback:
        """A signed notification for ``event`` on order ``order_id``.

        ``paid`` sends ``TRADE_SUCCESS``; ``closed`` sends ``TRADE_CLOSED`` without refund
        fields (closed unpaid); ``refund`` sends ``TRADE_SUCCESS`` with ``refund_fee``,
        ``gmt_refund`` and ``out_biz_no``. As in Alipay, ``refund_fee`` is the *cumulative*
        refunded amount: ``refund_amount`` is taken as the total refunded so far (default:
        the whole ``amount``). Amounts are in fen; ``now`` must be timezone-aware.

        Raises:
            ValueError: unknown event, negative amount, naive ``now``, or a refund amount
                that is not in ``1..amount``.
        """
        if event not in ("paid", "closed", "refund"):
            raise ValueError(f"unknown event {event!r}: use paid, closed or refund")
        if amount < 0:
            raise ValueError("amount must not be negative")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        local = now.astimezone(BEIJING)
        yuan = format_amount(amount)
        digest = hashlib.sha256(f"{self.app_id}:{order_id}".encode()).digest()
        trade_no = f"{int.from_bytes(digest[:16], 'big') % 10**28:028d}"
        buyer_id = f"2088{int.from_bytes(digest[16:], 'big') % 10**12:012d}"
        fields: dict[str, str] = {
            "gmt_create": _fmt(local - timedelta(minutes=2)),
            "charset": self.charset,
            "notify_time": _fmt(local),
            "subject": f"payhook 模拟订单 {order_id}",
            "buyer_id": buyer_id,
            "version": "1.0",
            "notify_id": f"{local:%Y%m%d}{secrets.randbelow(10**26):026d}",
            "notify_type": "trade_status_sync",
            "out_trade_no": order_id,
            "total_amount": yuan,
            "trade_no": trade_no,
            "auth_app_id": self.app_id,
            "app_id": self.app_id,
            "seller_id": self.seller_id,
        }
        if event == "closed":
            fields["trade_status"] = "TRADE_CLOSED"
            fields["gmt_close"] = _fmt(local)
        else:
            paid_at = local if event == "paid" else local - timedelta(minutes=1)
            fields.update(
                trade_status="TRADE_SUCCESS",
                gmt_payment=_fmt(paid_at),
                invoice_amount=yuan,
                receipt_amount=yuan,
                buyer_pay_amount=yuan,
                point_amount="0.00",
                fund_bill_list=json.dumps(
                    [{"amount": yuan, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
                ),
            )
        if event == "refund":
            refunded = amount if refund_amount is None else refund_amount
            if not 0 < refunded <= amount:
                raise ValueError("the refund amount must be more than 0 and at most the amount")
            fields.update(
                refund_fee=format_amount(refunded),
                gmt_refund=f"{_fmt(local)}.{local.microsecond // 1000:03d}",
                out_biz_no=f"{order_id}-R{refunded}",
            )
        fields["sign_type"] = self.sign_type
        body = sign_notification(
            fields, self._private_key, sign_type=self.sign_type, charset=self.charset
        )
        headers = {"content-type": f"application/x-www-form-urlencoded; charset={self.charset}"}
        return SimulatedCallback(headers=headers, body=body)


def _fmt(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
