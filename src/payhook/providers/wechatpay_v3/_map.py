"""Map verified, decrypted WeChat Pay APIv3 resources to canonical event drafts (contract §5).

``TRANSACTION.SUCCESS`` -> ``payment.order.paid`` (one per successful sub-order of a combined
order, 合单); ``REFUND.SUCCESS`` ->
``payment.refund.succeeded``; ``REFUND.ABNORMAL`` / ``REFUND.CLOSED`` -> ``payment.refund.failed``;
anything else -> ``payment.notification.received``. Amounts are integer fen (providers.md §2.7).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from typing import Any

from payhook.errors import NotificationError
from payhook.events import EventDraft, EventType, parse_fen, parse_rfc3339

__all__ = [
    "PROVIDER",
    "REFUND_FAILED_STATUS",
    "map_combined",
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


def _sub_merchant(
    resource: Mapping[str, Any], sub_merchant_ids: Collection[str] | None
) -> str | None:
    """The partner ``sub_mchid`` of ``resource``, refused when not one of ``sub_merchant_ids``."""
    sub_mchid = resource.get("sub_mchid")
    if sub_mchid is None:
        return None
    if not isinstance(sub_mchid, str) or not sub_mchid:
        raise NotificationError("sub_mchid is not text", reason="malformed")
    if sub_merchant_ids is not None and sub_mchid not in sub_merchant_ids:
        raise NotificationError(
            "sub_mchid is not one of this channel's sub-merchants", reason="wrong_merchant"
        )
    return sub_mchid


def _check_merchant(
    resource: Mapping[str, Any],
    *,
    mch_id: str,
    app_id: str | None,
    require_app_id: bool,
    sub_merchant_ids: Collection[str] | None,
) -> str | None:
    """Check the merchant fields; returns the partner sub-merchant (``sub_mchid``) or None."""
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
    return _sub_merchant(resource, sub_merchant_ids) if partner else None


def map_paid(
    resource: Mapping[str, Any],
    envelope: Mapping[str, Any],
    *,
    mch_id: str,
    app_id: str | None,
    sub_merchant_ids: Collection[str] | None = None,
) -> EventDraft:
    """``TRANSACTION.SUCCESS`` -> ``payment.order.paid``.

    Raises:
        NotificationError: wrong merchant or sub-merchant, or a field is missing or malformed.
    """
    mchid = mch_id
    sub_merchant_id = _check_merchant(
        resource,
        mch_id=mch_id,
        app_id=app_id,
        require_app_id=True,
        sub_merchant_ids=sub_merchant_ids,
    )
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
        sub_merchant_id=sub_merchant_id,
        raw=_raw(envelope, resource),
    )


def map_combined(
    resource: Mapping[str, Any],
    envelope: Mapping[str, Any],
    *,
    mch_id: str,
    app_id: str | None,
    sub_merchant_ids: Collection[str] | None = None,
) -> tuple[EventDraft, ...]:
    """A combined order's (合单) ``TRANSACTION.SUCCESS`` -> one ``payment.order.paid`` per
    sub-order in state ``SUCCESS`` (contract §9).

    The channel's ``mch_id`` must be ``combine_mchid`` (and its ``app_id``, when set,
    ``combine_appid``). Each sub-order is an event of its own, keyed by its own
    ``transaction_id``, with ``merchant_id`` its ``mchid``, ``amount`` its
    ``amount.total_amount`` and ``combine_order_id`` the ``combine_out_trade_no``.

    Raises:
        NotificationError: wrong merchant or sub-merchant, no successful sub-order
            (``inconsistent_state``), or a field is missing or malformed.
    """
    if resource.get("combine_mchid") != mch_id:
        raise NotificationError("combine_mchid is not this channel's", reason="wrong_merchant")
    if app_id is not None and resource.get("combine_appid") != app_id:
        raise NotificationError("combine_appid is not this channel's", reason="wrong_merchant")
    combine_order_id = required_text(resource, "combine_out_trade_no")
    sub_orders = resource.get("sub_orders")
    if not isinstance(sub_orders, list) or not sub_orders:
        raise NotificationError("sub_orders is not a list of orders", reason="malformed")
    payer = resource.get("combine_payer_info")
    payer_id = _payer_id({"payer": payer})
    raw = _raw(envelope, resource)
    drafts: list[EventDraft] = []
    seen: set[str] = set()
    for sub in sub_orders:
        if not isinstance(sub, dict):
            raise NotificationError("a sub-order is not an object", reason="malformed")
        merchant_id = required_text(sub, "mchid")
        sub_merchant_id = _sub_merchant(sub, sub_merchant_ids)
        if sub.get("trade_state") != "SUCCESS":
            continue
        transaction_id = required_text(sub, "transaction_id")
        if transaction_id in seen:
            raise NotificationError("two sub-orders share a transaction_id", reason="malformed")
        seen.add(transaction_id)
        amount = _amounts(sub)
        drafts.append(
            EventDraft(
                type=EventType.ORDER_PAID,
                key=f"wechatpay:{merchant_id}:{transaction_id}:{EventType.ORDER_PAID}",
                provider=PROVIDER,
                merchant_id=merchant_id,
                order_id=required_text(sub, "out_trade_no"),
                transaction_id=transaction_id,
                amount=parse_fen(amount.get("total_amount"), field="amount.total_amount"),
                currency=_currency(amount),
                paid_at=parse_rfc3339(required_text(sub, "success_time"), field="success_time"),
                payer_id=payer_id,
                sub_merchant_id=sub_merchant_id,
                combine_order_id=combine_order_id,
                raw=raw,
            )
        )
    if not drafts:
        raise NotificationError(
            "TRANSACTION.SUCCESS of a combined order has no successful sub-order",
            reason="inconsistent_state",
        )
    return tuple(drafts)


def map_refund(
    resource: Mapping[str, Any],
    envelope: Mapping[str, Any],
    event_type: str,
    *,
    mch_id: str,
    app_id: str | None,
    sub_merchant_ids: Collection[str] | None = None,
) -> EventDraft:
    """``REFUND.SUCCESS`` / ``REFUND.ABNORMAL`` / ``REFUND.CLOSED`` -> a refund event.

    ``refund_id`` is the merchant's ``out_refund_no``; the event key uses WeChat's
    ``refund_id`` when present, so one refund is one event whatever envelope carries it.

    Raises:
        NotificationError: wrong merchant or sub-merchant, or a field is missing or malformed.
    """
    mchid = mch_id
    sub_merchant_id = _check_merchant(
        resource,
        mch_id=mch_id,
        app_id=app_id,
        require_app_id=False,
        sub_merchant_ids=sub_merchant_ids,
    )
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
        sub_merchant_id=sub_merchant_id,
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
