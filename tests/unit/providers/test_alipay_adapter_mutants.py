"""Fixed examples for the Alipay adapter, from the mutation run (issue 14): which fields make a
refund, the empty-value signing convention, and the exact verdicts of the merchant checks."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from payhook.errors import NotificationError, SignatureError
from payhook.events import EventType
from payhook.providers import ParsedNotification, RawNotification
from payhook.providers.alipay import AlipayProvider, sign_notification
from payhook.providers.alipay._form import encode_form
from payhook.signing import key_fingerprint, load_rsa_private_key, load_rsa_public_key, rsa_sign

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
TEST_PRIVATE = load_rsa_private_key((VECTORS / "test_alipay_private.pem").read_bytes())
TEST_PUBLIC = load_rsa_public_key((VECTORS / "test_alipay_public.pem").read_bytes())
APP_ID = "2021000122672388"
SELLER = "2088721003236442"
NOW = datetime(2024, 5, 20, 5, 14, 6, tzinfo=UTC)
TRADE = "2024052022001400001234567890"


def _fields(**changes: str | None) -> dict[str, str]:
    fields = {
        "notify_id": "N1",
        "notify_type": "trade_status_sync",
        "out_trade_no": "ORDER-1001",
        "total_amount": "88.88",
        "trade_status": "TRADE_SUCCESS",
        "trade_no": TRADE,
        "gmt_payment": "2024-05-20 13:14:05",
        "app_id": APP_ID,
        "seller_id": SELLER,
        "sign_type": "RSA2",
    }
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def _verify(body: bytes, **settings: object) -> ParsedNotification:
    provider = AlipayProvider(channel="alipay", app_id=APP_ID, public_key=TEST_PUBLIC, **settings)  # type: ignore[arg-type]
    return provider.verify(
        RawNotification(channel="alipay", headers={}, body=body, received_at=NOW)
    )


def _reason(body: bytes, **settings: object) -> str:
    with pytest.raises(NotificationError) as caught:
        _verify(body, **settings)
    return caught.value.reason


@pytest.mark.parametrize("field", ["refund_fee", "gmt_refund", "out_biz_no"])
def test_any_one_refund_field_makes_a_refund(field: str) -> None:
    """Each refund field alone marks the notification as a refund, which then needs
    refund_fee and out_biz_no: a paid event is never published for it."""
    value = {"refund_fee": "1.00", "gmt_refund": "2024-05-21 10:00:00", "out_biz_no": "R-1"}
    body = sign_notification(_fields(**{field: value[field]}), TEST_PRIVATE)
    assert _reason(body) == "missing_field"


def test_refund_needs_both_its_amount_and_its_id() -> None:
    """refund_fee and out_biz_no together make the refund event."""
    body = sign_notification(_fields(refund_fee="1.00", out_biz_no="R-1"), TEST_PRIVATE)
    (event,) = _verify(body).events
    assert (event.type, event.key) == (
        EventType.REFUND_SUCCEEDED,
        f"alipay:{APP_ID}:{TRADE}:refund:R-1:100",
    )


def test_a_form_of_empty_values_signed_without_them_verifies() -> None:
    """When every signed value is empty, the drop-empty convention signs the empty string;
    that signature verifies, and the notification is then refused for its missing fields."""
    sign = base64.b64encode(rsa_sign(TEST_PRIVATE, b"", digest="sha256")).decode()
    body = encode_form([("app_id", ""), ("sign_type", "RSA2"), ("sign", sign)], "utf-8")
    with pytest.raises(NotificationError) as caught:
        _verify(body)
    assert caught.value.reason == "missing_field"
    # The same signature over a form with a non-empty value does not verify.
    other = encode_form([("app_id", "x"), ("sign_type", "RSA2"), ("sign", sign)], "utf-8")
    with pytest.raises(SignatureError) as refused:
        _verify(other)
    assert refused.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("changes", "settings", "verdict"),
    [
        ({"seller_id": "2088000000000001"}, {"seller_id": SELLER}, "wrong_seller"),
        ({"seller_id": None}, {"seller_id": SELLER}, "wrong_seller"),
        ({"seller_id": None, "trade_status": None, "notify_type": "fund_auth_freeze"},
         {"seller_id": SELLER}, None),
        ({"seller_id": "2088000000000001", "trade_status": None, "notify_type": "x_sync"},
         {"seller_id": SELLER}, "wrong_seller"),
        ({"seller_id": None, "notify_type": "other_sync"}, {"seller_id": SELLER}, None),
        ({"seller_id": None, "notify_type": None}, {"seller_id": SELLER}, "wrong_seller"),
        ({"app_id": "2021000000000001"}, {}, "wrong_app_id"),
        ({"app_id": None}, {}, "missing_field"),
        ({"notify_id": None}, {}, "missing_field"),
        ({"auth_app_id": "2021000000000009"}, {"sub_merchant_ids": ["2021000000000008"]},
         "wrong_merchant"),
        ({"auth_app_id": "2021000000000008"}, {"sub_merchant_ids": ["2021000000000008"]}, None),
        ({"auth_app_id": APP_ID}, {"sub_merchant_ids": ["2021000000000008"]}, None),
        ({"auth_app_id": ""}, {"sub_merchant_ids": ["2021000000000008"]}, None),
        ({"auth_app_id": "2021000000000009"}, {}, None),
        ({"trade_no": None}, {}, "missing_field"),
        ({"out_trade_no": None}, {}, "missing_field"),
        ({"total_amount": None}, {}, "missing_field"),
        ({"gmt_payment": None, "trade_status": "TRADE_FINISHED"}, {}, "missing_field"),
        ({"gmt_payment": None, "trade_status": "TRADE_CLOSED"}, {}, None),
    ],
    ids=[
        "other-seller", "no-seller-on-a-trade", "no-seller-elsewhere",
        "other-seller-elsewhere", "no-seller-other-type-with-status",
        "no-seller-no-type", "other-app", "no-app", "no-notify-id", "unlisted-sub-merchant",
        "listed-sub-merchant", "auth-app-is-the-app", "empty-auth-app", "unrestricted",
        "no-trade-no", "no-order", "no-amount", "finished-without-gmt-payment",
        "closed-without-gmt-payment",
    ],
)  # fmt: skip
def test_merchant_and_field_verdicts(
    changes: dict[str, str | None], settings: dict[str, object], verdict: str | None
) -> None:
    """The exact reason for each merchant or field problem; None means accepted."""
    body = sign_notification(_fields(**changes), TEST_PRIVATE)
    if verdict is None:
        assert _verify(body, **settings).events
    else:
        assert _reason(body, **settings) == verdict


@pytest.mark.parametrize(
    ("auth_app_id", "sub_merchant"),
    [("2021000000000008", "2021000000000008"), (APP_ID, None), ("", None), (None, None)],
    ids=["partner", "self", "empty", "absent"],
)
def test_sub_merchant_is_the_authorising_app(
    auth_app_id: str | None, sub_merchant: str | None
) -> None:
    """Every event names the authorising app when it is not the channel's own."""
    changes = {"auth_app_id": auth_app_id, "trade_status": "TRADE_CLOSED"}
    body = sign_notification(_fields(refund_fee="88.88", out_biz_no="R-9", **changes), TEST_PRIVATE)
    events = _verify(body).events
    assert [e.type for e in events] == [EventType.REFUND_SUCCEEDED, EventType.ORDER_CLOSED]
    assert [e.sub_merchant_id for e in events] == [sub_merchant, sub_merchant]


@pytest.mark.parametrize(
    ("changes", "kind", "order", "trade", "amount", "payer"),
    [
        ({"trade_status": "WAIT_BUYER_PAY"}, "WAIT_BUYER_PAY", "ORDER-1001", TRADE, 8888, None),
        ({"trade_status": None, "notify_type": "fund_auth_freeze", "out_trade_no": ""},
         "fund_auth_freeze", None, TRADE, 8888, None),
        ({"trade_status": None, "notify_type": None, "trade_no": None, "total_amount": "x"},
         "unknown", "ORDER-1001", None, None, None),
        ({"trade_status": "TRADE_SUCCESS", "notify_type": "other_sync", "buyer_open_id": "o-1"},
         "other_sync", "ORDER-1001", TRADE, 8888, "o-1"),
        ({"trade_status": "TRADE_SUCCESS", "notify_type": "", "gmt_payment": "bad"},
         "TRADE_SUCCESS", "ORDER-1001", TRADE, 8888, None),
    ],
    ids=["wait-buyer-pay", "other-type", "nothing", "other-type-with-status", "empty-type"],
)  # fmt: skip
def test_received_event_fields(
    changes: dict[str, str | None],
    kind: str,
    order: str | None,
    trade: str | None,
    amount: int | None,
    payer: str | None,
) -> None:
    """Every field of a ``notification.received`` event."""
    parsed = _verify(sign_notification(_fields(**changes), TEST_PRIVATE))
    (event,) = parsed.events
    assert parsed.notification_id == "N1"
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.key == f"alipay:{APP_ID}:notification:N1"
    assert (event.provider, event.merchant_id) == ("alipay", APP_ID)
    assert event.provider_event_type == kind
    assert (event.order_id, event.transaction_id, event.amount) == (order, trade, amount)
    assert event.payer_id == payer
    assert event.paid_at is None or changes.get("gmt_payment") is None
    assert "sign" not in event.raw
    assert event.raw["sign_type"] == "RSA2"


def test_a_cert_sn_mismatch_is_logged_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    """The warning carries both SNs, the notify_id and the channel."""
    body = sign_notification(_fields(alipay_cert_sn="b" * 32), TEST_PRIVATE)
    with caplog.at_level(logging.WARNING, logger="payhook.providers.alipay"):
        assert _verify(body, alipay_cert_sn="a" * 32).events
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("payhook.providers.alipay", logging.WARNING)
    assert record.getMessage() == (
        "An Alipay notification names a certificate other than the configured one; "
        "Alipay may have rotated its certificate: download the new one."
    )
    fields = ("action", "provider", "channel", "notify_id", "alipay_cert_sn",
              "configured_alipay_cert_sn")  # fmt: skip
    assert {name: record.__dict__[name] for name in fields} == {
        "action": "alipay_cert_sn_mismatch",
        "provider": "alipay",
        "channel": "alipay",
        "notify_id": "N1",
        "alipay_cert_sn": "b" * 32,
        "configured_alipay_cert_sn": "a" * 32,
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"total_amount": "1.234"}, "total_amount"),
     ({"refund_fee": "-1", "out_biz_no": "R-1"}, "refund_fee"),
     ({"gmt_payment": "yesterday"}, "gmt_payment")],
    ids=["total-amount", "refund-fee", "gmt-payment"],
)  # fmt: skip
def test_a_bad_value_is_named_in_the_refusal(changes: dict[str, str], field: str) -> None:
    """The refusal names the field at fault (never its value)."""
    body = sign_notification(_fields(**changes), TEST_PRIVATE)
    with pytest.raises(NotificationError) as caught:
        _verify(body)
    assert caught.value.reason in ("bad_amount", "bad_time")
    assert str(caught.value).startswith(f"{field} is not a valid ")
    assert changes[field] not in str(caught.value)


def test_received_event_keeps_a_valid_payment_time() -> None:
    """An unmodelled notification keeps gmt_payment when it parses (Beijing time)."""
    body = sign_notification(_fields(trade_status="WAIT_BUYER_PAY"), TEST_PRIVATE)
    (event,) = _verify(body).events
    assert event.paid_at is not None
    assert event.paid_at.isoformat() == "2024-05-20T13:14:05+08:00"


# A key the channel verifies with that did not sign the notification.
OTHER_PUBLIC = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


@pytest.mark.parametrize(
    ("cert_sn", "key_name"),
    [(None, "alipay_public_key"), ("0123456789abcdef0123456789abcdef", "alipay_public_cert")],
    ids=["public-key-mode", "certificate-mode"],
)
def test_bad_signature_hint_names_the_key_setting_and_fingerprint(
    cert_sn: str | None, key_name: str
) -> None:
    """The log hint of a signature that does not match names the setting the channel verifies
    with (public key or certificate), its fingerprint and the documented fix."""
    fields = _fields() if cert_sn is None else {**_fields(), "alipay_cert_sn": cert_sn}
    body = sign_notification(fields, TEST_PRIVATE)
    provider = AlipayProvider(
        channel="alipay", app_id=APP_ID, public_key=OTHER_PUBLIC, alipay_cert_sn=cert_sn
    )
    with pytest.raises(SignatureError) as caught:
        provider.verify(RawNotification(channel="alipay", headers={}, body=body, received_at=NOW))
    assert caught.value.reason == "bad_signature"
    assert caught.value.hint == (
        f"channel alipay verifies with {key_name} {key_fingerprint(OTHER_PUBLIC)}; "
        "if genuine callbacks are refused like this, that key is wrong: see "
        "docs/configuration.md#wrong-public-key"
    )
