"""The WeChat Pay APIv3 provider: vectors, negative table, mapping, replies, simulator, interop."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from wechatpayv3.core import Core  # type: ignore[import-untyped]
from wechatpayv3.utils import rsa_sign  # type: ignore[import-untyped]

from payhook.errors import (
    ConfigurationError,
    DecryptionError,
    NotificationError,
    SignatureError,
    SignatureProbeError,
    TimestampError,
)
from payhook.events import BEIJING, EventType
from payhook.providers import Outcome, Provider, Simulator
from payhook.providers.wechatpay_v3 import (
    WechatPayV3KeyRing,
    WechatPayV3Provider,
    WechatPayV3Simulator,
)
from payhook.providers.wechatpay_v3._sign import response_message
from payhook.signing import aead_aes_gcm_decrypt
from tests.unit.providers._wechat_v3_support import (
    API_V3_KEY,
    APP_ID,
    CERT_SERIAL,
    MCH_ID,
    PUB_KEY_ID,
    VECTORS_DIR,
    FrozenClock,
    clock_at,
    encrypted_envelope,
    envelope,
    key_ring,
    provider,
    raw,
    rsa_key,
    sign_headers,
    vector_headers,
    vectors,
    wechat_private_key,
)

TX = vectors()["synthetic"]["wechat_v3_transaction_success"]
REFUND = vectors()["synthetic"]["wechat_v3_refund_success"]
GO = vectors()["confirmed"]["wx_v3_full_notification_wechatpay_go"]
TX_TS = int(TX["headers"]["Wechatpay-Timestamp"])
NOW = clock_at(TX_TS).now()

PAID_RESOURCE: dict[str, Any] = json.loads(TX["decrypted_resource"])
REFUND_RESOURCE: dict[str, Any] = json.loads(REFUND["decrypted_resource"])


def _signed(event_type: str, plain: dict[str, Any], **kwargs: Any) -> tuple[dict[str, str], bytes]:
    body = encrypted_envelope(event_type, plain, **kwargs)
    return sign_headers(body, timestamp=TX_TS), body


# --- vectors ----------------------------------------------------------------------------------


def test_vectors_match_shared_file() -> None:
    """The local copy of the vectors equals shared/vectors/providers.json where it is present."""
    shared = VECTORS_DIR.parents[2].parent / "shared" / "vectors" / "providers.json"
    if not shared.exists():
        pytest.skip("shared/ is not beside the checkout")
    source = json.loads(shared.read_text("utf-8"))
    for section, entries in vectors().items():
        if section.startswith("_"):
            continue
        for name, value in entries.items():
            assert source[section][name] == value


@pytest.mark.parametrize(
    ("vector", "mode"),
    [(TX, "cert"), (TX, "public"), (REFUND, "cert"), (REFUND, "public")],
    ids=["paid-cert-serial", "paid-pub-key-id", "refund-cert-serial", "refund-pub-key-id"],
)
def test_synthetic_vectors_verify_under_both_serials(vector: dict[str, Any], mode: str) -> None:
    """The same signature verifies under the certificate serial and the public-key id."""
    clock = clock_at(vector["headers"]["Wechatpay-Timestamp"])
    headers = vector_headers(vector, mode=mode)
    body = vector["body"].encode()
    message = response_message(headers["wechatpay-timestamp"], headers["wechatpay-nonce"], body)
    assert hashlib.sha256(message).hexdigest() == vector["message_sha256"]
    parsed = provider(clock).verify(raw(headers, body, clock))
    assert parsed.notification_id == json.loads(body)["id"]
    assert len(parsed.events) == 1
    assert parsed.events[0].raw["resource"] == json.loads(vector["decrypted_resource"])


def test_transaction_success_maps_to_order_paid() -> None:
    """TRANSACTION.SUCCESS becomes payment.order.paid with fen, payer and success_time."""
    clock = clock_at(TX_TS)
    body = TX["body"].encode()
    parsed = provider(clock).verify(raw(vector_headers(TX, mode="public"), body, clock))
    event = parsed.events[0]
    assert event.type is EventType.ORDER_PAID
    assert event.key == "wechatpay:1230000109:4200002024052012345678901234:payment.order.paid"
    assert (event.provider, event.merchant_id) == ("wechatpay", MCH_ID)
    assert event.order_id == parsed.order_id == "PAYHOOK-20240520-0002"
    assert event.transaction_id == "4200002024052012345678901234"
    assert (event.amount, event.currency) == (8888, "CNY")
    assert event.paid_at == datetime(2024, 5, 20, 13, 14, 5, tzinfo=BEIJING)
    assert event.payer_id == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert (event.refund_id, event.refund_amount, event.status) == (None, None, None)
    envelope_doc = json.loads(body)
    assert event.raw == {
        "id": envelope_doc["id"],
        "create_time": envelope_doc["create_time"],
        "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource",
        "summary": "支付成功",
        "resource": PAID_RESOURCE,
    }


def test_refund_success_maps_to_refund_succeeded() -> None:
    """REFUND.SUCCESS becomes payment.refund.succeeded keyed by WeChat's refund_id."""
    clock = clock_at(REFUND["headers"]["Wechatpay-Timestamp"])
    headers = vector_headers(REFUND, mode="cert")
    event = provider(clock).verify(raw(headers, REFUND["body"].encode(), clock)).events[0]
    assert event.type is EventType.REFUND_SUCCEEDED
    assert event.key == "wechatpay:1230000109:50300002024052112345678901:payment.refund.succeeded"
    assert (event.refund_id, event.refund_amount, event.amount) == ("RF-20240521-0001", 1000, 8888)
    assert event.refunded_total is None
    assert (event.order_id, event.transaction_id) == (
        "PAYHOOK-20240520-0002",
        "4200002024052012345678901234",
    )


def test_wechatpay_go_full_callback_signature_and_decryption() -> None:
    """The wechatpay-go callback verifies under its certificate; its 16-byte key decrypts it."""
    clock = clock_at(GO["headers"]["Wechatpay-Timestamp"])
    cert = x509.load_pem_x509_certificate(GO["platform_cert_pem"].encode())
    assert f"{cert.serial_number:X}" == GO["cert_serial_hex"]
    ring = WechatPayV3KeyRing(certificates=[cert], clock=clock)
    headers = {name.lower(): value for name, value in GO["headers"].items()}
    body = GO["body"].encode()
    # A provider needs a 32-byte key: the signature checks pass, then decryption fails.
    checker = WechatPayV3Provider(
        channel="go", mch_id="1234567890", api_v3_key=API_V3_KEY, keys=ring, clock=clock
    )
    with pytest.raises(DecryptionError):
        checker.verify(raw(headers, body, clock))
    resource = json.loads(body)["resource"]
    plaintext = aead_aes_gcm_decrypt(
        GO["apiv3_key"].encode(),
        nonce=resource["nonce"],
        associated_data=resource["associated_data"],
        ciphertext=resource["ciphertext"],
    )
    assert plaintext.decode() == GO["decrypted_resource"]
    with pytest.raises(ConfigurationError, match="32 bytes"):
        WechatPayV3Provider(
            channel="go", mch_id="1", api_v3_key=GO["apiv3_key"].encode(), keys=ring, clock=clock
        )


# --- negative table -------------------------------------------------------------------------


def _tx(mutate: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]) -> Any:
    headers, body = vector_headers(TX, mode="public"), TX["body"].encode()
    return mutate(headers, body)


def _without(name: str) -> Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
    return lambda h, b: ({k: v for k, v in h.items() if k != name}, b)


def _with(name: str, value: str) -> Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
    return lambda h, b: ({**h, name: value}, b)


def _flip_body(h: dict[str, str], b: bytes) -> tuple[dict[str, str], bytes]:
    assert b"EV-2024" in b
    return h, b.replace(b"EV-2024", b"EV-2025", 1)


def _signed_body(body: bytes) -> Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
    return lambda h, b: (sign_headers(body, timestamp=TX_TS), body)


NEGATIVE = [
    ("tampered-body", _flip_body, SignatureError, "bad_signature"),
    ("missing-timestamp", _without("wechatpay-timestamp"), SignatureError, "missing_header"),
    ("missing-nonce", _without("wechatpay-nonce"), SignatureError, "missing_header"),
    ("missing-signature", _without("wechatpay-signature"), SignatureError, "missing_header"),
    ("missing-serial", _without("wechatpay-serial"), SignatureError, "missing_header"),
    ("empty-serial", _with("wechatpay-serial", ""), SignatureError, "missing_header"),
    (
        "probe",
        _with("wechatpay-signature", "WECHATPAY/SIGNTEST/2sWfO+6tVVsZonOX"),
        SignatureProbeError,
        "signature_probe",
    ),
    (
        "unknown-signature-type",
        _with("wechatpay-signature-type", "WECHATPAY2-SM2-WITH-SM3"),
        SignatureError,
        "unsupported_signature_type",
    ),
    ("bad-base64-signature", _with("wechatpay-signature", "%%%not base64"), SignatureError, None),
    (
        "non-canonical-base64",
        lambda h, b: ({**h, "wechatpay-signature": h["wechatpay-signature"][:-3] + "x=="}, b),
        SignatureError,
        "bad_signature",
    ),
    ("timestamp-not-a-number", _with("wechatpay-timestamp", "17e8"), TimestampError, None),
    ("nonce-with-newline", _with("wechatpay-nonce", "a\nb"), SignatureError, "malformed_header"),
    (
        "unknown-serial",
        _with("wechatpay-serial", "PUB_KEY_ID_0000000000000024101100397200000007"),
        SignatureError,
        "unknown_serial",
    ),
    ("non-json-body", _signed_body(b"<xml>not json</xml>"), NotificationError, "malformed"),
    ("json-array-body", _signed_body(b"[1, 2]"), NotificationError, "malformed"),
    (
        "bad-base64-resource",
        _signed_body(
            json.dumps(
                envelope(
                    "TRANSACTION.SUCCESS",
                    {"algorithm": "AEAD_AES_256_GCM", "nonce": "K8b3Qz1pL0aY", "ciphertext": "@@"},
                )
            ).encode()
        ),
        NotificationError,
        "bad_base64",
    ),
    (
        "unsupported-algorithm",
        _signed_body(
            json.dumps(
                envelope(
                    "REFUND.SUCCESS",
                    {"algorithm": "AEAD_SM4_GCM", "nonce": "K8b3Qz1pL0aY", "ciphertext": "AAAA"},
                )
            ).encode()
        ),
        NotificationError,
        "unsupported_algorithm",
    ),
    (
        "missing-resource",
        _signed_body(json.dumps(envelope("TRANSACTION.SUCCESS", None)).encode()),
        NotificationError,
        "missing_field",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [case[1:] for case in NEGATIVE],
    ids=[case[0] for case in NEGATIVE],
)
def test_negative_table(
    mutate: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]],
    error: type[Exception],
    reason: str | None,
) -> None:
    """Each malformed, forged or unusable callback is refused with the right error."""
    clock = clock_at(TX_TS)
    headers, body = _tx(mutate)
    with pytest.raises(error) as caught:
        provider(clock).verify(raw(headers, body, clock))
    if reason is not None:
        assert getattr(caught.value, "reason", None) == reason


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-301, False), (-300, True), (0, True), (300, True), (301, False)],
    ids=["future-301s", "future-300s", "now", "stale-300s", "stale-301s"],
)
def test_replay_window(offset: int, accepted: bool) -> None:
    """Timestamps more than 300 s away from now, either way, are refused."""
    clock = clock_at(TX_TS + offset)
    request = raw(vector_headers(TX, mode="cert"), TX["body"].encode(), clock)
    if accepted:
        assert provider(clock).verify(request).events
    else:
        with pytest.raises(TimestampError):
            provider(clock).verify(request)


def test_stale_timestamp_is_refused_before_any_key_lookup() -> None:
    """A stale callback with an unknown serial never reaches the key ring or the refresh hook."""
    calls: list[str] = []
    clock = clock_at(TX_TS + 3600)
    headers = {**vector_headers(TX, mode="public"), "wechatpay-serial": "ABCDEF"}
    with pytest.raises(TimestampError):
        provider(clock, on_unknown_serial=calls.append).verify(raw(headers, b"{}", clock))
    assert calls == []


def test_unknown_serial_calls_the_refresh_hook() -> None:
    """An unknown serial is reported to on_unknown_serial, then refused."""
    calls: list[str] = []
    clock = clock_at(TX_TS)
    headers = {**vector_headers(TX, mode="public"), "wechatpay-serial": "5157F09EFDC096DE"}
    with pytest.raises(SignatureError) as caught:
        provider(clock, on_unknown_serial=calls.append).verify(
            raw(headers, TX["body"].encode(), clock)
        )
    assert caught.value.reason == "unknown_serial"
    assert calls == ["5157F09EFDC096DE"]


def test_a_failing_refresh_hook_does_not_change_the_verdict() -> None:
    """An exception in on_unknown_serial is logged; the callback is still a SignatureError."""

    def broken(serial: str) -> None:
        raise RuntimeError("boom")

    clock = clock_at(TX_TS)
    headers = {**vector_headers(TX, mode="public"), "wechatpay-serial": "FFFF"}
    with pytest.raises(SignatureError):
        provider(clock, on_unknown_serial=broken).verify(raw(headers, TX["body"].encode(), clock))


def test_wrong_key_is_refused() -> None:
    """A signature by another key under a known serial does not verify."""
    clock = clock_at(TX_TS)
    body = TX["body"].encode()
    headers = sign_headers(body, timestamp=TX_TS, key=rsa_key("attacker"))
    with pytest.raises(SignatureError, match="does not match"):
        provider(clock).verify(raw(headers, body, clock))


def test_signature_type_header_may_be_absent() -> None:
    """Without Wechatpay-Signature-Type the default WECHATPAY2-SHA256-RSA2048 applies."""
    clock = clock_at(TX_TS)
    headers = vector_headers(TX, mode="public")
    del headers["wechatpay-signature-type"]
    assert provider(clock).verify(raw(headers, TX["body"].encode(), clock)).events


def test_header_names_are_case_insensitive() -> None:
    """Headers given with WeChat's own capitalisation are found."""
    clock = clock_at(TX_TS)
    headers = {k.title(): v for k, v in vector_headers(TX, mode="public").items()}
    assert provider(clock).verify(raw(headers, TX["body"].encode(), clock)).events


def test_probe_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """A signature probe is logged at INFO on payhook.providers.wechatpay_v3."""
    clock = clock_at(TX_TS)
    headers = {
        **vector_headers(TX, mode="public"),
        "wechatpay-signature": "WECHATPAY/SIGNTEST/QQ==",
    }
    with (
        caplog.at_level(logging.INFO, logger="payhook.providers.wechatpay_v3"),
        pytest.raises(SignatureProbeError),
    ):
        provider(clock).verify(raw(headers, TX["body"].encode(), clock))
    [record] = [r for r in caplog.records if r.name == "payhook.providers.wechatpay_v3"]
    assert record.levelno == logging.INFO
    assert "SIGNTEST" in record.getMessage()


def test_wrong_api_v3_key_is_a_decryption_error(caplog: pytest.LogCaptureFixture) -> None:
    """A valid signature whose resource does not decrypt is a DecryptionError, logged at ERROR."""
    clock = clock_at(TX_TS)
    wrong = b"0123456789abcdef0123456789abcdef"
    with pytest.raises(DecryptionError, match="api_v3_key") as caught:
        provider(clock, api_v3_key=wrong).verify(
            raw(vector_headers(TX, mode="public"), TX["body"].encode(), clock)
        )
    assert wrong.decode() not in str(caught.value)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    assert "api_v3_key" in errors[0].getMessage()
    assert wrong.decode() not in errors[0].getMessage()


@pytest.mark.parametrize(
    ("overrides", "app_id"),
    [
        ({"mchid": "1900000001"}, APP_ID),
        ({"appid": "wx0000000000000001"}, APP_ID),
        ({"appid": None}, APP_ID),
        ({"mchid": None}, None),
    ],
    ids=["wrong-mchid", "wrong-appid", "missing-appid", "missing-mchid"],
)
def test_wrong_merchant_is_refused(overrides: dict[str, Any], app_id: str | None) -> None:
    """mchid must be the channel's; appid too when configured."""
    plain = {k: v for k, v in {**PAID_RESOURCE, **overrides}.items() if v is not None}
    headers, body = _signed("TRANSACTION.SUCCESS", plain)
    clock = clock_at(TX_TS)
    with pytest.raises(NotificationError) as caught:
        provider(clock, app_id=app_id).verify(raw(headers, body, clock))
    assert caught.value.reason == "wrong_merchant"


def test_appid_is_not_checked_when_not_configured() -> None:
    """Without a configured app_id any appid is accepted."""
    headers, body = _signed("TRANSACTION.SUCCESS", {**PAID_RESOURCE, "appid": "wxother"})
    clock = clock_at(TX_TS)
    assert provider(clock, app_id=None).verify(raw(headers, body, clock)).events


# --- mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "status"),
    [("REFUND.ABNORMAL", "abnormal"), ("REFUND.CLOSED", "closed")],
    ids=["abnormal", "closed"],
)
def test_refund_failures_map_to_refund_failed(event_type: str, status: str) -> None:
    """REFUND.ABNORMAL / REFUND.CLOSED become payment.refund.failed with their status."""
    plain = {**REFUND_RESOURCE, "refund_status": event_type.split(".")[1]}
    headers, body = _signed(event_type, plain)
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(headers, body, clock)).events[0]
    assert event.type is EventType.REFUND_FAILED
    assert event.status == status
    assert event.key == (
        f"wechatpay:{MCH_ID}:50300002024052112345678901:payment.refund.failed:{status}"
    )
    assert (event.refund_id, event.refund_amount) == ("RF-20240521-0001", 1000)


def test_refund_key_falls_back_to_out_refund_no() -> None:
    """Without WeChat's refund_id the event key uses out_refund_no."""
    plain = {k: v for k, v in REFUND_RESOURCE.items() if k != "refund_id"}
    headers, body = _signed("REFUND.SUCCESS", plain)
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(headers, body, clock)).events[0]
    assert event.key == f"wechatpay:{MCH_ID}:RF-20240521-0001:payment.refund.succeeded"


def test_partner_payload_is_normalised() -> None:
    """Partner (服务商) payloads use sp_mchid / sp_appid / sp_openid; sub_mchid stays in raw."""
    plain = {k: v for k, v in PAID_RESOURCE.items() if k not in ("mchid", "appid", "payer")}
    plain |= {
        "sp_mchid": MCH_ID,
        "sp_appid": APP_ID,
        "sub_mchid": "1900000109",
        "sub_appid": "wxsub",
        "payer": {"sp_openid": "oSpOpenId", "sub_openid": "oSubOpenId"},
    }
    headers, body = _signed("TRANSACTION.SUCCESS", plain)
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(headers, body, clock)).events[0]
    assert event.merchant_id == MCH_ID
    assert event.payer_id == "oSpOpenId"
    assert event.raw["resource"]["sub_mchid"] == "1900000109"
    with pytest.raises(NotificationError, match="sp_appid"):
        provider(clock, app_id="wxsub").verify(raw(headers, body, clock))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"amount": {"total": -1}}, "bad_amount"),
        ({"amount": {"total": 88.88}}, "bad_amount"),
        ({"amount": {"total": "8888"}}, None),
        ({"amount": {"total": 1, "currency": "yuan"}}, "malformed"),
        ({"amount": None}, "missing_field"),
        ({"success_time": "2024-05-20 13:14:05"}, "bad_time"),
        ({"trade_state": "NOTPAY"}, "inconsistent_state"),
        ({"transaction_id": 42}, "missing_field"),
    ],
    ids=[
        "negative",
        "float",
        "digit-string",
        "bad-currency",
        "no-amount",
        "no-offset",
        "not-paid",
        "non-text-id",
    ],
)
def test_paid_field_validation(overrides: dict[str, Any], reason: str | None) -> None:
    """Amounts are integer fen, times carry offsets, and contradictions are refused."""
    headers, body = _signed("TRANSACTION.SUCCESS", {**PAID_RESOURCE, **overrides})
    clock = clock_at(TX_TS)
    if reason is None:
        assert provider(clock).verify(raw(headers, body, clock)).events[0].amount == 8888
        return
    with pytest.raises(NotificationError) as caught:
        provider(clock).verify(raw(headers, body, clock))
    assert caught.value.reason == reason


def test_currency_defaults_to_cny() -> None:
    """A transaction amount without currency is CNY."""
    headers, body = _signed("TRANSACTION.SUCCESS", {**PAID_RESOURCE, "amount": {"total": 1}})
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(headers, body, clock)).events[0]
    assert (event.amount, event.currency) == (1, "CNY")


def test_other_event_type_becomes_notification_received() -> None:
    """An authentic COUPON.USE is kept as payment.notification.received, decrypted."""
    plain = {"stock_id": "9856000", "coupon_id": "98674556", "mchid": MCH_ID}
    headers, body = _signed("COUPON.USE", plain, event_id="EV-COUPON-1")
    clock = clock_at(TX_TS)
    parsed = provider(clock).verify(raw(headers, body, clock))
    event = parsed.events[0]
    assert parsed.notification_id == "EV-COUPON-1"
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider_event_type == "COUPON.USE"
    assert event.key == f"wechatpay:{MCH_ID}:notification:EV-COUPON-1"
    assert event.raw["resource"] == plain
    assert event.amount is None


@pytest.mark.parametrize(
    "resource",
    [
        None,
        {"plain": "not encrypted"},
        {"algorithm": "AEAD_AES_256_GCM", "nonce": "K8b3Qz1pL0aY", "ciphertext": "%%"},
        "a string",
    ],
    ids=["no-resource", "plain-resource", "bad-base64", "string-resource"],
)
def test_other_event_type_is_never_refused(resource: object) -> None:
    """An unknown kind whose resource is not encrypted (or not decryptable) keeps the envelope."""
    body = json.dumps(envelope("MCHTRANSFER.BATCH.FINISHED", resource, event_id="EV-X")).encode()
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(sign_headers(body, timestamp=TX_TS), body, clock)).events[0]
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.raw["resource"] == resource
    assert event.key == f"wechatpay:{MCH_ID}:notification:EV-X"


def test_other_event_type_keeps_a_foreign_mchid() -> None:
    """The notification key names the mchid the payload carries (the wechatpay-go callback)."""
    plain = json.loads(GO["decrypted_resource"])
    headers, body = _signed("PAYSCORE.USER_OPEN_SERVICE", plain, event_id="EV-PS")
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(headers, body, clock)).events[0]
    assert event.key == "wechatpay:1234567890:notification:EV-PS"
    assert event.merchant_id == "1234567890"


# --- configuration, replies ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_v3_key": b"short"},
        {"api_v3_key": API_V3_KEY + b"x"},
        {"api_v3_key": API_V3_KEY.decode()},
        {"mch_id": ""},
        {"timestamp_tolerance_s": 0},
    ],
    ids=["short-key", "long-key", "str-key", "empty-mch-id", "zero-tolerance"],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    """Keys that are not 32 bytes and other unusable settings raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        provider(clock_at(TX_TS), **kwargs)


def test_repr_hides_the_api_v3_key() -> None:
    """Neither the provider nor the simulator shows the APIv3 key or private key."""
    text = repr(provider(clock_at(TX_TS))) + repr(_simulator())
    assert API_V3_KEY.decode() not in text
    assert "hidden" in text


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome.REFUSED_AUTH, 401),
        (Outcome.REFUSED_MALFORMED, 400),
        (Outcome.KEY_MISCONFIGURED, 500),
        (Outcome.STORAGE_UNAVAILABLE, 500),
    ],
    ids=["auth", "malformed", "key", "storage"],
)
def test_failure_replies(outcome: Outcome, status: int) -> None:
    """Failures answer 401/400/500 with the FAIL JSON WeChat Pay expects."""
    reply = provider(clock_at(TX_TS)).reply(outcome, "bad signature")
    assert reply.status == status
    assert reply.content_type == "application/json"
    assert json.loads(reply.body) == {"code": "FAIL", "message": "bad signature"}
    default = provider(clock_at(TX_TS)).reply(outcome)
    assert json.loads(default.body)["message"]


def test_accepted_reply_is_204_without_body() -> None:
    """Success is 204 with an empty body."""
    reply = provider(clock_at(TX_TS)).reply(Outcome.ACCEPTED)
    assert (reply.status, reply.body) == (204, b"")


def test_provider_satisfies_the_protocol() -> None:
    """WechatPayV3Provider is a Provider and the simulator a Simulator."""
    checked: Provider = provider(clock_at(TX_TS))
    simulator: Simulator = _simulator()
    assert checked.kind == "wechatpay_v3"
    assert checked.channel == "wx"
    assert simulator is not None


# --- simulator -------------------------------------------------------------------------------


def _simulator(serial: str = PUB_KEY_ID, app_id: str | None = APP_ID) -> WechatPayV3Simulator:
    return WechatPayV3Simulator(
        mch_id=MCH_ID,
        app_id=app_id,
        api_v3_key=API_V3_KEY,
        private_key=wechat_private_key(),
        serial=serial,
    )


@pytest.mark.parametrize("serial", [PUB_KEY_ID, CERT_SERIAL], ids=["pub-key-id", "cert-serial"])
def test_simulated_payment_is_accepted(serial: str) -> None:
    """A simulated payment verifies and maps to payment.order.paid."""
    callback = _simulator(serial).build(
        order_id="ORDER-1", amount=8888, event="paid", refund_amount=None, now=NOW
    )
    clock = FrozenClock(NOW)
    event = provider(clock).verify(raw(dict(callback.headers), callback.body, clock)).events[0]
    assert event.type is EventType.ORDER_PAID
    assert (event.order_id, event.amount) == ("ORDER-1", 8888)
    again = _simulator(serial).build(
        order_id="ORDER-1", amount=8888, event="paid", refund_amount=None, now=NOW
    )
    second = provider(clock).verify(raw(dict(again.headers), again.body, clock)).events[0]
    assert second.key == event.key


@pytest.mark.parametrize(
    ("refund_amount", "expected"), [(None, 8888), (100, 100)], ids=["full", "partial"]
)
def test_simulated_refund_is_accepted(refund_amount: int | None, expected: int) -> None:
    """A simulated refund maps to payment.refund.succeeded with the refunded amount."""
    callback = _simulator().build(
        order_id="ORDER-2", amount=8888, event="refund", refund_amount=refund_amount, now=NOW
    )
    clock = FrozenClock(NOW)
    event = provider(clock).verify(raw(dict(callback.headers), callback.body, clock)).events[0]
    assert event.type is EventType.REFUND_SUCCEEDED
    assert (event.amount, event.refund_amount) == (8888, expected)


@pytest.mark.parametrize(
    ("event", "amount", "refund", "now", "match"),
    [
        ("closed", 100, None, NOW, "no notification when an order is closed"),
        ("shipped", 100, None, NOW, "unknown event"),
        ("paid", 0, None, NOW, "positive"),
        ("refund", 100, 101, NOW, "at most"),
        ("paid", 100, None, NOW.replace(tzinfo=None), "timezone"),
    ],
    ids=["closed", "unknown", "zero-amount", "over-refund", "naive-now"],
)
def test_simulator_refuses_what_wechat_never_sends(
    event: str, amount: int, refund: int | None, now: datetime, match: str
) -> None:
    """closed (no v3 notification), unknown events and bad amounts raise ValueError."""
    with pytest.raises(ValueError, match=match):
        _simulator().build(order_id="O", amount=amount, event=event, refund_amount=refund, now=now)


def test_simulator_times_are_beijing() -> None:
    """The simulated timestamps follow ``now`` and the resource carries +08:00 times."""
    callback = _simulator().build(
        order_id="O", amount=1, event="paid", refund_amount=None, now=NOW + timedelta(hours=1)
    )
    assert callback.headers["Wechatpay-Timestamp"] == str(TX_TS + 3600)
    assert json.loads(callback.body)["create_time"].endswith("+08:00")


# --- interop with the wechatpayv3 package ------------------------------------------------------


def _wechatpayv3_core() -> Core:
    from cryptography.hazmat.primitives import serialization

    private_pem = (VECTORS_DIR / "wechat_pay_private_key.pem").read_text()
    public_pem = (
        wechat_private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return Core(
        mchid=MCH_ID,
        cert_serial_no="MERCHANT-SERIAL",
        private_key=private_pem,
        apiv3_key=API_V3_KEY.decode(),
        public_key=public_pem,
        public_key_id=PUB_KEY_ID,
    )


def test_callback_signed_by_wechatpayv3_is_accepted() -> None:
    """A callback signed with wechatpayv3's signer verifies in payhook."""
    core = _wechatpayv3_core()
    body = encrypted_envelope("TRANSACTION.SUCCESS", PAID_RESOURCE)
    timestamp, nonce = str(TX_TS), "WECHATPAYV3INTEROPNONCE000000001"
    signature = core.sign([timestamp, nonce, body.decode()])
    assert signature == rsa_sign(core._private_key, f"{timestamp}\n{nonce}\n{body.decode()}\n")
    headers = {
        "wechatpay-timestamp": timestamp,
        "wechatpay-nonce": nonce,
        "wechatpay-serial": PUB_KEY_ID,
        "wechatpay-signature": signature,
        "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
    }
    clock = clock_at(TX_TS)
    event = provider(clock).verify(raw(headers, body, clock)).events[0]
    assert event.transaction_id == PAID_RESOURCE["transaction_id"]


@pytest.mark.parametrize("event", ["paid", "refund"], ids=["paid", "refund"])
def test_simulated_callback_is_accepted_by_wechatpayv3(event: str) -> None:
    """wechatpayv3's callback() verifies and decrypts what WechatPayV3Simulator builds."""
    callback = _simulator().build(
        order_id="ORDER-3", amount=500, event=event, refund_amount=None, now=NOW
    )
    result = _wechatpayv3_core().callback(dict(callback.headers), callback.body)
    assert result is not None
    assert result["resource"]["out_trade_no"] == "ORDER-3"
    assert result["resource"]["amount"]["total"] == 500


def test_wechatpayv3_rejects_a_tampered_simulated_callback() -> None:
    """The interop oracle is not a rubber stamp: one changed byte fails its verification."""
    callback = _simulator().build(
        order_id="ORDER-4", amount=500, event="paid", refund_amount=None, now=NOW
    )
    tampered = callback.body.replace(b"encrypt-resource", b"encrypt-Resource", 1)
    assert tampered != callback.body
    assert _wechatpayv3_core().callback(dict(callback.headers), tampered) is None


def test_key_ring_fixture_holds_both_kinds() -> None:
    """The test ring answers for the public-key id and the certificate serial alike."""
    ring = key_ring(clock_at(TX_TS))
    assert ring.key_for(PUB_KEY_ID) is not None
    assert ring.key_for(CERT_SERIAL) is not None
    assert ring.key_for(CERT_SERIAL.lower()) is not None
    assert ring.key_for(PUB_KEY_ID.lower()) is None
