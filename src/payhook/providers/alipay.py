"""The Alipay adapter: verify ``trade_status_sync`` notifications and map them to canonical events.

Implements providers.md §1: the raw form body is parsed once (``_alipay_form``), the RSA2 or
RSA signature is checked over the string to sign *before* any business field is read, then
``app_id`` (and ``seller_id`` when configured) are checked and the trade status becomes
event drafts. Certificate mode only changes where the public key comes from
(``_alipay_cert``). :class:`AlipaySimulator` builds the same notifications for
``payhook simulate``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payhook.errors import NotificationError, RefusedError, SignatureError
from payhook.events import BEIJING, EventDraft, EventType, format_amount, parse_amount, parse_beijing
from payhook.providers._alipay_cert import (
    alipay_cert_sn,
    alipay_root_cert_sn,
    load_alipay_cert_mode,
)
from payhook.providers._alipay_form import (
    SIGN_TYPES,
    AlipayForm,
    codec_for,
    decode_fields,
    parse_form,
    sign_notification,
    string_to_sign,
)
from payhook.providers._base import (
    Outcome,
    ParsedNotification,
    RawNotification,
    Reply,
    SimulatedCallback,
)
from payhook.signing import rsa_verify

__all__ = [
    "AlipayProvider",
    "AlipaySimulator",
    "alipay_cert_sn",
    "alipay_root_cert_sn",
    "load_alipay_cert_mode",
    "sign_notification",
]

logger = logging.getLogger(__name__)

PROVIDER = "alipay"

_PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
# Any of these marks a refund-triggered trade notification (providers.md §1.6).
_REFUND_FIELDS = ("refund_fee", "gmt_refund", "out_biz_no")

# Alipay's reply bodies (contract §4): exactly "success", anything else means "resend".
_REPLIES: Mapping[Outcome, tuple[int, bytes]] = {
    Outcome.ACCEPTED: (200, b"success"),
    Outcome.REFUSED_AUTH: (400, b"fail"),
    Outcome.REFUSED_MALFORMED: (400, b"fail"),
    Outcome.STORAGE_UNAVAILABLE: (503, b"fail"),
    Outcome.KEY_MISCONFIGURED: (500, b"fail"),
}


class AlipayProvider:
    """Inbound adapter for one Alipay channel (``provider = "alipay"``).

    Public-key mode passes the Alipay public key (not the application's). Certificate mode
    passes the key and SN from :func:`load_alipay_cert_mode`; a notification whose
    ``alipay_cert_sn`` differs from the configured SN is still accepted when its signature
    verifies, with a warning (Alipay has rotated its certificate).

    Args:
        channel: the configured channel name.
        app_id: the application id notifications must carry.
        public_key: the key Alipay's signatures verify with.
        seller_id: when set, trade notifications for another seller are refused.
        alipay_cert_sn: certificate mode only: the SN of the configured Alipay certificate.
    """

    kind = "alipay"

    def __init__(
        self,
        *,
        channel: str,
        app_id: str,
        public_key: RSAPublicKey,
        seller_id: str | None = None,
        alipay_cert_sn: str | None = None,
    ) -> None:
        self.channel = channel
        self.app_id = app_id
        self.public_key = public_key
        self.seller_id = seller_id
        self.alipay_cert_sn = alipay_cert_sn

    def __repr__(self) -> str:
        return f"AlipayProvider(channel={self.channel!r}, app_id={self.app_id!r})"

    def verify(self, raw: RawNotification) -> ParsedNotification:
        """Verify ``raw`` and turn it into canonical event drafts.

        Raises:
            SignatureError: ``sign`` missing (``missing_sign``), not base64 (``bad_base64``),
                unknown ``sign_type`` (``unknown_sign_type``) or not matching
                (``bad_signature``).
            NotificationError: the body is not an Alipay form, or an authentic notification
                is for another app or seller, or carries an invalid amount or time.
        """
        form = parse_form(raw.body)
        fields = decode_fields(form)
        self._check_signature(form)
        return self._parse(fields)

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        """``success`` (200) when accepted, else ``fail`` with 400, 500 or 503 (contract §4).

        ``message`` is not sent: Alipay reads only whether the body is ``success``.
        """
        status, body = _REPLIES[outcome]
        return Reply(status=status, body=body, content_type="text/plain")

    def _check_signature(self, form: AlipayForm) -> None:
        sign = form.values.get("sign")
        if not sign:
            raise SignatureError("the notification carries no sign", reason="missing_sign")
        sign_type = form.values.get("sign_type", b"").decode("latin-1")
        digest = SIGN_TYPES.get(sign_type)
        if digest is None:
            raise SignatureError("sign_type is missing or unknown", reason="unknown_sign_type")
        try:
            signature = base64.b64decode(sign, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("sign is not base64", reason="bad_base64") from None
        if rsa_verify(self.public_key, string_to_sign(form), signature, digest=digest):
            return
        # Which convention Alipay's signer follows for empty values is unconfirmed
        # (providers.md §1.2): the official SDK keeps "k=", others drop the pair.
        has_empty = any(not value for key, value in form.values.items() if key != "sign")
        if has_empty and rsa_verify(
            self.public_key, string_to_sign(form, drop_empty=True), signature, digest=digest
        ):
            return
        raise SignatureError("the signature does not match", reason="bad_signature")

    def _parse(self, fields: Mapping[str, str]) -> ParsedNotification:
        app_id = _required(fields, "app_id")
        if app_id != self.app_id:
            raise NotificationError("app_id is not this channel's app", reason="wrong_app_id")
        notify_id = _required(fields, "notify_id")
        notify_type = fields.get("notify_type")
        trade_status = fields.get("trade_status")
        is_trade = trade_status is not None and notify_type in (None, "trade_status_sync")
        seller = fields.get("seller_id")
        if (
            self.seller_id is not None
            and seller != self.seller_id
            and (seller is not None or is_trade)
        ):
            raise NotificationError("seller_id is not this channel's seller", reason="wrong_seller")
        self._check_cert_sn(fields.get("alipay_cert_sn"), notify_id)
        raw = {key: value for key, value in fields.items() if key != "sign"}
        if is_trade:
            assert trade_status is not None
            events = _trade_events(fields, raw, app_id, trade_status)
        else:
            events = ()
        if not events:
            kind = (trade_status if is_trade else notify_type or trade_status) or "unknown"
            events = (_received_event(fields, raw, app_id, notify_id, kind),)
        return ParsedNotification(
            notification_id=notify_id, events=events, order_id=fields.get("out_trade_no")
        )

    def _check_cert_sn(self, received: str | None, notify_id: str) -> None:
        if self.alipay_cert_sn is None or received is None or received == self.alipay_cert_sn:
            return
        logger.warning(
            "An Alipay notification names a certificate other than the configured one; "
            "Alipay may have rotated its certificate: download the new one.",
            extra={
                "action": "alipay_cert_sn_mismatch",
                "provider": PROVIDER,
                "channel": self.channel,
                "notify_id": notify_id,
                "alipay_cert_sn": received,
                "configured_alipay_cert_sn": self.alipay_cert_sn,
            },
        )


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise NotificationError(f"{name} is missing", reason="missing_field")
    return value


def _time(fields: Mapping[str, str], name: str) -> datetime | None:
    value = fields.get(name)
    return None if value is None else parse_beijing(value, field=name)


def _payer(fields: Mapping[str, str]) -> str | None:
    return fields.get("buyer_id") or fields.get("buyer_open_id") or None


def _trade_events(
    fields: Mapping[str, str], raw: Mapping[str, str], app_id: str, status: str
) -> tuple[EventDraft, ...]:
    trade_no = _required(fields, "trade_no")
    common = {
        "provider": PROVIDER,
        "merchant_id": app_id,
        "order_id": _required(fields, "out_trade_no"),
        "transaction_id": trade_no,
        "amount": parse_amount(_required(fields, "total_amount"), field="total_amount"),
        "payer_id": _payer(fields),
        "paid_at": _time(fields, "gmt_payment"),
        "raw": raw,
    }
    prefix = f"{PROVIDER}:{app_id}:{trade_no}"
    events: list[EventDraft] = []
    refund = any(name in fields for name in _REFUND_FIELDS)
    if refund:
        # refund_fee is the trade's cumulative refunded amount; the store derives this
        # refund's share from what it already recorded (contract §5).
        refunded_total = parse_amount(_required(fields, "refund_fee"), field="refund_fee")
        refund_id = _required(fields, "out_biz_no")
        _time(fields, "gmt_refund")  # refuse a malformed refund time like any other
        events.append(
            EventDraft(
                type=EventType.REFUND_SUCCEEDED,
                key=f"{prefix}:refund:{refund_id}:{refunded_total}",
                refund_id=refund_id,
                refunded_total=refunded_total,
                refund_amount=None,
                **common,  # type: ignore[arg-type]
            )
        )
    elif status in _PAID_STATUSES:
        # TRADE_SUCCESS and a later TRADE_FINISHED are one payment: one key for both.
        events.append(
            EventDraft(
                type=EventType.ORDER_PAID,
                key=f"{prefix}:{EventType.ORDER_PAID}",
                **common,  # type: ignore[arg-type]
            )
        )
    if status == "TRADE_CLOSED":
        events.append(
            EventDraft(
                type=EventType.ORDER_CLOSED,
                key=f"{prefix}:{EventType.ORDER_CLOSED}",
                **common,  # type: ignore[arg-type]
            )
        )
    return tuple(events)


def _received_event(
    fields: Mapping[str, str], raw: Mapping[str, str], app_id: str, notify_id: str, kind: str
) -> EventDraft:
    """An authentic notification payhook does not model: passed on, never refused."""
    try:
        amount: int | None = parse_amount(fields["total_amount"])
    except (KeyError, RefusedError):
        amount = None
    try:
        paid_at = _time(fields, "gmt_payment")
    except RefusedError:
        paid_at = None
    return EventDraft(
        type=EventType.NOTIFICATION_RECEIVED,
        key=f"{PROVIDER}:{app_id}:notification:{notify_id}",
        provider=PROVIDER,
        merchant_id=app_id,
        order_id=fields.get("out_trade_no") or None,
        transaction_id=fields.get("trade_no") or None,
        amount=amount,
        paid_at=paid_at,
        payer_id=_payer(fields),
        provider_event_type=kind,
        raw=raw,
    )


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
