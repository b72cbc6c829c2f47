"""Fixed examples for the WeChat Pay v2 adapter, from the mutation run (issue 14): exact
verdicts and exact reply bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payhook.errors import NotificationError, SignatureError
from payhook.events import EventType
from payhook.providers import Outcome, ParsedNotification, RawNotification
from payhook.providers._safe_xml import render_flat_xml
from payhook.providers.wechatpay_v2 import WechatPayV2Provider, encrypt_req_info, wechat_v2_sign

API_KEY = "192006250b4c09247ec02edce69f6a2d"
MCH_ID = "10000100"
APP_ID = "wxd930ea5d5a258f4f"
NOW = datetime(2024, 5, 20, 5, 14, 6, tzinfo=UTC)


def _paid(**changes: str | None) -> dict[str, str]:
    fields = {
        "appid": APP_ID,
        "mch_id": MCH_ID,
        "nonce_str": "ibuaiVcKdpRxkhJA",
        "openid": "o-1",
        "out_trade_no": "O-1",
        "result_code": "SUCCESS",
        "return_code": "SUCCESS",
        "time_end": "20240520131405",
        "total_fee": "8888",
        "transaction_id": "T-1",
    }
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def _signed(fields: dict[str, str], sign_type: str = "MD5") -> bytes:
    return render_flat_xml({**fields, "sign": wechat_v2_sign(fields, API_KEY, sign_type)})


def _verify(body: bytes, **settings: object) -> ParsedNotification:
    settings.setdefault("app_id", APP_ID)
    provider = WechatPayV2Provider(channel="v2", mch_id=MCH_ID, api_key=API_KEY, **settings)  # type: ignore[arg-type]
    return provider.verify(RawNotification(channel="v2", headers={}, body=body, received_at=NOW))


def _refused(body: bytes, **settings: object) -> tuple[type[Exception], str]:
    with pytest.raises((NotificationError, SignatureError)) as caught:
        _verify(body, **settings)
    return type(caught.value), caught.value.reason


@pytest.mark.parametrize(
    ("fee_type", "verdict"),
    [("USD", None), ("", None), ("USD\n", "malformed"), ("usd", "malformed"), ("US", "malformed"),
     ("USDX", "malformed")],
    ids=["usd", "empty-is-cny", "trailing-newline", "lower-case", "two", "four"],
)  # fmt: skip
def test_fee_type(fee_type: str, verdict: str | None) -> None:
    """fee_type is three upper-case letters, nothing after them; empty means CNY."""
    body = _signed(_paid(fee_type=fee_type))
    if verdict is None:
        (event,) = _verify(body).events
        assert event.currency == (fee_type or "CNY")
    else:
        assert _refused(body) == (NotificationError, verdict)


@pytest.mark.parametrize(
    ("outcome", "status", "code", "message"),
    [
        (Outcome.ACCEPTED, 200, "SUCCESS", "OK"),
        (Outcome.REFUSED_AUTH, 400, "FAIL", "signature verification failed"),
        (Outcome.REFUSED_MALFORMED, 400, "FAIL", "malformed notification"),
        (Outcome.KEY_MISCONFIGURED, 500, "FAIL", "merchant key misconfigured"),
        (Outcome.STORAGE_UNAVAILABLE, 500, "FAIL", "temporarily unavailable, retry later"),
    ],
    ids=lambda v: str(v),
)
def test_reply_bodies_exactly(outcome: Outcome, status: int, code: str, message: str) -> None:
    """The byte-exact XML reply, its status and content type."""
    provider = WechatPayV2Provider(channel="v2", mch_id=MCH_ID, app_id=None, api_key=API_KEY)
    reply = provider.reply(outcome)
    assert (reply.status, reply.content_type) == (status, "text/xml; charset=utf-8")
    assert (
        reply.body
        == (
            f"<xml><return_code><![CDATA[{code}]]></return_code>"
            f"<return_msg><![CDATA[{message}]]></return_msg></xml>"
        ).encode()
    )
    given = provider.reply(outcome, "m" * 200)
    expected = "OK" if code == "SUCCESS" else "m" * 128
    assert f"<return_msg><![CDATA[{expected}]]></return_msg>".encode() in given.body


def test_payment_draft_fields() -> None:
    """Every field of a v2 payment draft."""
    parsed = _verify(_signed(_paid()))
    (event,) = parsed.events
    assert (parsed.notification_id, parsed.order_id) == (None, "O-1")
    assert event.type is EventType.ORDER_PAID
    assert event.key == f"wechatpay:{MCH_ID}:T-1:payment.order.paid"
    assert (event.provider, event.merchant_id, event.order_id) == ("wechatpay", MCH_ID, "O-1")
    assert (event.transaction_id, event.amount, event.currency) == ("T-1", 8888, "CNY")
    assert event.paid_at is not None
    assert event.paid_at.isoformat() == "2024-05-20T13:14:05+08:00"
    assert event.payer_id == "o-1"
    assert "sign" not in event.raw
    assert event.raw["nonce_str"] == "ibuaiVcKdpRxkhJA"


@pytest.mark.parametrize(
    ("changes", "payer"),
    [({}, "o-1"), ({"openid": "", "sub_openid": "s-1"}, "s-1"), ({"openid": None}, None)],
    ids=["openid", "sub-openid", "none"],
)
def test_payer(changes: dict[str, str | None], payer: str | None) -> None:
    """openid, else sub_openid, else none."""
    (event,) = _verify(_signed(_paid(**changes))).events
    assert event.payer_id == payer


@pytest.mark.parametrize(
    ("changes", "settings", "verdict"),
    [
        ({"return_code": "FAIL"}, {}, (NotificationError, "return_code_fail")),
        ({"return_code": None}, {}, (NotificationError, "return_code_fail")),
        ({"mch_id": "10000101"}, {}, (NotificationError, "wrong_merchant")),
        ({"appid": "wx0"}, {}, (NotificationError, "wrong_merchant")),
        ({"appid": "wx0"}, {"app_id": None}, None),
        ({"appid": "wx0"}, {"app_id": ""}, None),
        ({"sub_mch_id": "S-2"}, {"sub_merchant_ids": ["S-1"]}, (NotificationError, "wrong_merchant")),
        ({"sub_mch_id": "S-1"}, {"sub_merchant_ids": ["S-1"]}, None),
        ({"sub_mch_id": ""}, {"sub_merchant_ids": ["S-1"]}, None),
        ({"transaction_id": None}, {}, (NotificationError, "missing_field")),
        ({"out_trade_no": None}, {}, (NotificationError, "missing_field")),
        ({"total_fee": None}, {}, (NotificationError, "missing_field")),
        ({"time_end": None}, {}, None),
        ({"sign_type": "MD5"}, {}, None),
        ({"sign_type": "md5"}, {}, None),
        ({"sign_type": "HMAC-SHA256"}, {}, (SignatureError, "sign_type_not_allowed")),
        ({"sign_type": "SHA1"}, {}, (SignatureError, "bad_signature")),
    ],
    ids=[
        "return-fail", "no-return-code", "other-merchant", "other-app", "app-unchecked",
        "app-empty-unchecked", "unlisted-sub-merchant", "listed-sub-merchant",
        "empty-sub-merchant", "no-transaction", "no-order", "no-fee", "no-time",
        "md5-named", "md5-lower-case", "other-algorithm", "unknown-algorithm",
    ],
)  # fmt: skip
def test_payment_verdicts(
    changes: dict[str, str | None],
    settings: dict[str, object],
    verdict: tuple[type[Exception], str] | None,
) -> None:
    """The exact error and reason of each refusal; None means accepted."""
    body = _signed(_paid(**changes))
    if verdict is None:
        assert [e.type for e in _verify(body, **settings).events] == [EventType.ORDER_PAID]
    else:
        assert _refused(body, **settings) == verdict


def test_signature_verdicts() -> None:
    """A missing or empty sign, and a wrong one, in that order of checks."""
    fields = _paid()
    assert _refused(render_flat_xml(fields)) == (SignatureError, "missing_signature")
    assert _refused(render_flat_xml({**fields, "sign": ""})) == (
        SignatureError,
        "missing_signature",
    )
    wrong = wechat_v2_sign({**fields, "total_fee": "1"}, API_KEY)
    assert _refused(render_flat_xml({**fields, "sign": wrong})) == (SignatureError, "bad_signature")
    lower = wechat_v2_sign(fields, API_KEY).lower()
    assert _verify(render_flat_xml({**fields, "sign": lower})).events
    hmac_body = _signed(_paid(), "HMAC-SHA256")
    assert _verify(hmac_body, sign_type="HMAC-SHA256").events
    assert _refused(hmac_body) == (SignatureError, "bad_signature")


def _refund(info: dict[str, str], **outer: str) -> bytes:
    req_info = encrypt_req_info(render_flat_xml(info, root="root"), API_KEY)
    fields = {"return_code": "SUCCESS", "appid": APP_ID, "mch_id": MCH_ID, "req_info": req_info}
    return render_flat_xml({**fields, **outer})


INFO = {
    "out_refund_no": "R-1",
    "out_trade_no": "O-1",
    "transaction_id": "T-1",
    "refund_id": "RID-1",
    "refund_fee": "100",
    "total_fee": "8888",
    "refund_status": "SUCCESS",
}


@pytest.mark.parametrize(
    ("changes", "type_", "key", "status"),
    [
        ({}, EventType.REFUND_SUCCEEDED, "RID-1:payment.refund.succeeded", None),
        ({"refund_status": "CHANGE"}, EventType.REFUND_FAILED,
         "RID-1:payment.refund.failed:abnormal", "abnormal"),
        ({"refund_status": "REFUNDCLOSE"}, EventType.REFUND_FAILED,
         "RID-1:payment.refund.failed:closed", "closed"),
        ({"refund_id": ""}, EventType.REFUND_SUCCEEDED, "R-1:payment.refund.succeeded", None),
    ],
    ids=["success", "change", "closed", "no-refund-id"],
)  # fmt: skip
def test_refund_draft_fields(
    changes: dict[str, str], type_: EventType, key: str, status: str | None
) -> None:
    """Every field of a v2 refund draft."""
    parsed = _verify(_refund({**INFO, **changes}))
    (event,) = parsed.events
    assert parsed.order_id == "O-1"
    assert event.type is type_
    assert event.key == f"wechatpay:{MCH_ID}:{key}"
    assert (event.merchant_id, event.order_id, event.transaction_id) == (MCH_ID, "O-1", "T-1")
    assert (event.amount, event.currency, event.refund_id, event.refund_amount) == (
        8888,
        "CNY",
        "R-1",
        100,
    )
    assert event.status == status
    assert event.raw["req_info"] == {k: v for k, v in {**INFO, **changes}.items()}


@pytest.mark.parametrize(
    ("info", "outer", "currency"),
    [({"fee_type": "USD"}, {}, "USD"), ({}, {"fee_type": "HKD"}, "HKD"),
     ({"fee_type": "USD"}, {"fee_type": "HKD"}, "USD"), ({}, {}, "CNY")],
    ids=["inner", "outer", "inner-wins", "default"],
)  # fmt: skip
def test_refund_currency(info: dict[str, str], outer: dict[str, str], currency: str) -> None:
    """The refund's currency is req_info's fee_type, else the outer one, else CNY."""
    (event,) = _verify(_refund({**INFO, **info}, **outer)).events
    assert event.currency == currency


@pytest.mark.parametrize(
    ("status", "kind", "subject"),
    [("", "REFUND.UNKNOWN", "RID-1"), ("PROCESSING", "REFUND.PROCESSING", "RID-1")],
    ids=["empty", "processing"],
)
def test_unmodelled_refund(status: str, kind: str, subject: str) -> None:
    """A refund status payhook does not model is passed on, keyed by the refund."""
    (event,) = _verify(_refund({**INFO, "refund_status": status})).events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider_event_type == kind
    assert event.key == f"wechatpay:{MCH_ID}:{subject}:payment.notification.received:{kind}"
    assert (event.order_id, event.transaction_id, event.amount) == ("O-1", "T-1", None)


@pytest.mark.parametrize(
    ("changes", "subject"),
    [
        ({}, "RID-1"),
        ({"refund_id": ""}, "R-1"),
        ({"refund_id": "", "out_refund_no": ""}, "T-1"),
        ({"refund_id": "", "out_refund_no": "", "transaction_id": ""}, "O-1"),
        ({"refund_id": "", "out_refund_no": "", "transaction_id": "", "out_trade_no": ""}, "none"),
    ],
    ids=["refund-id", "out-refund-no", "transaction", "order", "none"],
)
def test_unmodelled_subject_order(changes: dict[str, str], subject: str) -> None:
    """refund_id, out_refund_no, transaction_id, out_trade_no, then "none"."""
    info = {**INFO, "refund_status": "PROCESSING", **changes}
    (event,) = _verify(_refund(info)).events
    assert event.key.split(":")[2] == subject


@pytest.mark.parametrize(
    ("result_code", "kind"), [("", "PAY.UNKNOWN"), ("WAIT", "PAY.WAIT")], ids=["empty", "other"]
)
def test_unmodelled_payment(result_code: str, kind: str) -> None:
    """A result_code other than SUCCESS or FAIL is passed on."""
    (event,) = _verify(_signed(_paid(result_code=result_code))).events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider_event_type == kind
    assert event.key == f"wechatpay:{MCH_ID}:T-1:payment.notification.received:{kind}"


def test_failed_payment_fields() -> None:
    """A FAIL result: keyed by the payment and the error code; amount when given."""
    (event,) = _verify(_signed(_paid(result_code="FAIL", err_code="NOTENOUGH"))).events
    assert event.type is EventType.ORDER_FAILED
    assert event.key == f"wechatpay:{MCH_ID}:T-1:payment.order.failed:NOTENOUGH"
    assert (event.amount, event.transaction_id, event.order_id) == (8888, "T-1", "O-1")
    (bare,) = _verify(
        _signed(_paid(result_code="FAIL", transaction_id=None, total_fee=None))
    ).events
    assert bare.key == f"wechatpay:{MCH_ID}:O-1:payment.order.failed:FAIL"
    assert (bare.amount, bare.transaction_id) == (None, None)


@pytest.mark.parametrize(
    "req_info",
    ["not base64!", "", "AAAA", "QUFBQUFBQUFBQUFBQUFBQQ=="],
    ids=["not-base64", "empty", "short", "one-block"],
)
def test_bad_req_info(req_info: str) -> None:
    """A req_info that does not decode, decrypt or parse is ``bad_req_info``."""
    fields = {"return_code": "SUCCESS", "mch_id": MCH_ID, "appid": APP_ID, "req_info": req_info}
    assert _refused(render_flat_xml(fields)) == (NotificationError, "bad_req_info")


def test_req_info_with_whitespace_and_sub_merchant() -> None:
    """Line breaks inside req_info are ignored; sub_mch_id names the sub-merchant."""
    body = _refund(INFO, sub_mch_id="S-1")
    (event,) = _verify(body).events
    assert event.sub_merchant_id == "S-1"
