"""The Alipay adapter: verify ``trade_status_sync`` notifications and map them to canonical events.

Implements providers.md §1: the raw form body is parsed once (``_form``), the RSA2 or
RSA signature is checked over the string to sign *before* any business field is read, then
``app_id`` (and ``seller_id`` when configured) are checked and the trade status becomes
event drafts. Certificate mode only changes where the public key comes from
(``_cert``). :class:`AlipaySimulator` (``_form``) builds the same
notifications for ``payhook simulate``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from payhook.errors import NotificationError, RefusedError, SignatureError
from payhook.events import (
    EventDraft,
    EventType,
    parse_amount,
    parse_beijing,
)
from payhook.providers._base import Outcome, ParsedNotification, RawNotification, Reply
from payhook.providers._key_checks import signature_hint
from payhook.providers.alipay._fields import check_identifiers
from payhook.providers.alipay._form import (
    SIGN_TYPES,
    AlipayForm,
    decode_fields,
    parse_form,
    string_to_sign,
)
from payhook.signing import key_fingerprint, rsa_verify

__all__ = ["PROVIDER", "AlipayProvider"]

logger = logging.getLogger("payhook.providers.alipay")

PROVIDER = "alipay"

_PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
_MODELLED = _PAID_STATUSES | {"TRADE_CLOSED"}
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
        sign_types: the ``sign_type`` values accepted; RSA2 only unless the channel also
            allows ``"RSA"`` (SHA1withRSA), contract §9.
        sub_merchant_ids: when set, a notification whose ``auth_app_id`` names another
            authorising app (partner mode) is refused as for another app.
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
        sign_types: Collection[str] = ("RSA2",),
        sub_merchant_ids: Collection[str] | None = None,
    ) -> None:
        self.channel = channel
        self.app_id = app_id
        self.public_key = public_key
        self.seller_id = seller_id
        self.alipay_cert_sn = alipay_cert_sn
        self.sign_types = frozenset(sign_types)
        self.sub_merchant_ids = None if sub_merchant_ids is None else frozenset(sub_merchant_ids)
        key_name = "alipay_public_key" if alipay_cert_sn is None else "alipay_public_cert"
        self._key_hint = signature_hint(channel, key_name, key_fingerprint(public_key))

    def __repr__(self) -> str:
        return f"AlipayProvider(channel={self.channel!r}, app_id={self.app_id!r})"

    def verify(self, raw: RawNotification) -> ParsedNotification:
        """Verify ``raw`` and turn it into canonical event drafts.

        Raises:
            SignatureError: ``sign`` missing (``missing_sign``), not base64 (``bad_base64``),
                unknown ``sign_type`` (``unknown_sign_type``), a ``sign_type`` the channel
                does not accept (``sign_type_not_allowed``) or not matching
                (``bad_signature``).
            NotificationError: the body is not an Alipay form, or an authentic notification
                is for another app, seller or sub-merchant, carries an identifier with
                characters Alipay never uses (``malformed_field``), lacks a field the
                mapping reads, or carries an invalid amount or time.
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
        if sign_type not in self.sign_types:
            raise SignatureError(
                f"sign_type {sign_type} is not accepted on this channel",
                reason="sign_type_not_allowed",
            )
        try:
            signature = base64.b64decode(sign, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("sign is not base64", reason="bad_base64") from None
        if rsa_verify(self.public_key, string_to_sign(form), signature, digest=digest):
            return
        # Which convention Alipay's signer follows for empty values is unconfirmed
        # (providers.md §1.2): the official SDK keeps "k=", others drop the pair.
        has_empty = any(
            not value for key, value in form.values.items() if key not in ("sign", "sign_type")
        )
        if has_empty and rsa_verify(
            self.public_key, string_to_sign(form, drop_empty=True), signature, digest=digest
        ):
            return
        raise SignatureError(
            "the signature does not match", reason="bad_signature", hint=self._key_hint
        )

    def _parse(self, fields: Mapping[str, str]) -> ParsedNotification:
        check_identifiers(fields)
        app_id = _required(fields, "app_id")
        if app_id != self.app_id:
            raise NotificationError("app_id is not this channel's app", reason="wrong_app_id")
        auth_app_id = fields.get("auth_app_id") or None
        sub_merchant_id = auth_app_id if auth_app_id != app_id else None
        if (
            self.sub_merchant_ids is not None
            and sub_merchant_id is not None
            and sub_merchant_id not in self.sub_merchant_ids
        ):
            raise NotificationError(
                "auth_app_id is not one of this channel's sub-merchants", reason="wrong_merchant"
            )
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
        refund = is_trade and any(name in fields for name in _REFUND_FIELDS)
        if trade_status is not None and (refund or (is_trade and trade_status in _MODELLED)):
            events = _trade_events(fields, raw, app_id, trade_status, refund=refund)
        else:
            kind = (trade_status if is_trade else notify_type or trade_status) or "unknown"
            events = (_received_event(fields, raw, app_id, notify_id, kind),)
        if sub_merchant_id is not None:
            events = tuple(replace(event, sub_merchant_id=sub_merchant_id) for event in events)
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


def _present(fields: Mapping[str, str], name: str) -> None:
    # A field folded into its neighbour (providers.md §1.9) is absent as its own field.
    if name not in fields:
        raise NotificationError(f"{name} is missing", reason="missing_field")


def _time(fields: Mapping[str, str], name: str) -> datetime | None:
    value = fields.get(name)
    return parse_beijing(value, field=name) if value else None


def _payer(fields: Mapping[str, str]) -> str | None:
    return fields.get("buyer_id") or fields.get("buyer_open_id") or None


def _trade_events(
    fields: Mapping[str, str], raw: Mapping[str, str], app_id: str, status: str, *, refund: bool
) -> tuple[EventDraft, ...]:
    trade_no = _required(fields, "trade_no")
    if status in _PAID_STATUSES:
        # Alipay sends gmt_payment with every paid trade; it may be empty, never absent.
        _present(fields, "gmt_payment")
    prefix = f"{PROVIDER}:{app_id}:{trade_no}"
    # TRADE_SUCCESS and a later TRADE_FINISHED are one payment: one key for both.
    paid = EventDraft(
        type=EventType.ORDER_PAID,
        key=f"{prefix}:{EventType.ORDER_PAID}",
        provider=PROVIDER,
        merchant_id=app_id,
        order_id=_required(fields, "out_trade_no"),
        transaction_id=trade_no,
        amount=parse_amount(_required(fields, "total_amount"), field="total_amount"),
        paid_at=_time(fields, "gmt_payment"),
        payer_id=_payer(fields),
        raw=raw,
    )
    events: list[EventDraft] = []
    if refund:
        # refund_fee is the trade's cumulative refunded amount; the store derives this
        # refund's share from what it already recorded (contract §5).
        refunded_total = parse_amount(_required(fields, "refund_fee"), field="refund_fee")
        refund_id = _required(fields, "out_biz_no")
        scope = f"{prefix}:refund:"
        events.append(
            replace(
                paid,
                type=EventType.REFUND_SUCCEEDED,
                key=f"{scope}{refund_id}:{refunded_total}",
                refund_id=refund_id,
                refunded_total=refunded_total,
                refund_amount=None,
                refund_scope=scope,
            )
        )
    elif status in _PAID_STATUSES:
        events.append(paid)
    if status == "TRADE_CLOSED":
        events.append(
            replace(paid, type=EventType.ORDER_CLOSED, key=f"{prefix}:{EventType.ORDER_CLOSED}")
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
