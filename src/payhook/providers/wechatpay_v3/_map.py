"""Map verified, decrypted WeChat Pay APIv3 resources to canonical event drafts (contract §5).

``TRANSACTION.SUCCESS`` -> ``payment.order.paid``; ``REFUND.SUCCESS`` ->
``payment.refund.succeeded``; ``REFUND.ABNORMAL`` / ``REFUND.CLOSED`` -> ``payment.refund.failed``;
anything else -> ``payment.notification.received``. Amounts are integer fen (providers.md §2.7).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from payhook.errors import NotificationError
from payhook.events import EventDraft, EventType, parse_fen, parse_rfc3339

__all__ = [
    "PROVIDER",
    "REFUND_FAILED_STATUS",
    "map_other",
    "map_paid",
    "map_refund",
    "required_text",
]

logger = logging.getLogger("payhook.providers.wechatpay_v3")

PROVIDER = "wechatpay"
REFUND_FAILED_STATUS = {"REFUND.ABNORMAL": "abnormal", "REFUND.CLOSED": "closed"}
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_ENVELOPE_FIELDS = ("id", "create_time", "event_type", "resource_type", "summary")


def required_text(obj: Mapping[str, Any], name: str) -> str:
    """``obj[name]`` as a non-empty string.

    Raises:
        NotificationError: it is absent, empty or not a string.
    """
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise NotificationError(f"{name} is missing", reason="missing_field")
    return value


def _optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) and value else None


def _amounts(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    amount = resource.get("amount")
    if not isinstance(amount, dict):
        raise NotificationError("amount is missing", reason="missing_field")
    return amount


def _currency(amount: Mapping[str, Any]) -> str:
    currency = amount.get("currency", "CNY")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise NotificationError("amount.currency is not a currency code", reason="malformed")
    return currency


def _payer_id(resource: Mapping[str, Any]) -> str | None:
    payer = resource.get("payer")
    if not isinstance(payer, dict):
        return None
    for name in ("openid", "sp_openid", "sub_openid"):
        value = _optional_text(payer, name)
        if value is not None:
            return value
    return None


def _raw(envelope: Mapping[str, Any], resource: object) -> dict[str, Any]:
    raw = {name: envelope.get(name) for name in _ENVELOPE_FIELDS}
    raw["resource"] = resource
    return raw


def _check_merchant(
    resource: Mapping[str, Any], *, mch_id: str, app_id: str | None, require_app_id: bool
) -> str:
    # Partner (服务商) payloads name the service provider in sp_mchid / sp_appid and the
    # sub-merchant in sub_mchid / sub_appid; the channel is configured with the former.
    partner = "sp_mchid" in resource
    if resource.get("sp_mchid" if partner else "mchid") != mch_id:
        raise NotificationError("mchid is not this channel's", reason="wrong_merchant")
    if app_id is not None:
        app_field = "sp_appid" if partner else "appid"
        value = resource.get(app_field)
        if (value is not None or require_app_id) and value != app_id:
            raise NotificationError(f"{app_field} is not this channel's", reason="wrong_merchant")
    return mch_id


def map_paid(
    resource: Mapping[str, Any],
    envelope: Mapping[str, Any],
    *,
    mch_id: str,
    app_id: str | None,
) -> EventDraft:
    """``TRANSACTION.SUCCESS`` -> ``payment.order.paid``.

    Raises:
        NotificationError: wrong merchant, or a field is missing or malformed.
    """
    mchid = _check_merchant(resource, mch_id=mch_id, app_id=app_id, require_app_id=True)
    if resource.get("trade_state", "SUCCESS") != "SUCCESS":
        raise NotificationError(
            "TRANSACTION.SUCCESS carries another trade_state", reason="inconsistent_state"
        )
    transaction_id = required_text(resource, "transaction_id")
    amount = _amounts(resource)
    return EventDraft(
        type=EventType.ORDER_PAID,
        key=f"wechatpay:{mchid}:{transaction_id}:{EventType.ORDER_PAID}",
        provider=PROVIDER,
        merchant_id=mchid,
        order_id=required_text(resource, "out_trade_no"),
        transaction_id=transaction_id,
        amount=parse_fen(amount.get("total"), field="amount.total"),
        currency=_currency(amount),
        paid_at=parse_rfc3339(required_text(resource, "success_time"), field="success_time"),
        payer_id=_payer_id(resource),
        raw=_raw(envelope, resource),
    )


def map_refund(
    resource: Mapping[str, Any],
    envelope: Mapping[str, Any],
    event_type: str,
    *,
    mch_id: str,
    app_id: str | None,
) -> EventDraft:
    """``REFUND.SUCCESS`` / ``REFUND.ABNORMAL`` / ``REFUND.CLOSED`` -> a refund event.

    ``refund_id`` is the merchant's ``out_refund_no``; the event key uses WeChat's
    ``refund_id`` when present, so one refund is one event whatever envelope carries it.

    Raises:
        NotificationError: wrong merchant, or a field is missing or malformed.
    """
    mchid = _check_merchant(resource, mch_id=mch_id, app_id=app_id, require_app_id=False)
    out_refund_no = required_text(resource, "out_refund_no")
    refund_key = _optional_text(resource, "refund_id") or out_refund_no
    amount = _amounts(resource)
    status = REFUND_FAILED_STATUS.get(event_type)
    if status is None:
        event, suffix = EventType.REFUND_SUCCEEDED, str(EventType.REFUND_SUCCEEDED)
    else:
        event, suffix = EventType.REFUND_FAILED, f"{EventType.REFUND_FAILED}:{status}"
    return EventDraft(
        type=event,
        key=f"wechatpay:{mchid}:{refund_key}:{suffix}",
        provider=PROVIDER,
        merchant_id=mchid,
        order_id=required_text(resource, "out_trade_no"),
        transaction_id=required_text(resource, "transaction_id"),
        amount=parse_fen(amount.get("total"), field="amount.total"),
        currency=_currency(amount),
        refund_id=out_refund_no,
        refund_amount=parse_fen(amount.get("refund"), field="amount.refund"),
        refunded_total=None,
        status=status,
        raw=_raw(envelope, resource),
    )


def map_other(
    resource: object,
    envelope: Mapping[str, Any],
    *,
    event_id: str,
    event_type: str,
    mch_id: str,
    channel: str,
) -> EventDraft:
    """Any other authentic event type -> ``payment.notification.received``, never refused.

    Merchant fields of other products vary, so a foreign ``mchid`` is logged, not refused.
    """
    mchid = mch_id
    order_id = transaction_id = None
    if isinstance(resource, dict):
        named = _optional_text(resource, "sp_mchid") or _optional_text(resource, "mchid")
        if named is not None and named != mch_id:
            logger.warning(
                "A %s notification on channel %s names another merchant.",
                event_type[:64],
                channel,
                extra={"action": "foreign_merchant", "provider": PROVIDER, "channel": channel},
            )
        mchid = named or mch_id
        order_id = _optional_text(resource, "out_trade_no")
        transaction_id = _optional_text(resource, "transaction_id")
    return EventDraft(
        type=EventType.NOTIFICATION_RECEIVED,
        key=f"wechatpay:{mchid}:notification:{event_id}",
        provider=PROVIDER,
        merchant_id=mchid,
        order_id=order_id,
        transaction_id=transaction_id,
        amount=None,
        provider_event_type=event_type,
        raw=_raw(envelope, resource),
    )
