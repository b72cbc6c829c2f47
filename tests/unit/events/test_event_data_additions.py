"""Contract §9 event data additions: sub_merchant_id, combine_order_id and source."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from payhook.events import Event, EventDraft, EventType, render_event

CREATED = datetime(2026, 11, 28, 1, 2, 3, 456000, tzinfo=UTC)


def _draft(**changes: object) -> EventDraft:
    fields: dict[str, object] = {
        "type": EventType.ORDER_PAID,
        "key": "wechatpay:1:2:payment.order.paid",
        "provider": "wechatpay",
        "merchant_id": "1900000109",
        "order_id": "SUB-1",
        "transaction_id": "4200",
        "amount": 100,
        **changes,
    }
    return EventDraft(**fields)  # type: ignore[arg-type]


def _data(draft: EventDraft) -> dict[str, object]:
    body = json.loads(render_event(draft, event_id="evt_1", channel="wx", created_at=CREATED))
    data: dict[str, object] = body["data"]
    return data


def test_defaults_are_null_and_callback() -> None:
    """Without partner or combined facts the new fields are null and source is callback."""
    data = _data(_draft())
    assert data["sub_merchant_id"] is None
    assert data["combine_order_id"] is None
    assert data["source"] == "callback"


def test_field_order_keeps_existing_fields_first() -> None:
    """The existing fields keep their order; the additions follow status, raw stays last."""
    data = _data(_draft(provider_event_type="COUPON.USE"))
    assert list(data) == [
        "provider",
        "channel",
        "merchant_id",
        "order_id",
        "transaction_id",
        "amount",
        "currency",
        "paid_at",
        "payer_id",
        "refund_id",
        "refund_amount",
        "refunded_total",
        "status",
        "sub_merchant_id",
        "combine_order_id",
        "source",
        "provider_event_type",
        "raw",
    ]


def test_values_round_trip_through_the_event_model() -> None:
    """Event.from_body reads the additions back."""
    draft = _draft(sub_merchant_id="1900000999", combine_order_id="C-1", source="query")
    body = render_event(draft, event_id="evt_1", channel="wx", created_at=CREATED)
    event = Event.from_body(body)
    assert event.data.sub_merchant_id == "1900000999"
    assert event.data.combine_order_id == "C-1"
    assert event.data.source == "query"


def test_bodies_without_the_additions_still_parse() -> None:
    """Events stored before the additions parse with the defaults."""
    body = {
        "id": "evt_1",
        "type": "payment.order.paid",
        "created_at": "2026-11-28T01:02:03.456Z",
        "data": {"provider": "alipay", "channel": "a", "merchant_id": "1"},
    }
    event = Event.from_body(body)
    assert (event.data.sub_merchant_id, event.data.combine_order_id) == (None, None)
    assert event.data.source == "callback"
