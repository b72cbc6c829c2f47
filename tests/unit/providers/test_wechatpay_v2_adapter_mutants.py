"""More fixed examples for the WeChat Pay v2 adapter, from the second mutation run (issue 14):
absent fields versus empty ones, the field named in amount and time refusals, strict base64 in
req_info and the reason of each req_info failure."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from payhook.errors import NotificationError, SignatureError
from payhook.events import EventType
from payhook.providers import ParsedNotification, RawNotification
from payhook.providers._safe_xml import render_flat_xml
from payhook.providers.wechatpay_v2 import WechatPayV2Provider, encrypt_req_info, wechat_v2_sign

API_KEY = "192006250b4c09247ec02edce69f6a2d"
MCH_ID = "10000100"
APP_ID = "wxd930ea5d5a258f4f"
NOW = datetime(2024, 5, 20, 5, 14, 6, tzinfo=UTC)

PAID = {
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

INFO = {
    "out_refund_no": "R-1",
    "out_trade_no": "O-1",
    "transaction_id": "T-1",
    "refund_id": "RID-1",
    "refund_fee": "100",
    "total_fee": "8888",
    "refund_status": "SUCCESS",
}


def _signed(fields: dict[str, str]) -> bytes:
    return render_flat_xml({**fields, "sign": wechat_v2_sign(fields, API_KEY, "MD5")})


def _refund_body(req_info: str, **outer: str) -> bytes:
    fields = {"return_code": "SUCCESS", "appid": APP_ID, "mch_id": MCH_ID, "req_info": req_info}
    return render_flat_xml({**fields, **outer})


def _encrypted(info: dict[str, str]) -> str:
    return encrypt_req_info(render_flat_xml(info, root="root"), API_KEY)


def _verify(body: bytes) -> ParsedNotification:
    provider = WechatPayV2Provider(channel="v2", mch_id=MCH_ID, app_id=APP_ID, api_key=API_KEY)
    return provider.verify(RawNotification(channel="v2", headers={}, body=body, received_at=NOW))


def _refusal(body: bytes) -> tuple[type[Exception], str, str]:
    with pytest.raises((NotificationError, SignatureError)) as caught:
        _verify(body)
    return type(caught.value), caught.value.reason, str(caught.value)


def test_payment_without_result_code_is_unknown() -> None:
    """An absent result_code is passed on as PAY.UNKNOWN, like an empty one."""
    fields = {k: v for k, v in PAID.items() if k != "result_code"}
    (event,) = _verify(_signed(fields)).events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider_event_type == "PAY.UNKNOWN"
    assert event.key == f"wechatpay:{MCH_ID}:T-1:payment.notification.received:PAY.UNKNOWN"


def test_refund_without_refund_status_is_unknown() -> None:
    """An absent refund_status is passed on as REFUND.UNKNOWN, like an empty one."""
    info = {k: v for k, v in INFO.items() if k != "refund_status"}
    (event,) = _verify(_refund_body(_encrypted(info))).events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider_event_type == "REFUND.UNKNOWN"
    assert event.key == f"wechatpay:{MCH_ID}:RID-1:payment.notification.received:REFUND.UNKNOWN"


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        (_signed({**PAID, "total_fee": "88.88"}),
         (NotificationError, "bad_amount", "total_fee is not a valid amount")),
        (_signed({**PAID, "result_code": "FAIL", "total_fee": "-1"}),
         (NotificationError, "bad_amount", "total_fee is not a valid amount")),
        (_signed({**PAID, "time_end": "20240520251405"}),
         (NotificationError, "bad_time", "time_end is not a valid time")),
        (_refund_body(_encrypted({**INFO, "refund_fee": "1.00"})),
         (NotificationError, "bad_amount", "refund_fee is not a valid amount")),
        (_refund_body(_encrypted({**INFO, "total_fee": "0x10"})),
         (NotificationError, "bad_amount", "total_fee is not a valid amount")),
        (_refund_body(_encrypted({**INFO, "refund_fee": ""})),
         (NotificationError, "missing_field", "refund_fee is missing")),
        (_refund_body(_encrypted({**INFO, "out_refund_no": ""})),
         (NotificationError, "missing_field", "out_refund_no is missing")),
    ],
    ids=["paid-amount", "failed-amount", "paid-time", "refund-amount", "refund-total",
         "no-refund-fee", "no-out-refund-no"],
)  # fmt: skip
def test_refusal_names_the_field(body: bytes, verdict: tuple[type[Exception], str, str]) -> None:
    """A bad amount or time is refused with the name of the field that holds it."""
    assert _refusal(body) == verdict


def test_req_info_base64_is_strict() -> None:
    """A character outside the base64 alphabet (other than ASCII white space) is refused.

    With a lenient decoder the text below would decode to the valid refund.
    """
    req_info = _encrypted(INFO)
    assert _verify(_refund_body(req_info)).events
    for junk in ("!", "*", "\u00a0", "-", "_"):
        damaged = req_info[:8] + junk + req_info[8:]
        assert _refusal(_refund_body(damaged)) == (
            NotificationError,
            "bad_req_info",
            "req_info is not base64",
        )


def test_req_info_white_space_is_removed_not_replaced() -> None:
    """Spaces, tabs, CR and LF inside req_info are dropped before decoding."""
    req_info = _encrypted(INFO)
    spaced = " \t".join(req_info[i : i + 16] for i in range(0, len(req_info), 16)) + "\r\n"
    (event,) = _verify(_refund_body(spaced)).events
    assert (event.type, event.refund_amount) == (EventType.REFUND_SUCCEEDED, 100)


@pytest.mark.parametrize(
    ("req_info", "message"),
    [
        ("AAAA", "req_info does not decrypt"),
        (base64.b64encode(b"\x00" * 16).decode(), "req_info does not decrypt"),
        (encrypt_req_info(b"not xml", API_KEY), "req_info does not decrypt to valid XML"),
        (encrypt_req_info(b"<xml><refund_status>SUCCESS</refund_status></xml>", API_KEY),
         "req_info does not decrypt to valid XML"),
    ],
    ids=["short", "bad-padding", "not-xml", "wrong-root"],
)  # fmt: skip
def test_req_info_failures(req_info: str, message: str) -> None:
    """Each stage of req_info (decrypt, unpad, parse) refuses with bad_req_info."""
    assert _refusal(_refund_body(req_info)) == (NotificationError, "bad_req_info", message)


def test_refund_raw_drops_an_outer_sign() -> None:
    """A refund result that carries a sign anyway does not republish it in raw."""
    req_info = _encrypted(INFO)
    (event,) = _verify(_refund_body(req_info, sign="ABCDEF0123456789")).events
    assert event.raw == {
        "return_code": "SUCCESS",
        "appid": APP_ID,
        "mch_id": MCH_ID,
        "req_info": INFO,
    }
