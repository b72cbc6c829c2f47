"""WeChat Pay v3 regressions of issue 16: combined orders (合单), partner sub-merchants and
the provider's currency."""

from __future__ import annotations

import json
from typing import Any

import pytest

from payhook.errors import NotificationError
from payhook.events import EventType, render_event
from payhook.providers.wechatpay_v3 import WechatPayV3Provider, WechatPayV3Simulator
from payhook.providers.wechatpay_v3._settings import WechatPayV3Channel
from tests.unit.providers._wechat_v3_support import (
    API_V3_KEY,
    APP_ID,
    MCH_ID,
    PUB_KEY_ID,
    clock_at,
    encrypted_envelope,
    provider,
    raw,
    sign_headers,
    vectors,
    wechat_private_key,
)

TX = vectors()["synthetic"]["wechat_v3_transaction_success"]
REFUND = vectors()["synthetic"]["wechat_v3_refund_success"]
TX_TS = int(TX["headers"]["Wechatpay-Timestamp"])
CLOCK = clock_at(TX_TS)
PAID: dict[str, Any] = json.loads(TX["decrypted_resource"])
REFUNDED: dict[str, Any] = json.loads(REFUND["decrypted_resource"])


def _sub_order(n: int, **changes: Any) -> dict[str, Any]:
    sub: dict[str, Any] = {
        "mchid": f"190000010{n}",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "bank_type": "CMC",
        "attach": "",
        "success_time": "2024-05-20T13:14:05+08:00",
        "transaction_id": f"420000000020240520000000000{n}",
        "out_trade_no": f"SUB-{n}",
        "amount": {
            "total_amount": 100 * n,
            "currency": "CNY",
            "payer_amount": 100 * n,
            "payer_currency": "CNY",
        },
    }
    sub.update(changes)
    return sub


def _combined(*subs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A combined-order resource shaped as in WeChat Pay's 合单支付通知."""
    resource: dict[str, Any] = {
        "combine_appid": APP_ID,
        "combine_mchid": MCH_ID,
        "combine_out_trade_no": "COMBINE-1",
        "scene_info": {"device_id": "POS1:123"},
        "sub_orders": list(subs) or [_sub_order(1), _sub_order(2)],
        "combine_payer_info": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    }
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def _verify(
    resource: dict[str, Any],
    event_type: str = "TRANSACTION.SUCCESS",
    p: WechatPayV3Provider | None = None,
    **kwargs: Any,
) -> Any:
    body = encrypted_envelope(event_type, resource, **kwargs)
    headers = sign_headers(body, timestamp=TX_TS, serial=PUB_KEY_ID)
    return (p or provider(CLOCK)).verify(raw(headers, body, CLOCK))


def test_combined_order_is_one_paid_event_per_sub_order() -> None:
    """Issue 16 item 2: a combined order is no longer refused as wrong_merchant; each
    successful sub-order becomes its own payment.order.paid."""
    parsed = _verify(_combined())
    assert parsed.order_id == "COMBINE-1"
    first, second = parsed.events
    for n, draft in ((1, first), (2, second)):
        assert draft.type is EventType.ORDER_PAID
        assert draft.order_id == f"SUB-{n}"
        assert draft.transaction_id == f"420000000020240520000000000{n}"
        assert draft.amount == 100 * n
        assert draft.currency == "CNY"
        assert draft.merchant_id == f"190000010{n}"
        assert draft.combine_order_id == "COMBINE-1"
        assert draft.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
        assert draft.sub_merchant_id is None
        assert (
            draft.key == f"wechatpay:{draft.merchant_id}:{draft.transaction_id}:payment.order.paid"
        )
    assert first.key != second.key


def test_combined_order_retry_has_the_same_event_keys() -> None:
    """A retry in another envelope maps to the same per-sub-order identities."""
    first = _verify(_combined(), event_id="EV-1").events
    again = _verify(_combined(), event_id="EV-2").events
    assert [d.key for d in first] == [d.key for d in again]


def test_only_successful_sub_orders_are_published() -> None:
    """Sub-orders in another state are skipped; none successful is inconsistent."""
    parsed = _verify(_combined(_sub_order(1), _sub_order(2, trade_state="CLOSED")))
    assert [d.order_id for d in parsed.events] == ["SUB-1"]
    with pytest.raises(NotificationError) as caught:
        _verify(_combined(_sub_order(1, trade_state="NOTPAY")))
    assert caught.value.reason == "inconsistent_state"


def test_combined_order_currency_and_partner_sub_merchant() -> None:
    """A sub-order carries its own currency and partner sub_mchid."""
    usd = _sub_order(1, sub_mchid="1900000999")
    usd["amount"] = {"total_amount": 250, "currency": "USD"}
    (draft,) = _verify(_combined(usd)).events
    assert (draft.amount, draft.currency, draft.sub_merchant_id) == (250, "USD", "1900000999")


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (_combined(combine_mchid="1900000000"), "wrong_merchant"),
        (_combined(combine_appid="wx-other"), "wrong_merchant"),
        (_combined(combine_appid=None), "wrong_merchant"),
        (_combined(combine_out_trade_no=None), "missing_field"),
        (_combined(sub_orders=[]), "malformed"),
        (_combined(sub_orders={"a": 1}), "malformed"),
        (_combined(sub_orders=["x"]), "malformed"),
        (_combined(_sub_order(1), _sub_order(1)), "malformed"),
        (_combined(_sub_order(1, mchid=None)), "missing_field"),
        (_combined(_sub_order(1, transaction_id="")), "missing_field"),
        (_combined(_sub_order(1, out_trade_no=None)), "missing_field"),
        (_combined(_sub_order(1, amount={"total": 100})), "bad_amount"),
        (_combined(_sub_order(1, amount={"total_amount": 1, "currency": "cny"})), "malformed"),
        (_combined(_sub_order(1, success_time="yesterday")), "bad_time"),
        (_combined(_sub_order(1, sub_mchid=7)), "malformed"),
    ],
    ids=[
        "other_combine_mchid",
        "other_combine_appid",
        "no_combine_appid",
        "no_combine_out_trade_no",
        "empty_sub_orders",
        "sub_orders_not_list",
        "sub_order_not_object",
        "duplicate_sub_order",
        "sub_order_without_mchid",
        "sub_order_without_transaction_id",
        "sub_order_without_out_trade_no",
        "sub_order_total_not_total_amount",
        "sub_order_bad_currency",
        "sub_order_bad_time",
        "sub_mchid_not_text",
    ],
)
def test_malformed_combined_orders_are_refused(resource: dict[str, Any], reason: str) -> None:
    """A combined order for another merchant or with bad fields is refused, never mapped."""
    with pytest.raises(NotificationError) as caught:
        _verify(resource)
    assert caught.value.reason == reason


def test_combined_order_event_json() -> None:
    """The published JSON carries combine_order_id, sub_merchant_id and source."""
    (draft, _) = _verify(_combined()).events
    body = json.loads(render_event(draft, event_id="evt_1", channel="wx", created_at=CLOCK.now()))
    data = body["data"]
    assert data["combine_order_id"] == "COMBINE-1"
    assert data["sub_merchant_id"] is None
    assert data["source"] == "callback"
    assert list(data)[-5:] == ["status", "sub_merchant_id", "combine_order_id", "source", "raw"]


def _partner(resource: dict[str, Any], sub_mchid: str = "1900000109") -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("mchid", "appid")}
    return {**out, "sp_mchid": MCH_ID, "sp_appid": APP_ID, "sub_mchid": sub_mchid}


@pytest.mark.parametrize(
    ("resource", "event_type"),
    [(PAID, "TRANSACTION.SUCCESS"), (REFUNDED, "REFUND.SUCCESS")],
    ids=["paid", "refund"],
)
def test_partner_sub_merchant_id(resource: dict[str, Any], event_type: str) -> None:
    """Issue 16 item 3: partner callbacks carry sub_mchid as data.sub_merchant_id."""
    (direct,) = _verify(resource, event_type).events
    assert direct.sub_merchant_id is None
    (partner,) = _verify(_partner(resource), event_type).events
    assert (partner.merchant_id, partner.sub_merchant_id) == (MCH_ID, "1900000109")


@pytest.mark.parametrize(
    ("resource", "event_type"),
    [
        (_partner(PAID, "1900000555"), "TRANSACTION.SUCCESS"),
        (_partner(REFUNDED, "1900000555"), "REFUND.SUCCESS"),
        (_combined(_sub_order(1, sub_mchid="1900000555")), "TRANSACTION.SUCCESS"),
    ],
    ids=["paid", "refund", "combined"],
)
def test_sub_merchant_ids_refuse_other_sub_merchants(
    resource: dict[str, Any], event_type: str
) -> None:
    """With sub_merchant_ids set, another sub-merchant is refused like a wrong merchant."""
    p = provider(CLOCK, sub_merchant_ids=("1900000109",))
    with pytest.raises(NotificationError) as caught:
        _verify(resource, event_type, p)
    assert caught.value.reason == "wrong_merchant"
    assert _verify(_partner(PAID), p=p).events
    assert _verify(PAID, p=p).events  # a direct payment of the partner itself


def test_v3_currency_is_the_providers() -> None:
    """Issue 14 check: v3 carries amount.currency on payments and refunds."""
    paid = {**PAID, "amount": {**PAID["amount"], "currency": "USD"}}
    (draft,) = _verify(paid).events
    assert draft.currency == "USD"
    refunded = {**REFUNDED, "amount": {**REFUNDED["amount"], "currency": "HKD"}}
    (refund,) = _verify(refunded, "REFUND.SUCCESS").events
    assert refund.currency == "HKD"


def test_channel_settings_key() -> None:
    """sub_merchant_ids is optional and must not be empty."""
    base = {
        "name": "wx",
        "provider": "wechatpay_v3",
        "mch_id": MCH_ID,
        "api_v3_key": API_V3_KEY.decode(),
        "platform_certificates": ["x"],
    }
    assert WechatPayV3Channel.model_validate(base).sub_merchant_ids is None
    channel = WechatPayV3Channel.model_validate({**base, "sub_merchant_ids": ["1", "2"]})
    assert "2 sub-merchant(s)" in channel.summary()
    with pytest.raises(ValueError, match="sub_merchant_ids"):
        WechatPayV3Channel.model_validate({**base, "sub_merchant_ids": []})


def _simulator(app_id: str | None = APP_ID) -> WechatPayV3Simulator:
    return WechatPayV3Simulator(
        mch_id=MCH_ID,
        app_id=app_id,
        api_v3_key=API_V3_KEY,
        private_key=wechat_private_key(),
        serial=PUB_KEY_ID,
    )


@pytest.mark.parametrize("app_id", [APP_ID, None], ids=["with_appid", "without_appid"])
def test_simulated_combined_order_is_two_paid_sub_orders(app_id: str | None) -> None:
    """payhook simulate --event combined builds a 合单 callback of two sub-orders."""
    callback = _simulator(app_id).build(
        order_id="C-1", amount=301, event="combined", refund_amount=None, now=CLOCK.now()
    )
    parsed = provider(CLOCK, app_id=app_id).verify(
        raw(dict(callback.headers), callback.body, CLOCK)
    )
    assert parsed.order_id == "C-1"
    assert [(d.order_id, d.amount, d.combine_order_id) for d in parsed.events] == [
        ("C-1-1", 150, "C-1"),
        ("C-1-2", 151, "C-1"),
    ]
    again = _simulator(app_id).build(
        order_id="C-1", amount=301, event="combined", refund_amount=None, now=CLOCK.now()
    )
    second = provider(CLOCK, app_id=app_id).verify(raw(dict(again.headers), again.body, CLOCK))
    assert [d.key for d in second.events] == [d.key for d in parsed.events]


def test_simulated_combined_order_needs_two_fen() -> None:
    """Two sub-orders need at least one fen each."""
    with pytest.raises(ValueError, match="at least 2 fen"):
        _simulator().build(
            order_id="C", amount=1, event="combined", refund_amount=None, now=CLOCK.now()
        )
