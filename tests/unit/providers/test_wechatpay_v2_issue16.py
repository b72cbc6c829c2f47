"""WeChat Pay v2 regressions of issues 14 and 16: pinned sign type, no sign in raw, the
provider's currency, partner sub-merchants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payhook.errors import ConfigurationError, NotificationError, SignatureError
from payhook.providers import RawNotification
from payhook.providers._safe_xml import parse_flat_xml, render_flat_xml
from payhook.providers.wechatpay_v2 import (
    WechatPayV2Provider,
    WechatPayV2Simulator,
    encrypt_req_info,
    wechat_v2_sign,
)
from payhook.providers.wechatpay_v2._settings import WechatPayV2Channel

MCH_ID = "1900000109"
APP_ID = "wx2421b1c4370ec43b"
API_KEY = "192006250b4c09247ec02edce69f6a2d"
NOW = datetime(2024, 5, 20, 5, 14, 5, tzinfo=UTC)


def _provider(**kwargs: object) -> WechatPayV2Provider:
    return WechatPayV2Provider(
        channel="v2",
        mch_id=MCH_ID,
        app_id=APP_ID,
        api_key=API_KEY,
        **kwargs,  # type: ignore[arg-type]
    )


def _raw(body: bytes) -> RawNotification:
    return RawNotification(channel="v2", headers={}, body=body, received_at=NOW)


def _paid_fields(sign_type: str = "MD5") -> dict[str, str]:
    simulator = WechatPayV2Simulator(
        mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY, sign_type=sign_type
    )
    callback = simulator.build(
        order_id="ORDER-1", amount=100, event="paid", refund_amount=None, now=NOW
    )
    return parse_flat_xml(callback.body)


def _resigned(fields: dict[str, str], algorithm: str = "MD5", **changes: str) -> bytes:
    fields = {**fields, **changes}
    fields.pop("sign", None)
    fields["sign"] = wechat_v2_sign(fields, API_KEY, algorithm)
    return render_flat_xml(fields)


@pytest.mark.parametrize(
    ("signed_with", "channel_type"),
    [("MD5", "HMAC-SHA256"), ("HMAC-SHA256", "MD5")],
    ids=["md5_on_hmac_channel", "hmac_on_md5_channel"],
)
def test_the_other_algorithm_is_refused(signed_with: str, channel_type: str) -> None:
    """Issue 16 item 5: a genuinely signed notification naming the other algorithm is refused."""
    fields = _paid_fields(signed_with)
    body = _resigned(fields, signed_with, sign_type=signed_with)
    assert _provider(sign_type=signed_with).verify(_raw(body)).events
    with pytest.raises(SignatureError) as caught:
        _provider(sign_type=channel_type).verify(_raw(body))
    assert caught.value.reason == "sign_type_not_allowed"


def test_md5_sign_without_sign_type_is_refused_on_an_hmac_channel() -> None:
    """Without sign_type the channel's algorithm is used, not a guess from the sign's length."""
    body = _resigned(_paid_fields())
    assert "sign_type" not in parse_flat_xml(body)
    assert _provider().verify(_raw(body)).events
    with pytest.raises(SignatureError) as caught:
        _provider(sign_type="HMAC-SHA256").verify(_raw(body))
    assert caught.value.reason == "bad_signature"


def test_unknown_sign_type_setting_is_a_configuration_error() -> None:
    """Only MD5 and HMAC-SHA256 can be configured."""
    with pytest.raises(ConfigurationError, match="sign_type"):
        _provider(sign_type="SHA1")


def test_raw_never_carries_the_sign() -> None:
    """Issue 16 item 9: data.raw of a v2 payment holds every field but the provider's sign."""
    fields = _paid_fields("HMAC-SHA256")
    (draft,) = _provider(sign_type="HMAC-SHA256").verify(_raw(render_flat_xml(fields))).events
    assert "sign" not in draft.raw
    assert fields["sign"] not in str(draft.raw)
    assert draft.raw == {k: v for k, v in fields.items() if k != "sign"}


@pytest.mark.parametrize(("fee_type", "currency"), [("USD", "USD"), ("HKD", "HKD"), ("", "CNY")])
def test_payment_currency_is_fee_type(fee_type: str, currency: str) -> None:
    """Issue 14: a USD payment is published as USD; an absent fee_type means CNY."""
    fields = _paid_fields()
    fields.pop("fee_type")
    body = _resigned(fields, **({"fee_type": fee_type} if fee_type else {}))
    (draft,) = _provider().verify(_raw(body)).events
    assert draft.currency == currency


def test_failed_payment_currency_is_fee_type() -> None:
    """A failed payment carries its fee_type too."""
    body = _resigned(_paid_fields(), result_code="FAIL", err_code="X", fee_type="USD")
    (draft,) = _provider().verify(_raw(body)).events
    assert draft.currency == "USD"


@pytest.mark.parametrize("fee_type", ["usd", "US", "US D", "CNY1"])
def test_malformed_fee_type_is_refused(fee_type: str) -> None:
    """A fee_type that is not an ISO 4217 code is malformed, never published as is."""
    body = _resigned(_paid_fields(), fee_type=fee_type)
    with pytest.raises(NotificationError) as caught:
        _provider().verify(_raw(body))
    assert caught.value.reason == "malformed"


def _refund_body(info_extra: dict[str, str], outer_extra: dict[str, str]) -> bytes:
    info = {
        "out_refund_no": "RF1",
        "out_trade_no": "ORDER-1",
        "refund_fee": "50",
        "refund_id": "50000001",
        "refund_status": "SUCCESS",
        "total_fee": "100",
        "transaction_id": "4200000001",
        **info_extra,
    }
    req_info = encrypt_req_info(render_flat_xml(info, root="root"), API_KEY)
    outer = {
        "return_code": "SUCCESS",
        "appid": APP_ID,
        "mch_id": MCH_ID,
        "nonce_str": "n",
        **outer_extra,
        "req_info": req_info,
    }
    return render_flat_xml(outer)


@pytest.mark.parametrize(
    ("info_extra", "outer_extra", "currency"),
    [({}, {}, "CNY"), ({"fee_type": "USD"}, {}, "USD"), ({}, {"fee_type": "HKD"}, "HKD")],
    ids=["default", "in_req_info", "outer"],
)
def test_refund_currency(
    info_extra: dict[str, str], outer_extra: dict[str, str], currency: str
) -> None:
    """A refund carries the provider's fee_type when it has one, else CNY."""
    (draft,) = _provider().verify(_raw(_refund_body(info_extra, outer_extra))).events
    assert draft.currency == currency


def test_sub_merchant_id_is_sub_mch_id() -> None:
    """Partner notifications carry sub_mch_id as data.sub_merchant_id; others null."""
    (direct,) = _provider().verify(_raw(_resigned(_paid_fields()))).events
    assert direct.sub_merchant_id is None
    body = _resigned(_paid_fields(), sub_mch_id="1900000200")
    (partner,) = _provider().verify(_raw(body)).events
    assert (partner.merchant_id, partner.sub_merchant_id) == (MCH_ID, "1900000200")
    (refund,) = _provider().verify(_raw(_refund_body({}, {"sub_mch_id": "1900000200"}))).events
    assert refund.sub_merchant_id == "1900000200"


def test_sub_merchant_ids_refuse_other_sub_merchants() -> None:
    """With sub_merchant_ids set, another sub_mch_id is refused like a wrong merchant."""
    provider = _provider(sub_merchant_ids=("1900000200",))
    assert provider.verify(_raw(_resigned(_paid_fields(), sub_mch_id="1900000200"))).events
    for body in (
        _resigned(_paid_fields(), sub_mch_id="1900000300"),
        _refund_body({}, {"sub_mch_id": "1900000300"}),
    ):
        with pytest.raises(NotificationError) as caught:
            provider.verify(_raw(body))
        assert caught.value.reason == "wrong_merchant"


def test_channel_settings_keys() -> None:
    """sign_type defaults to MD5; HMAC-SHA256 is the only alternative; simulate follows it."""
    base = {"name": "v2", "provider": "wechatpay_v2", "mch_id": MCH_ID, "api_key": API_KEY}
    channel = WechatPayV2Channel.model_validate(base)
    assert (channel.sign_type, channel.sub_merchant_ids) == ("MD5", None)
    hmac_channel = WechatPayV2Channel.model_validate(
        {**base, "sign_type": "HMAC-SHA256", "sub_merchant_ids": ["1"]}
    )
    assert "sign_type HMAC-SHA256" in hmac_channel.summary()
    assert "1 sub-merchant(s)" in hmac_channel.summary()
    for bad in ({"sign_type": "SHA1"}, {"sub_merchant_ids": []}, {"sign_types": ["MD5"]}):
        with pytest.raises(ValueError, match=r"sign_type|sub_merchant_ids"):
            WechatPayV2Channel.model_validate({**base, **bad})
