"""The canonical event: what a provider notification becomes, and its wire format (contract §5)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from payhook.events._times import to_rfc3339
from payhook.events._types import EventType

__all__ = ["Event", "EventData", "EventDraft", "render_event"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDraft:
    """A canonical event as a provider adapter produced it, before it is stored.

    ``key`` is the event's identity derived from provider facts (provider, merchant,
    transaction or refund id, canonical type). The store keeps one event per key, so the
    same fact re-sent in another envelope is still one event.

    For Alipay refunds ``refund_amount`` is left ``None`` with ``refunded_total`` set to the
    cumulative ``refund_fee``: the store fills in this refund's share from what it already
    recorded for the trade. ``refund_scope`` is then the prefix that begins the key of every
    refund event of that trade (and no other key), so the store can find them by a range of
    the unique key index.

    ``sub_merchant_id`` is the partner-mode sub-merchant (WeChat Pay ``sub_mchid``, Alipay
    ``auth_app_id`` when it differs from ``app_id``), ``combine_order_id`` the WeChat Pay
    combined order (合单) a sub-order belongs to, and ``source`` where payhook learnt the
    fact (``"callback"``, ``"query"`` or ``"bill"``, contract §9).
    """

    type: EventType
    key: str
    provider: str
    merchant_id: str
    order_id: str | None
    transaction_id: str | None
    amount: int | None
    currency: str = "CNY"
    paid_at: datetime | None = None
    payer_id: str | None = None
    refund_id: str | None = None
    refund_amount: int | None = None
    refunded_total: int | None = None
    status: str | None = None
    sub_merchant_id: str | None = None
    combine_order_id: str | None = None
    source: str = "callback"
    provider_event_type: str | None = None
    refund_scope: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def render_event(draft: EventDraft, *, event_id: str, channel: str, created_at: datetime) -> bytes:
    """The UTF-8 JSON body POSTed to subscribers for this event."""
    data: dict[str, Any] = {
        "provider": draft.provider,
        "channel": channel,
        "merchant_id": draft.merchant_id,
        "order_id": draft.order_id,
        "transaction_id": draft.transaction_id,
        "amount": draft.amount,
        "currency": draft.currency,
        "paid_at": to_rfc3339(draft.paid_at) if draft.paid_at is not None else None,
        "payer_id": draft.payer_id,
        "refund_id": draft.refund_id,
        "refund_amount": draft.refund_amount,
        "refunded_total": draft.refunded_total,
        "status": draft.status,
        "sub_merchant_id": draft.sub_merchant_id,
        "combine_order_id": draft.combine_order_id,
        "source": draft.source,
    }
    if draft.provider_event_type is not None:
        data["provider_event_type"] = draft.provider_event_type
    data["raw"] = dict(draft.raw)
    body = {
        "id": event_id,
        "type": str(draft.type),
        "created_at": to_rfc3339(created_at),
        "data": data,
    }
    return _encode(body).encode()


# What json.dumps(body, ensure_ascii=False, separators=(",", ":")) does, without building
# an encoder per call (the body is plain dicts, strings and ints: no cycles to check).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


class EventData(BaseModel):
    """``data`` of a canonical event."""

    model_config = ConfigDict(frozen=True, extra="allow")

    provider: str
    channel: str
    merchant_id: str
    order_id: str | None = None
    transaction_id: str | None = None
    amount: int | None = None
    currency: str = "CNY"
    paid_at: str | None = None
    payer_id: str | None = None
    refund_id: str | None = None
    refund_amount: int | None = None
    refunded_total: int | None = None
    status: str | None = None
    sub_merchant_id: str | None = None
    combine_order_id: str | None = None
    source: str = "callback"
    raw: dict[str, Any] = {}


class Event(BaseModel):
    """A canonical event as subscribers (and in-process handlers) receive it."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    created_at: str
    data: EventData

    @classmethod
    def from_body(cls, body: bytes | str | Mapping[str, Any]) -> Event:
        """Parse the wire body."""
        if isinstance(body, Mapping):
            return cls.model_validate(body)
        return cls.model_validate_json(body)
