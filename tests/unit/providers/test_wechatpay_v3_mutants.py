"""Fixed examples for the WeChat Pay v3 adapter and mapping, from the mutation run (issue 14).

Every case asserts the exact verdict: the error class and reason, or every field of the
event drafts (not just that there are some), including ``notification.received`` events and
malformed decrypted resources. See docs/mutation-testing.md.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from payhook.errors import (
    ConfigurationError,
    DecryptionError,
    NotificationError,
    SignatureError,
    SignatureProbeError,
    TimestampError,
)
from payhook.events import EventType
from payhook.providers import Outcome, ParsedNotification
from payhook.providers.wechatpay_v3._map import map_other
from payhook.providers.wechatpay_v3._sign import decode_signature, random_nonce, request_message
from tests.unit.providers._wechat_v3_support import (
    API_V3_KEY,
    APP_ID,
    MCH_ID,
    FrozenClock,
    clock_at,
    encrypt_resource,
    encrypted_envelope,
    envelope,
    provider,
    raw,
    sign_headers,
    vectors,
)

TX = vectors()["synthetic"]["wechat_v3_transaction_success"]
REFUND = vectors()["synthetic"]["wechat_v3_refund_success"]
TS = int(TX["headers"]["Wechatpay-Timestamp"])
PAID: dict[str, Any] = json.loads(TX["decrypted_resource"])
REFUNDED: dict[str, Any] = json.loads(REFUND["decrypted_resource"])


def _verify(body: bytes, **settings: Any) -> ParsedNotification:
    clock = clock_at(TS)
    return provider(clock, **settings).verify(raw(sign_headers(body, timestamp=TS), body, clock))


def _refused(body: bytes, **settings: Any) -> tuple[type[Exception], str | None]:
    with pytest.raises(Exception) as caught:
        _verify(body, **settings)
    return type(caught.value), getattr(caught.value, "reason", None)


def _json(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _with_resource(event_type: str, resource: object) -> bytes:
    return _json(envelope(event_type, resource, event_id="EV-M-1"))


def _encrypted_raw(event_type: str, plaintext: bytes, aad: str = "transaction") -> bytes:
    return _with_resource(event_type, encrypt_resource(plaintext, aad=aad))


# -- headers ---------------------------------------------------------------------------------


def _headers_verdict(**changes: str | None) -> tuple[type[Exception], str | None] | None:
    body = TX["body"].encode()
    headers: dict[str, str] = sign_headers(body, timestamp=TS)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value
    clock = clock_at(TS)
    try:
        provider(clock).verify(raw(headers, body, clock))
    except Exception as exc:
        return type(exc), getattr(exc, "reason", None)
    return None


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({}, None),
        ({"wechatpay_signature_type": None}, None),
        ({"wechatpay_signature_type": "WECHATPAY2-SHA256-RSA2048"}, None),
        ({"wechatpay_signature_type": "wechatpay2-sha256-rsa2048"},
         (SignatureError, "unsupported_signature_type")),
        ({"wechatpay_nonce": ""}, (SignatureError, "missing_header")),
        ({"wechatpay_timestamp": ""}, (SignatureError, "missing_header")),
        ({"wechatpay_signature": ""}, (SignatureError, "missing_header")),
        ({"wechatpay_timestamp": f"{TS}\n"}, (TimestampError, "bad_timestamp")),
        ({"wechatpay_timestamp": f" {TS}"}, (TimestampError, "bad_timestamp")),
        ({"wechatpay_timestamp": "0" + str(TS)}, (SignatureError, "bad_signature")),
        ({"wechatpay_timestamp": "00" + str(TS)}, (SignatureError, "bad_signature")),
        ({"wechatpay_timestamp": "000" + str(TS)}, (TimestampError, "bad_timestamp")),
        ({"wechatpay_timestamp": "7"}, (TimestampError, "stale_timestamp")),
        ({"wechatpay_signature": "WECHATPAY/SIGNTEST/x"}, (SignatureProbeError, "signature_probe")),
        ({"wechatpay_serial": "UNKNOWN"}, (SignatureError, "unknown_serial")),
    ],
    ids=[
        "genuine", "no-signature-type", "signature-type", "signature-type-lower-case",
        "empty-nonce", "empty-timestamp", "empty-signature", "timestamp-newline",
        "timestamp-space", "timestamp-11-digits", "timestamp-12-digits",
        "timestamp-13-digits", "one-digit-timestamp", "probe", "unknown-serial",
    ],
)  # fmt: skip
def test_header_verdicts(
    changes: dict[str, str | None], verdict: tuple[type[Exception], str | None] | None
) -> None:
    """Each header problem has its own error and reason; a timestamp is 1 to 12 digits."""
    assert _headers_verdict(**changes) == verdict


@pytest.mark.parametrize(
    ("nonce", "verdict"),
    [
        ("a", None),
        ("n" * 128, None),
        ("n" * 129, (SignatureError, "malformed_header")),
        ("abc\n", (SignatureError, "malformed_header")),
        ("a b", (SignatureError, "malformed_header")),
        ("!~", None),
        ("中", (SignatureError, "malformed_header")),
    ],
    ids=["one", "128", "129", "trailing-newline", "space", "printable-edges", "non-ascii"],
)
def test_nonce_shapes(nonce: str, verdict: tuple[type[Exception], str] | None) -> None:
    """1 to 128 printable ASCII characters, checked before the signature."""
    body = TX["body"].encode()
    headers = sign_headers(body, timestamp=TS, nonce=nonce) if nonce.isascii() else None
    if headers is None:
        headers = {**sign_headers(body, timestamp=TS), "wechatpay-nonce": nonce}
    clock = clock_at(TS)
    if verdict is None:
        assert provider(clock).verify(raw(headers, body, clock)).events[0].amount == 8888
        return
    with pytest.raises(SignatureError) as caught:
        provider(clock).verify(raw(headers, body, clock))
    assert (type(caught.value), caught.value.reason) == verdict


@pytest.mark.parametrize(("offset", "word"), [(301, "old"), (-301, "in the future")])
def test_replay_window_messages(offset: int, word: str) -> None:
    """The refusal says how far off the timestamp is, and which way."""
    body = TX["body"].encode()
    clock = clock_at(TS + offset)
    with pytest.raises(TimestampError) as caught:
        provider(clock).verify(raw(sign_headers(body, timestamp=TS), body, clock))
    assert caught.value.reason == "stale_timestamp"
    assert str(caught.value) == f"Wechatpay-Timestamp is 301 s {word}, beyond 300 s"


def test_a_small_tolerance_is_honoured() -> None:
    """A tolerance of 0.5 s accepts a callback of this second and refuses one a second off."""
    body = TX["body"].encode()
    clock = clock_at(TS)
    headers = sign_headers(body, timestamp=TS)
    assert provider(clock, timestamp_tolerance_s=0.5).verify(raw(headers, body, clock)).events
    late = clock_at(TS + 1)
    with pytest.raises(TimestampError):
        provider(late, timestamp_tolerance_s=0.5).verify(raw(headers, body, late))


@pytest.mark.parametrize(
    "settings",
    [
        {"api_v3_key": API_V3_KEY[:31]},
        {"api_v3_key": API_V3_KEY + b"\x00"},
        {"api_v3_key": bytearray(API_V3_KEY)},
        {"mch_id": ""},
        {"timestamp_tolerance_s": 0.0},
        {"timestamp_tolerance_s": -1.0},
        {"timestamp_tolerance_s": float("nan")},
    ],
    ids=["31-bytes", "33-bytes", "bytearray", "no-mch-id", "zero", "negative", "nan"],
)
def test_unusable_settings(settings: dict[str, Any]) -> None:
    """The APIv3 key is exactly 32 bytes, the merchant is named, the tolerance is positive."""
    with pytest.raises(ConfigurationError):
        provider(clock_at(TS), **settings)


def test_unknown_serial_hook_gets_the_serial() -> None:
    """The refresh hook hears the exact serial the callback named."""
    seen: list[str] = []
    body = TX["body"].encode()
    clock = clock_at(TS)
    headers = {**sign_headers(body, timestamp=TS), "wechatpay-serial": "SERIAL-X"}
    with pytest.raises(SignatureError) as caught:
        provider(clock, on_unknown_serial=seen.append).verify(raw(headers, body, clock))
    assert caught.value.reason == "unknown_serial"
    assert seen == ["SERIAL-X"]


# -- replies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status", "message"),
    [
        (Outcome.REFUSED_AUTH, 401, "signature verification failed"),
        (Outcome.REFUSED_MALFORMED, 400, "malformed notification"),
        (Outcome.KEY_MISCONFIGURED, 500, "cannot decrypt the notification"),
        (Outcome.STORAGE_UNAVAILABLE, 500, "temporarily unavailable, retry later"),
    ],
    ids=["auth", "malformed", "key", "storage"],
)
def test_reply_bodies_exactly(outcome: Outcome, status: int, message: str) -> None:
    """The exact FAIL body, with the default message, a given one, and one cut at 256."""
    wx = provider(clock_at(TS))
    reply = wx.reply(outcome)
    assert (reply.status, reply.content_type) == (status, "application/json")
    assert reply.body == _json({"code": "FAIL", "message": message})
    assert wx.reply(outcome, "验签失败").body == '{"code": "FAIL", "message": "验签失败"}'.encode()
    assert json.loads(wx.reply(outcome, "m" * 256).body)["message"] == "m" * 256
    assert json.loads(wx.reply(outcome, "m" * 300).body)["message"] == "m" * 256


def test_accepted_reply() -> None:
    """204, no body, no content type."""
    reply = provider(clock_at(TS)).reply(Outcome.ACCEPTED, "ignored")
    assert (reply.status, reply.body, reply.content_type) == (204, b"", None)


# -- the envelope and the decrypted resource --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        (b"\xff{}", (NotificationError, "malformed")),
        (b"{", (NotificationError, "malformed")),
        (b'"text"', (NotificationError, "malformed")),
        (b"[" * 100000 + b"]" * 100000, (NotificationError, "malformed")),
        (_json({"event_type": "TRANSACTION.SUCCESS"}), (NotificationError, "missing_field")),
        (_json({"id": "EV-1"}), (NotificationError, "missing_field")),
        (_json({"id": "", "event_type": "X"}), (NotificationError, "missing_field")),
        (_json({"id": 7, "event_type": "X"}), (NotificationError, "missing_field")),
        (_with_resource("TRANSACTION.SUCCESS", "text"), (NotificationError, "missing_field")),
        (_with_resource("REFUND.SUCCESS", None), (NotificationError, "missing_field")),
    ],
    ids=[
        "not-utf8",
        "not-json",
        "json-string",
        "deep",
        "no-id",
        "no-event-type",
        "empty-id",
        "numeric-id",
        "resource-text",
        "refund-no-resource",
    ],
)
def test_envelope_verdicts(body: bytes, verdict: tuple[type[Exception], str]) -> None:
    """An authentic body that is not a usable envelope is a NotificationError, never a crash."""
    assert _refused(body) == verdict


def _resource(**changes: object) -> dict[str, object]:
    resource: dict[str, object] = encrypt_resource(_json(PAID))
    for name, value in changes.items():
        if value is None:
            resource.pop(name)
        else:
            resource[name] = value
    return resource


@pytest.mark.parametrize(
    ("resource", "verdict"),
    [
        (_resource(algorithm=None), (NotificationError, "unsupported_algorithm")),
        (_resource(algorithm="aead_aes_256_gcm"), (NotificationError, "unsupported_algorithm")),
        (_resource(nonce=None), (NotificationError, "missing_field")),
        (_resource(ciphertext=None), (NotificationError, "missing_field")),
        (_resource(nonce=""), (NotificationError, "missing_field")),
        (_resource(associated_data=7), (NotificationError, "malformed")),
        (_resource(associated_data=["transaction"]), (NotificationError, "malformed")),
        (_resource(associated_data="refund"), (DecryptionError, "decryption_failed")),
        (_resource(associated_data=""), (DecryptionError, "decryption_failed")),
    ],
    ids=[
        "no-algorithm",
        "algorithm-lower-case",
        "no-nonce",
        "no-ciphertext",
        "empty-nonce",
        "numeric-aad",
        "list-aad",
        "wrong-aad",
        "empty-aad",
    ],
)
def test_resource_verdicts(resource: dict[str, object], verdict: tuple[type, str]) -> None:
    """A resource that cannot be decrypted as sent is refused with its reason."""
    assert _refused(_with_resource("TRANSACTION.SUCCESS", resource)) == verdict


@pytest.mark.parametrize("aad", [None, "absent"])
def test_missing_or_null_associated_data_is_empty(aad: str | None) -> None:
    """An absent or null ``associated_data`` decrypts as the empty string."""
    resource: dict[str, object] = encrypt_resource(_json(PAID), aad="")
    if aad is None:
        resource["associated_data"] = None
    else:
        del resource["associated_data"]
    (event,) = _verify(_with_resource("TRANSACTION.SUCCESS", resource)).events
    assert (event.type, event.amount) == (EventType.ORDER_PAID, 8888)


@pytest.mark.parametrize(
    ("plaintext", "event_type"),
    [
        (b"\xff\xfe", "TRANSACTION.SUCCESS"),
        (b"not json", "TRANSACTION.SUCCESS"),
        (b"[1, 2]", "TRANSACTION.SUCCESS"),
        (b'"paid"', "TRANSACTION.SUCCESS"),
        (b"null", "REFUND.SUCCESS"),
        (b"[" * 100000, "REFUND.ABNORMAL"),
    ],
    ids=["not-utf8", "not-json", "array", "string", "null", "deep"],
)
def test_malformed_decrypted_resources(plaintext: bytes, event_type: str) -> None:
    """A resource that decrypts to something other than a JSON object is ``malformed``."""
    body = _encrypted_raw(event_type, plaintext)
    assert _refused(body) == (NotificationError, "malformed")


# -- notification.received -------------------------------------------------------------------


def _received(resource: object, event_type: str = "COUPON.USE") -> Any:
    parsed = _verify(_with_resource(event_type, resource))
    assert parsed.notification_id == "EV-M-1"
    (event,) = parsed.events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider == "wechatpay"
    assert event.provider_event_type == event_type
    assert event.amount is None
    assert parsed.order_id == event.order_id
    return event


def test_received_event_fields_from_a_decrypted_resource() -> None:
    """Every field of a ``notification.received`` from an encrypted resource."""
    plain = {"mchid": MCH_ID, "out_trade_no": "O-1", "transaction_id": "T-1", "x": "中"}
    event = _received(encrypt_resource(_json(plain), aad="coupon"))
    assert event.key == f"wechatpay:{MCH_ID}:notification:EV-M-1"
    assert event.merchant_id == MCH_ID
    assert (event.order_id, event.transaction_id) == ("O-1", "T-1")
    assert event.raw == {
        "id": "EV-M-1",
        "create_time": "2024-05-20T13:14:06+08:00",
        "event_type": "COUPON.USE",
        "resource_type": "encrypt-resource",
        "summary": "test",
        "resource": plain,
    }


@pytest.mark.parametrize(
    ("plaintext", "kept"),
    [
        (b"not json", "not json"),
        (b"\xff ok", "\ufffd ok"),
        (b"[1, 2]", [1, 2]),
        (b'"text"', "text"),
    ],
    ids=["text", "not-utf8", "array", "json-string"],
)
def test_received_event_keeps_an_odd_decrypted_resource(plaintext: bytes, kept: object) -> None:
    """An unmodelled kind is never refused: what decrypts is kept, JSON or text."""
    event = _received(encrypt_resource(plaintext, aad="x"))
    assert event.raw["resource"] == kept
    assert (event.merchant_id, event.order_id, event.transaction_id) == (MCH_ID, None, None)


def test_received_event_with_an_undecryptable_resource_is_a_key_problem() -> None:
    """A tag failure on an unmodelled kind is still a DecryptionError (check the key)."""
    resource = encrypt_resource(b"{}", key=b"k" * 32)
    assert _refused(_with_resource("COUPON.USE", resource)) == (
        DecryptionError,
        "decryption_failed",
    )


def test_a_decryption_error_tells_the_operator_which_key_to_check() -> None:
    """The error (and the log line) name the setting at fault, never the key."""
    resource = encrypt_resource(_json(PAID), key=b"k" * 32)
    with pytest.raises(DecryptionError) as caught:
        _verify(_with_resource("TRANSACTION.SUCCESS", resource))
    assert str(caught.value) == (
        "an authentic WeChat Pay v3 callback could not be decrypted: "
        "check the channel's api_v3_key (the APIv3 key set in the merchant platform)"
    )


def test_received_event_keeps_a_resource_it_cannot_decrypt_as_sent() -> None:
    """A resource missing its nonce or algorithm is kept as the envelope sent it."""
    for resource in (
        {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "AAAA"},
        {"algorithm": "OTHER", "ciphertext": "AAAA", "nonce": "n"},
        {"ciphertext": "AAAA", "nonce": "n"},
    ):
        event = _received(resource)
        assert event.raw["resource"] == resource


@pytest.mark.parametrize(
    ("plain", "merchant"),
    [
        ({"sp_mchid": "1900000001", "mchid": "1900000002"}, "1900000001"),
        ({"mchid": "1900000002"}, "1900000002"),
        ({"sp_mchid": "", "mchid": "1900000002"}, "1900000002"),
        ({"sp_mchid": 5, "mchid": MCH_ID}, MCH_ID),
        ({"mchid": ""}, MCH_ID),
        ({}, MCH_ID),
    ],
    ids=["sp-mchid-first", "mchid", "empty-sp-mchid", "numeric-sp-mchid", "empty", "none"],
)
def test_received_event_merchant(plain: dict[str, object], merchant: str) -> None:
    """The notification is keyed by the merchant it names: sp_mchid, then mchid, then ours."""
    event = _received(encrypt_resource(_json(plain), aad="x"))
    assert event.merchant_id == merchant
    assert event.key == f"wechatpay:{merchant}:notification:EV-M-1"


def test_received_event_logs_a_foreign_merchant(caplog: pytest.LogCaptureFixture) -> None:
    """A foreign mchid is logged as a warning, and our own is not."""
    with caplog.at_level(logging.WARNING, logger="payhook.providers.wechatpay_v3"):
        _received(encrypt_resource(_json({"mchid": MCH_ID}), aad="x"))
        assert not caplog.records
        _received(encrypt_resource(_json({"mchid": "1900000002"}), aad="x"))
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("payhook.providers.wechatpay_v3", logging.WARNING)
    assert record.action == "foreign_merchant"  # type: ignore[attr-defined]
    assert record.getMessage() == "A COUPON.USE notification on channel wx names another merchant."


def test_map_other_on_a_non_object() -> None:
    """A resource that is not an object names no order and keeps the channel's merchant."""
    draft = map_other(["x"], {"id": "E"}, event_id="E", event_type="T", mch_id="M", channel="c")
    assert (draft.merchant_id, draft.order_id, draft.transaction_id) == ("M", None, None)
    assert draft.key == "wechatpay:M:notification:E"
    assert draft.raw == {
        "id": "E",
        "create_time": None,
        "event_type": None,
        "resource_type": None,
        "summary": None,
        "resource": ["x"],
    }


# -- paid, refund and combined drafts, field by field -----------------------------------------


def test_paid_draft_fields() -> None:
    """Every field of a ``payment.order.paid`` draft."""
    parsed = _verify(encrypted_envelope("TRANSACTION.SUCCESS", PAID, event_id="EV-P"))
    assert (parsed.notification_id, parsed.order_id) == ("EV-P", "PAYHOOK-20240520-0002")
    (event,) = parsed.events
    assert event.type is EventType.ORDER_PAID
    assert event.key == f"wechatpay:{MCH_ID}:4200002024052012345678901234:payment.order.paid"
    assert (event.provider, event.merchant_id) == ("wechatpay", MCH_ID)
    assert (event.order_id, event.transaction_id) == (
        "PAYHOOK-20240520-0002",
        "4200002024052012345678901234",
    )
    assert (event.amount, event.currency) == (8888, "CNY")
    assert event.paid_at is not None
    assert event.paid_at.isoformat() == "2024-05-20T13:14:05+08:00"
    assert event.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert (event.sub_merchant_id, event.refund_id, event.status) == (None, None, None)
    assert event.raw["resource"] == PAID
    assert event.raw["id"] == "EV-P"


@pytest.mark.parametrize(
    ("payer", "expected"),
    [
        ({"openid": "o1", "sp_openid": "o2", "sub_openid": "o3"}, "o1"),
        ({"openid": "", "sp_openid": "o2", "sub_openid": "o3"}, "o2"),
        ({"sub_openid": "o3"}, "o3"),
        ({"openid": 5}, None),
        ({}, None),
        ("o1", None),
    ],
    ids=["openid", "sp-openid", "sub-openid", "numeric", "empty", "not-object"],
)
def test_payer_id_order(payer: object, expected: str | None) -> None:
    """openid, then sp_openid, then sub_openid; anything else is no payer."""
    (event,) = _verify(encrypted_envelope("TRANSACTION.SUCCESS", {**PAID, "payer": payer})).events
    assert event.payer_id == expected


@pytest.mark.parametrize(
    ("currency", "verdict"),
    [("USD", None), ("usd", "malformed"), ("USDX", "malformed"), ("US", "malformed"),
     ("USD\n", "malformed"), (840, "malformed"), (None, "malformed")],
)  # fmt: skip
def test_currency_codes(currency: object, verdict: str | None) -> None:
    """Three upper-case letters, nothing else (an explicit null is not the default)."""
    amount = {"total": 100, "currency": currency}
    body = encrypted_envelope("TRANSACTION.SUCCESS", {**PAID, "amount": amount})
    if verdict is None:
        (event,) = _verify(body).events
        assert (event.amount, event.currency) == (100, currency)
    else:
        assert _refused(body) == (NotificationError, verdict)


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({"trade_state": "SUCCESS"}, None),
        ({"trade_state": None}, None),
        ({"trade_state": "REFUND"}, "inconsistent_state"),
        ({"amount": [8888]}, "missing_field"),
        ({"out_trade_no": ""}, "missing_field"),
        ({"success_time": None}, "missing_field"),
        ({"appid": None}, "wrong_merchant"),
    ],
    ids=["success", "no-state", "other-state", "amount-list", "empty-order", "no-time",
         "no-appid"],
)  # fmt: skip
def test_paid_verdicts(changes: dict[str, object], verdict: str | None) -> None:
    """What a paid resource must carry."""
    plain = {k: v for k, v in {**PAID, **changes}.items() if v is not None}
    body = encrypted_envelope("TRANSACTION.SUCCESS", plain)
    if verdict is None:
        assert [e.amount for e in _verify(body).events] == [8888]
    else:
        assert _refused(body) == (NotificationError, verdict)


@pytest.mark.parametrize(
    ("event_type", "type_", "suffix", "status"),
    [
        ("REFUND.SUCCESS", EventType.REFUND_SUCCEEDED, "payment.refund.succeeded", None),
        ("REFUND.ABNORMAL", EventType.REFUND_FAILED, "payment.refund.failed:abnormal", "abnormal"),
        ("REFUND.CLOSED", EventType.REFUND_FAILED, "payment.refund.failed:closed", "closed"),
    ],
    ids=["success", "abnormal", "closed"],
)
def test_refund_draft_fields(
    event_type: str, type_: EventType, suffix: str, status: str | None
) -> None:
    """Every field of a refund draft."""
    parsed = _verify(encrypted_envelope(event_type, REFUNDED, event_id="EV-R"))
    (event,) = parsed.events
    assert parsed.order_id == "PAYHOOK-20240520-0002"
    assert event.type is type_
    assert event.key == f"wechatpay:{MCH_ID}:50300002024052112345678901:{suffix}"
    assert (event.merchant_id, event.transaction_id) == (MCH_ID, "4200002024052012345678901234")
    assert (event.amount, event.currency) == (8888, "CNY")
    assert (event.refund_id, event.refund_amount, event.refunded_total) == (
        "RF-20240521-0001",
        1000,
        None,
    )
    assert event.status == status
    assert event.sub_merchant_id is None
    assert event.raw["resource"] == REFUNDED


@pytest.mark.parametrize(
    ("changes", "app_id", "verdict"),
    [
        ({"appid": APP_ID}, APP_ID, None),
        ({}, APP_ID, None),
        ({"appid": "wxother"}, APP_ID, "wrong_merchant"),
        ({"appid": "wxother"}, None, None),
        ({"refund_id": ""}, APP_ID, None),
        ({"out_refund_no": None}, APP_ID, "missing_field"),
        ({"amount": {"total": 8888}}, APP_ID, "bad_amount"),
        ({"mchid": "1900000001"}, APP_ID, "wrong_merchant"),
    ],
    ids=["appid", "no-appid", "wrong-appid", "unchecked-appid", "empty-refund-id",
         "no-out-refund-no", "no-refund-amount", "wrong-mchid"],
)  # fmt: skip
def test_refund_verdicts(
    changes: dict[str, object], app_id: str | None, verdict: str | None
) -> None:
    """A refund may omit appid, but not name another; its key falls back to out_refund_no."""
    plain = {k: v for k, v in {**REFUNDED, **changes}.items() if v is not None}
    body = encrypted_envelope("REFUND.SUCCESS", plain)
    if verdict is None:
        (event,) = _verify(body, app_id=app_id).events
        key = plain.get("refund_id") or "RF-20240521-0001"
        assert event.key == f"wechatpay:{MCH_ID}:{key}:payment.refund.succeeded"
    else:
        assert _refused(body, app_id=app_id) == (NotificationError, verdict)


def _partner(**changes: object) -> dict[str, object]:
    plain = {k: v for k, v in PAID.items() if k not in ("mchid", "appid")}
    plain |= {"sp_mchid": MCH_ID, "sp_appid": APP_ID, "sub_mchid": "1900000109"}
    plain |= changes
    return {k: v for k, v in plain.items() if v is not None}


@pytest.mark.parametrize(
    ("plain", "settings", "verdict"),
    [
        (_partner(), {}, "1900000109"),
        (_partner(), {"sub_merchant_ids": ["1900000109"]}, "1900000109"),
        (_partner(), {"sub_merchant_ids": ["1900000110"]}, "wrong_merchant"),
        (_partner(sub_mchid=None), {"sub_merchant_ids": ["1900000110"]}, None),
        (_partner(sub_mchid=""), {}, "malformed"),
        (_partner(sub_mchid=1900000109), {}, "malformed"),
        (_partner(sp_appid=None), {}, "wrong_merchant"),
        (_partner(mchid=MCH_ID, sp_mchid="1900000001"), {}, "wrong_merchant"),
        ({**PAID, "sub_mchid": "1900000109"}, {"sub_merchant_ids": ["x"]}, None),
    ],
    ids=["partner", "listed", "unlisted", "no-sub-mchid", "empty-sub-mchid",
         "numeric-sub-mchid", "no-sp-appid", "sp-mchid-wins", "direct-ignores-sub-mchid"],
)  # fmt: skip
def test_partner_verdicts(
    plain: dict[str, object], settings: dict[str, Any], verdict: str | None
) -> None:
    """A partner payload names the sub-merchant; the channel may restrict which ones."""
    body = encrypted_envelope("TRANSACTION.SUCCESS", plain)
    if verdict is None or verdict.isdigit():
        (event,) = _verify(body, **settings).events
        assert event.sub_merchant_id == verdict
        assert event.merchant_id == MCH_ID
    else:
        assert _refused(body, **settings) == (NotificationError, verdict)


def _combined(*subs: dict[str, object], **changes: object) -> dict[str, object]:
    plain: dict[str, object] = {
        "combine_appid": APP_ID,
        "combine_mchid": MCH_ID,
        "combine_out_trade_no": "C-1",
        "combine_payer_info": {"openid": "oC"},
        "sub_orders": list(subs),
    }
    plain |= changes
    return {k: v for k, v in plain.items() if v is not None}


def _sub(n: int, **changes: object) -> dict[str, object]:
    sub: dict[str, object] = {
        "mchid": f"19000001{n:02d}",
        "trade_state": "SUCCESS",
        "transaction_id": f"T-{n}",
        "out_trade_no": f"S-{n}",
        "success_time": "2024-05-20T13:14:05+08:00",
        "amount": {"total_amount": 100 * n, "currency": "CNY"},
    }
    sub |= changes
    return {k: v for k, v in sub.items() if v is not None}


def test_combined_draft_fields() -> None:
    """Each successful sub-order is an event of its own merchant, keyed by its transaction."""
    parsed = _verify(
        encrypted_envelope(
            "TRANSACTION.SUCCESS", _combined(_sub(1), _sub(2, trade_state="CLOSED"), _sub(3))
        )
    )
    assert parsed.order_id == "C-1"
    assert [
        (e.type, e.key, e.merchant_id, e.order_id, e.transaction_id, e.amount, e.payer_id)
        for e in parsed.events
    ] == [
        (EventType.ORDER_PAID, "wechatpay:1900000101:T-1:payment.order.paid", "1900000101",
         "S-1", "T-1", 100, "oC"),
        (EventType.ORDER_PAID, "wechatpay:1900000103:T-3:payment.order.paid", "1900000103",
         "S-3", "T-3", 300, "oC"),
    ]  # fmt: skip
    assert {e.combine_order_id for e in parsed.events} == {"C-1"}


@pytest.mark.parametrize(
    ("plain", "settings", "verdict"),
    [
        (_combined(_sub(1), combine_mchid="1900000001"), {}, "wrong_merchant"),
        (_combined(_sub(1), combine_appid="wxother"), {}, "wrong_merchant"),
        (_combined(_sub(1), combine_appid="wxother"), {"app_id": None}, None),
        (_combined(_sub(1), combine_out_trade_no=None), {}, "missing_field"),
        (_combined(), {}, "malformed"),
        (_combined(sub_orders={"a": 1}), {}, "malformed"),
        (_combined("sub"), {}, "malformed"),
        (_combined(_sub(1), _sub(2, transaction_id="T-1")), {}, "malformed"),
        (_combined(_sub(1, trade_state="CLOSED")), {}, "inconsistent_state"),
        (_combined(_sub(1, mchid=None)), {}, "missing_field"),
        (_combined(_sub(1, sub_mchid="S")), {"sub_merchant_ids": ["T"]}, "wrong_merchant"),
        (_combined(_sub(1, amount=None)), {}, "missing_field"),
    ],
    ids=["wrong-mchid", "wrong-appid", "unchecked-appid", "no-combine-no", "no-sub-orders",
         "sub-orders-object", "sub-order-text", "shared-transaction", "none-successful",
         "sub-no-mchid", "unlisted-sub-merchant", "sub-no-amount"],
)  # fmt: skip
def test_combined_verdicts(
    plain: dict[str, object], settings: dict[str, Any], verdict: str | None
) -> None:
    """A combined order is refused as a whole when any part of it is wrong."""
    body = encrypted_envelope("TRANSACTION.SUCCESS", plain)
    if verdict is None:
        assert [e.transaction_id for e in _verify(body, **settings).events] == ["T-1"]
    else:
        assert _refused(body, **settings) == (NotificationError, verdict)


def test_combine_fields_alone_do_not_make_a_combined_order() -> None:
    """Only a resource with both combine_mchid and sub_orders is read as a combined order."""
    (event,) = _verify(
        encrypted_envelope("TRANSACTION.SUCCESS", {**PAID, "combine_mchid": MCH_ID})
    ).events
    assert (event.order_id, event.amount) == ("PAYHOOK-20240520-0002", 8888)
    (event,) = _verify(encrypted_envelope("TRANSACTION.SUCCESS", {**PAID, "sub_orders": []})).events
    assert (event.order_id, event.amount) == ("PAYHOOK-20240520-0002", 8888)


def test_a_probe_is_logged_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    """The probe's log line: its message and the fields operators filter on."""
    body = TX["body"].encode()
    headers = {**sign_headers(body, timestamp=TS), "wechatpay-signature": "WECHATPAY/SIGNTEST/x"}
    clock = clock_at(TS)
    with (
        caplog.at_level(logging.INFO, logger="payhook.providers.wechatpay_v3"),
        pytest.raises(SignatureProbeError),
    ):
        provider(clock).verify(raw(headers, body, clock))
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "Refused a WeChat Pay signature probe (WECHATPAY/SIGNTEST/); "
        "WeChat Pay retries it with a real signature."
    )
    assert (record.action, record.provider, record.channel) == (  # type: ignore[attr-defined]
        "signature_probe",
        "wechatpay",
        "wx",
    )


@pytest.mark.parametrize(
    ("offset", "word"),
    [(0.7, "old"), (-0.7, "in the future")],
    ids=["under-a-second-old", "under-a-second-ahead"],
)
def test_replay_window_direction_under_one_second(offset: float, word: str) -> None:
    """With a sub-second tolerance the message still says which way the clock is off."""
    body = TX["body"].encode()
    clock = FrozenClock(datetime.fromtimestamp(TS + offset, UTC))
    with pytest.raises(TimestampError) as caught:
        provider(clock, timestamp_tolerance_s=0.5).verify(
            raw(sign_headers(body, timestamp=TS), body, clock)
        )
    assert str(caught.value) == f"Wechatpay-Timestamp is 1 s {word}, beyond 0 s"


def test_an_unknown_serial_is_logged_cut_to_80_characters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The warning names the serial (at most 80 characters of it) and the channel."""
    body = TX["body"].encode()
    clock = clock_at(TS)
    serial = "S" * 79 + "T" + "U" * 20
    headers = {**sign_headers(body, timestamp=TS), "wechatpay-serial": serial}
    with (
        caplog.at_level(logging.WARNING, logger="payhook.providers.wechatpay_v3"),
        pytest.raises(SignatureError),
    ):
        provider(clock).verify(raw(headers, body, clock))
    (record,) = caplog.records
    assert record.getMessage() == (
        f"A WeChat Pay callback names key {'S' * 79 + 'T'!r}, which channel wx does not hold."
    )
    assert (record.action, record.provider, record.channel) == (  # type: ignore[attr-defined]
        "unknown_serial",
        "wechatpay",
        "wx",
    )


def test_a_decryption_failure_is_logged_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    """The error log names the channel and the setting to check, with the action field."""
    resource = encrypt_resource(_json(PAID), key=b"k" * 32)
    with (
        caplog.at_level(logging.ERROR, logger="payhook.providers.wechatpay_v3"),
        pytest.raises(DecryptionError),
    ):
        _verify(_with_resource("TRANSACTION.SUCCESS", resource))
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Channel wx: an authentic WeChat Pay v3 callback could not be decrypted: "
        "check the channel's api_v3_key (the APIv3 key set in the merchant platform)."
    )
    assert (record.action, record.provider, record.channel) == (  # type: ignore[attr-defined]
        "decryption_failed",
        "wechatpay",
        "wx",
    )


def test_a_failing_refresh_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A refresh hook that raises is logged with its traceback; the verdict stays the same."""

    def broken(_serial: str) -> None:
        raise RuntimeError("refresh failed")

    body = TX["body"].encode()
    clock = clock_at(TS)
    headers = {**sign_headers(body, timestamp=TS), "wechatpay-serial": "SERIAL-X"}
    with (
        caplog.at_level(logging.WARNING, logger="payhook.providers.wechatpay_v3"),
        pytest.raises(SignatureError),
    ):
        provider(clock, on_unknown_serial=broken).verify(raw(headers, body, clock))
    warning, failure = caplog.records
    assert warning.action == "unknown_serial"  # type: ignore[attr-defined]
    assert (failure.levelno, failure.getMessage()) == (logging.ERROR, "on_unknown_serial failed")
    assert failure.action == "unknown_serial"  # type: ignore[attr-defined]
    assert failure.exc_info is not None


def test_signature_header_length_limit() -> None:
    """A canonical base64 header of 2048 characters decodes; a longer one is refused unread."""
    assert decode_signature("A" * 2048) == b"\x00" * 1536
    assert decode_signature("A" * 2052) is None
    assert decode_signature("AAB=") is None  # not canonical: unused bits set
    assert decode_signature("AAA=") == b"\x00\x00"


def test_request_message_and_nonce() -> None:
    """The merchant-request message (certificate downloads) and the nonces payhook makes."""
    assert request_message("GET", "/v3/certificates", "1700000000", "N1", b"") == (
        b"GET\n/v3/certificates\n1700000000\nN1\n\n"
    )
    assert request_message("POST", "/p", "1", "n", b"{}") == b"POST\n/p\n1\nn\n{}\n"
    nonce = random_nonce()
    assert len(nonce) == 32
    assert set(nonce) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    assert len(random_nonce(5)) == 5
