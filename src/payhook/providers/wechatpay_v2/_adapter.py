"""WeChat Pay v2 (XML) callbacks: MD5 / HMAC-SHA256 signed payment results, AES-256-ECB
encrypted refund results, and the XML SUCCESS/FAIL reply (providers.md §3, contract §4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from payhook.errors import ConfigurationError, NotificationError, SignatureError
from payhook.events import EventDraft, EventType, parse_beijing, parse_fen
from payhook.providers._base import (
    Outcome,
    ParsedNotification,
    RawNotification,
    Reply,
)
from payhook.providers._key_checks import signature_hint
from payhook.providers._safe_xml import parse_flat_xml, render_flat_xml
from payhook.signing import secret_fingerprint

__all__ = [
    "SIGN_TYPES",
    "WechatPayV2Provider",
    "check_api_key",
    "ecb",
    "refund_key",
    "wechat_v2_sign",
]

PROVIDER = "wechatpay"
SIGN_TYPES = ("MD5", "HMAC-SHA256")
_REFUND_FAILED_STATUS = {"CHANGE": "abnormal", "REFUNDCLOSE": "closed"}
_ASCII_WS = re.compile(r"[ \t\r\n]+")
# fee_type is an ISO 4217 code (统一下单: "符合ISO 4217标准的三位字母代码，默认人民币：CNY").
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_CONTENT_TYPE = "text/xml; charset=utf-8"
_MAX_REPLY_MESSAGE = 128
# outcome -> (HTTP status, return_msg when the caller gives none); contract §4.
_REPLIES = {
    Outcome.ACCEPTED: (200, "OK"),
    Outcome.REFUSED_AUTH: (400, "signature verification failed"),
    Outcome.REFUSED_MALFORMED: (400, "malformed notification"),
    Outcome.KEY_MISCONFIGURED: (500, "merchant key misconfigured"),
    Outcome.STORAGE_UNAVAILABLE: (500, "temporarily unavailable, retry later"),
}
_XML_UNSAFE = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def wechat_v2_sign(fields: Mapping[str, str], api_key: str, sign_type: str = "MD5") -> str:
    """The WeChat Pay v2 signature of ``fields`` (安全规范, chapter=4_3; providers.md §3.2).

    Every field except ``sign`` with a non-empty value (``sign_type`` included), sorted by
    name, joined as ``k=v&…``, then ``&key=<api_key>``; MD5 or HMAC-SHA256 keyed with the API
    key, as upper-case hex.

    Raises:
        ValueError: ``sign_type`` is neither ``MD5`` nor ``HMAC-SHA256``.
    """
    pairs = [f"{name}={fields[name]}" for name in sorted(fields) if name != "sign" and fields[name]]
    pairs.append(f"key={api_key}")
    message = "&".join(pairs).encode("utf-8")
    if sign_type == "MD5":
        # MD5 is what the v2 protocol specifies; HMAC-SHA256 is its only alternative.
        return hashlib.md5(message).hexdigest().upper()  # noqa: S324
    if sign_type == "HMAC-SHA256":
        return hmac.new(api_key.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()
    raise ValueError("sign_type must be MD5 or HMAC-SHA256")


def refund_key(api_key: str) -> bytes:
    # The req_info key is the lower-case hex MD5 of the API key: 32 ASCII bytes (AES-256).
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")  # noqa: S324


def ecb(key: bytes) -> Cipher[modes.ECB]:
    # WeChat Pay v2 encrypts req_info with AES-256-ECB; the mode is the protocol's, not ours.
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305


def check_api_key(api_key: str) -> None:
    if len(api_key) != 32 or not api_key.isascii():
        raise ConfigurationError("api_key must be the 32-character WeChat Pay APIv2 key")


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise NotificationError(f"{name} is missing", reason="missing_field")
    return value


def _currency(fields: Mapping[str, str]) -> str:
    value = fields.get("fee_type") or "CNY"
    if not _CURRENCY.match(value):
        raise NotificationError("fee_type is not a currency code", reason="malformed")
    return value


def _optional_fen(fields: Mapping[str, str], name: str) -> int | None:
    value = fields.get(name)
    return parse_fen(value, field=name) if value else None


class WechatPayV2Provider:
    """Verifies WeChat Pay v2 callbacks for one channel (one ``mch_id`` and API key).

    Payment results must carry a valid ``sign`` over their fields, made with the channel's
    ``sign_type`` (contract §9: a notification naming the other algorithm is refused); refund
    results carry no signature and are authenticated by decrypting ``req_info`` with the API
    key. ``mch_id`` (and ``appid`` when configured) must be the channel's, and with
    ``sub_merchant_ids`` set a partner ``sub_mch_id`` must be one of them.

    Args:
        channel: the configured channel name.
        mch_id: the merchant id notifications must carry.
        app_id: when set, the ``appid`` notifications must carry.
        api_key: the 32-character APIv2 key (signs MD5 or HMAC-SHA256; derives the refund key).
        sign_type: the one signature algorithm accepted, ``"MD5"`` or ``"HMAC-SHA256"``.
        sub_merchant_ids: when set, the partner ``sub_mch_id`` values accepted.

    Raises:
        ConfigurationError: ``api_key`` is not 32 ASCII characters, ``mch_id`` is empty or
            ``sign_type`` is unknown.
    """

    kind = "wechatpay_v2"
    __slots__ = (
        "_api_key",
        "_app_id",
        "_key_hint",
        "_mch_id",
        "_refund_key",
        "_sign_type",
        "_sub_merchant_ids",
        "channel",
    )

    def __init__(
        self,
        *,
        channel: str,
        mch_id: str,
        app_id: str | None,
        api_key: str,
        sign_type: str = "MD5",
        sub_merchant_ids: Collection[str] | None = None,
    ) -> None:
        check_api_key(api_key)
        if not mch_id:
            raise ConfigurationError("mch_id must not be empty")
        if sign_type not in SIGN_TYPES:
            raise ConfigurationError("sign_type must be MD5 or HMAC-SHA256")
        self._sign_type = sign_type
        self._sub_merchant_ids = None if sub_merchant_ids is None else frozenset(sub_merchant_ids)
        self.channel = channel
        self._mch_id = mch_id
        self._app_id = app_id or None
        self._api_key = api_key
        self._refund_key = refund_key(api_key)
        self._key_hint = signature_hint(
            channel, f"api_key ({sign_type})", secret_fingerprint(api_key)
        )

    def __repr__(self) -> str:
        return (
            f"WechatPayV2Provider(channel={self.channel!r}, mch_id={self._mch_id!r}, "
            f"app_id={self._app_id!r}, sign_type={self._sign_type!r}, api_key='***')"
        )

    def verify(self, raw: RawNotification) -> ParsedNotification:
        """Verify a v2 callback and turn it into canonical event drafts.

        Raises:
            NotificationError: bad XML (``bad_xml``), ``return_code`` not SUCCESS
                (``return_code_fail``), another merchant (``wrong_merchant``), a ``req_info``
                that does not decrypt to valid XML (``bad_req_info``), a missing field or a
                bad amount or time.
            SignatureError: a payment result whose ``sign`` is missing or wrong, or names
                another ``sign_type`` than the channel's (``sign_type_not_allowed``).
        """
        fields = parse_flat_xml(raw.body)
        if fields.get("return_code") != "SUCCESS":
            raise NotificationError("return_code is not SUCCESS", reason="return_code_fail")
        self._check_merchant(fields)
        if "req_info" in fields:
            parsed = self._refund(fields)
        else:
            self._check_signature(fields)
            parsed = self._payment(fields)
        sub_merchant_id = fields.get("sub_mch_id") or None
        if sub_merchant_id is None:
            return parsed
        events = tuple(replace(draft, sub_merchant_id=sub_merchant_id) for draft in parsed.events)
        return replace(parsed, events=events)

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        """The XML answer WeChat Pay expects: SUCCESS/OK (200) or FAIL with a short reason."""
        status, text = _REPLIES[outcome]
        code = "SUCCESS" if outcome is Outcome.ACCEPTED else "FAIL"
        if code == "FAIL" and message:
            text = _XML_UNSAFE.sub("?", message)[:_MAX_REPLY_MESSAGE]
        body = render_flat_xml({"return_code": code, "return_msg": text})
        return Reply(status=status, body=body, content_type=_CONTENT_TYPE)

    def _check_merchant(self, fields: Mapping[str, str]) -> None:
        if fields.get("mch_id") != self._mch_id:
            raise NotificationError("mch_id is not this channel's", reason="wrong_merchant")
        if self._app_id is not None and fields.get("appid") != self._app_id:
            raise NotificationError("appid is not this channel's", reason="wrong_merchant")
        sub_mch_id = fields.get("sub_mch_id") or None
        if (
            self._sub_merchant_ids is not None
            and sub_mch_id is not None
            and sub_mch_id not in self._sub_merchant_ids
        ):
            raise NotificationError(
                "sub_mch_id is not one of this channel's sub-merchants", reason="wrong_merchant"
            )

    def _check_signature(self, fields: Mapping[str, str]) -> None:
        sign = fields.get("sign")
        if not sign:
            raise SignatureError("sign is missing", reason="missing_signature")
        # The algorithm is the channel's, never the notification's (contract §9): a named
        # sign_type must be the configured one. Without sign_type the configured algorithm
        # is used, since WeChat has been seen to send HMAC-SHA256 signs without naming it
        # (WxJava#1633).
        named = fields.get("sign_type", "").upper()
        if named and named not in SIGN_TYPES:
            raise SignatureError("sign_type is not supported", reason="bad_signature")
        if named and named != self._sign_type:
            raise SignatureError(
                f"sign_type {named} is not this channel's", reason="sign_type_not_allowed"
            )
        sign_type = self._sign_type
        expected = wechat_v2_sign(fields, self._api_key, sign_type)
        if not hmac.compare_digest(expected.encode("ascii"), sign.upper().encode("utf-8")):
            raise SignatureError("sign does not match", reason="bad_signature", hint=self._key_hint)

    def _payment(self, fields: dict[str, str]) -> ParsedNotification:
        mch_id = self._mch_id
        result_code = fields.get("result_code", "")
        order_id = fields.get("out_trade_no") or None
        payer_id = fields.get("openid") or fields.get("sub_openid") or None
        # The provider's sign is a credential-derived value: it is not republished (issue 16).
        raw: dict[str, Any] = {name: value for name, value in fields.items() if name != "sign"}
        if result_code == "SUCCESS":
            transaction_id = _required(fields, "transaction_id")
            order_id = _required(fields, "out_trade_no")
            time_end = fields.get("time_end")
            draft = EventDraft(
                type=EventType.ORDER_PAID,
                key=f"{PROVIDER}:{mch_id}:{transaction_id}:{EventType.ORDER_PAID}",
                provider=PROVIDER,
                merchant_id=mch_id,
                order_id=order_id,
                transaction_id=transaction_id,
                amount=parse_fen(_required(fields, "total_fee"), field="total_fee"),
                currency=_currency(fields),
                paid_at=parse_beijing(time_end, field="time_end") if time_end else None,
                payer_id=payer_id,
                raw=raw,
            )
        elif result_code == "FAIL":
            failed_id = fields.get("transaction_id") or None
            # A failed payment has no id of its own. The same failure re-sent must stay one
            # event, so its identity is the payment (transaction_id, else out_trade_no) plus the
            # error code, never a per-delivery value such as nonce_str.
            subject = failed_id or _required(fields, "out_trade_no")
            err_code = fields.get("err_code") or "FAIL"
            draft = EventDraft(
                type=EventType.ORDER_FAILED,
                key=f"{PROVIDER}:{mch_id}:{subject}:{EventType.ORDER_FAILED}:{err_code}",
                provider=PROVIDER,
                merchant_id=mch_id,
                order_id=order_id,
                transaction_id=failed_id,
                amount=_optional_fen(fields, "total_fee"),
                currency=_currency(fields),
                payer_id=payer_id,
                raw=raw,
            )
        else:
            draft = self._unmodelled(fields, f"PAY.{result_code or 'UNKNOWN'}", raw)
        return ParsedNotification(notification_id=None, events=(draft,), order_id=order_id)

    def _refund(self, fields: dict[str, str]) -> ParsedNotification:
        info = self._decrypt_req_info(fields["req_info"])
        raw: dict[str, Any] = {**fields, "req_info": info}
        raw.pop("sign", None)
        status = info.get("refund_status", "")
        order_id = info.get("out_trade_no") or None
        if status == "SUCCESS":
            event_type, failed_status = EventType.REFUND_SUCCEEDED, None
        elif status in _REFUND_FAILED_STATUS:
            event_type, failed_status = EventType.REFUND_FAILED, _REFUND_FAILED_STATUS[status]
        else:
            draft = self._unmodelled(info, f"REFUND.{status or 'UNKNOWN'}", raw)
            return ParsedNotification(notification_id=None, events=(draft,), order_id=order_id)
        out_refund_no = _required(info, "out_refund_no")
        refund_ref = info.get("refund_id") or out_refund_no
        key = f"{PROVIDER}:{self._mch_id}:{refund_ref}:{event_type}"
        if failed_status is not None:
            key = f"{key}:{failed_status}"
        draft = EventDraft(
            type=event_type,
            key=key,
            provider=PROVIDER,
            merchant_id=self._mch_id,
            order_id=order_id,
            transaction_id=info.get("transaction_id") or None,
            amount=_optional_fen(info, "total_fee"),
            currency=_currency(info if info.get("fee_type") else fields),
            refund_id=out_refund_no,
            refund_amount=parse_fen(_required(info, "refund_fee"), field="refund_fee"),
            status=failed_status,
            raw=raw,
        )
        return ParsedNotification(notification_id=None, events=(draft,), order_id=order_id)

    def _unmodelled(
        self, fields: Mapping[str, str], provider_event_type: str, raw: Mapping[str, Any]
    ) -> EventDraft:
        # Authentic, but of a kind payhook does not model: passed on, never refused (contract §5).
        subject = (
            fields.get("refund_id")
            or fields.get("out_refund_no")
            or fields.get("transaction_id")
            or fields.get("out_trade_no")
            or "none"
        )
        return EventDraft(
            type=EventType.NOTIFICATION_RECEIVED,
            key=f"{PROVIDER}:{self._mch_id}:{subject}:{EventType.NOTIFICATION_RECEIVED}:"
            f"{provider_event_type}",
            provider=PROVIDER,
            merchant_id=self._mch_id,
            order_id=fields.get("out_trade_no") or None,
            transaction_id=fields.get("transaction_id") or None,
            amount=None,
            provider_event_type=provider_event_type,
            raw=raw,
        )

    def _decrypt_req_info(self, text: str) -> dict[str, str]:
        try:
            data = base64.b64decode(_ASCII_WS.sub("", text), validate=True)
        except (binascii.Error, ValueError):
            raise NotificationError("req_info is not base64", reason="bad_req_info") from None
        decryptor = ecb(self._refund_key).decryptor()
        unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
        try:  # finalize() refuses data that is not whole AES blocks (empty included)
            plain = decryptor.update(data) + decryptor.finalize()
            plain = unpadder.update(plain) + unpadder.finalize()
        except ValueError:
            raise NotificationError("req_info does not decrypt", reason="bad_req_info") from None
        try:
            return parse_flat_xml(plain, root="root")
        except NotificationError:
            raise NotificationError(
                "req_info does not decrypt to valid XML", reason="bad_req_info"
            ) from None
