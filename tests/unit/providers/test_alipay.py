"""Alipay adapter: vectors, negative table, status mapping, replies, simulator, interop."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote_plus, unquote_plus, unquote_to_bytes

import pytest

from payhook.errors import NotificationError, RefusedError, SignatureError
from payhook.events import BEIJING, EventDraft, EventType
from payhook.providers import Outcome, ParsedNotification, Provider, RawNotification, Simulator
from payhook.providers.alipay import AlipayProvider, AlipaySimulator, sign_notification
from payhook.providers.alipay._form import encode_form, parse_form, string_to_sign
from payhook.signing import load_rsa_private_key, load_rsa_public_key, rsa_sign

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
SYNTHETIC = json.loads((VECTORS / "vectors.json").read_text("utf-8"))["synthetic"]
UTF8 = SYNTHETIC["alipay_utf8_rsa2"]
GBK = SYNTHETIC["alipay_gbk_rsa2"]
GOPAY_KEY = load_rsa_public_key(UTF8["alipay_public_key_base64_spki"])
TEST_PRIVATE_PEM = (VECTORS / "test_alipay_private.pem").read_bytes()
TEST_PRIVATE = load_rsa_private_key(TEST_PRIVATE_PEM)
TEST_PUBLIC = load_rsa_public_key((VECTORS / "test_alipay_public.pem").read_bytes())
OTHER_PUBLIC = load_rsa_public_key((VECTORS / "test_other_public.pem").read_bytes())
APP_ID = "2021000122672388"
SELLER = "2088721003236442"
NOW = datetime(2024, 5, 20, 5, 14, 6, tzinfo=UTC)


def _provider(key: object = GOPAY_KEY, **kwargs: object) -> AlipayProvider:
    kwargs.setdefault("sign_types", ("RSA2", "RSA"))
    return AlipayProvider(channel="alipay", app_id=APP_ID, public_key=key, **kwargs)  # type: ignore[arg-type]


def _raw(body: bytes | str) -> RawNotification:
    data = body.encode() if isinstance(body, str) else body
    return RawNotification(channel="alipay", headers={}, body=data, received_at=NOW)


def _fields(**changes: str | None) -> dict[str, str]:
    """A paid notification like the synthetic vector; ``None`` removes a field."""
    fields = {
        "gmt_create": "2024-05-20 13:14:00",
        "charset": "utf-8",
        "gmt_payment": "2024-05-20 13:14:05",
        "notify_time": "2024-05-20 13:14:06",
        "subject": "会员+1 月卡",
        "buyer_id": "2088102177846880",
        "version": "1.0",
        "notify_id": "2024052001222131406012345678901234",
        "notify_type": "trade_status_sync",
        "out_trade_no": "ORDER-1001",
        "total_amount": "88.88",
        "trade_status": "TRADE_SUCCESS",
        "trade_no": "2024052022001400001234567890",
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


def _signed(**changes: str | None) -> bytes:
    return sign_notification(_fields(**changes), TEST_PRIVATE)


def _verify(body: bytes | str, provider: AlipayProvider | None = None) -> ParsedNotification:
    return (provider or _provider(TEST_PUBLIC)).verify(_raw(body))


# -- fixed vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SYNTHETIC), ids=sorted(SYNTHETIC))
def test_synthetic_vectors_are_accepted(name: str) -> None:
    """The UTF-8/GBK, RSA2/RSA vectors verify and become one payment.order.paid."""
    parsed = _provider().verify(_raw(SYNTHETIC[name]["raw_body"]))
    assert parsed.notification_id == "2024052001222131406012345678901234"
    assert parsed.order_id == "PAYHOOK-20240520-0001"
    (event,) = parsed.events
    assert event.type is EventType.ORDER_PAID
    assert event.key == f"alipay:{APP_ID}:2024052022001400001234567890:payment.order.paid"
    assert (event.provider, event.merchant_id) == ("alipay", APP_ID)
    assert (event.order_id, event.transaction_id) == (
        "PAYHOOK-20240520-0001",
        "2024052022001400001234567890",
    )
    assert (event.amount, event.currency) == (8888, "CNY")
    assert event.payer_id == "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
    assert event.paid_at == datetime(2024, 5, 20, 13, 14, 5, tzinfo=BEIJING)
    assert event.paid_at.utcoffset() == timedelta(hours=8)
    assert event.raw["subject"] == "会员+1 月卡"
    assert event.raw["passback_params"] == "uid%3D42%26src%3Dweb"
    assert event.raw["fund_bill_list"] == '[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]'
    assert event.raw["sign_type"] == SYNTHETIC[name]["sign_type"]
    assert "sign" not in event.raw


@pytest.mark.parametrize("name", sorted(SYNTHETIC), ids=sorted(SYNTHETIC))
def test_string_to_sign_matches_vector(name: str) -> None:
    """The string to sign is the vector's, byte for byte, in the notification's charset."""
    vector = SYNTHETIC[name]
    content = string_to_sign(parse_form(vector["raw_body"].encode()))
    assert hashlib.sha256(content).hexdigest() == vector["string_to_sign_sha256_of_bytes"]
    assert content == vector["string_to_sign"].encode(vector["charset"])


# -- the negative table ------------------------------------------------------------------------


def _replace(body: str, old: str, new: str) -> bytes:
    assert old in body
    return body.replace(old, new, 1).encode()


def _without(body: str, key: str) -> bytes:
    return "&".join(p for p in body.split("&") if not p.startswith(key + "=")).encode()


def _decoded_twice(body: str) -> bytes:
    """What a middleware that form-decodes a value twice hands on (``+`` in 会员+1 is lost)."""
    pairs = [pair.split("=", 1) for pair in body.split("&")]
    return "&".join(f"{k}={quote_plus(unquote_plus(unquote_plus(v)))}" for k, v in pairs).encode()


def _gbk_read_as_utf8(body: str) -> bytes:
    """The GBK body after a UTF-8 form parser with replacement (Starlette) and re-encoding."""
    pairs = [pair.split("=", 1) for pair in body.split("&")]
    text = [(k, unquote_to_bytes(v.replace("+", " ")).decode("utf-8", "replace")) for k, v in pairs]
    return encode_form(text, "utf-8")


BODY = UTF8["raw_body"]
NEGATIVE: list[tuple[str, bytes, AlipayProvider, type[RefusedError], str]] = [
    ("missing_sign", _without(BODY, "sign"), _provider(), SignatureError, "missing_sign"),
    ("empty_sign", _without(BODY, "sign") + b"&sign=", _provider(), SignatureError, "missing_sign"),
    (
        "bad_base64",
        _without(BODY, "sign") + b"&sign=not%2Abase64%21",
        _provider(),
        SignatureError,
        "bad_base64",
    ),
    (
        "unknown_sign_type",
        _replace(BODY, "sign_type=RSA2", "sign_type=RSA3"),
        _provider(),
        SignatureError,
        "unknown_sign_type",
    ),
    (
        "md5_sign_type",
        _replace(BODY, "sign_type=RSA2", "sign_type=MD5"),
        _provider(),
        SignatureError,
        "unknown_sign_type",
    ),
    (
        "missing_sign_type",
        _without(BODY, "sign_type"),
        _provider(),
        SignatureError,
        "unknown_sign_type",
    ),
    (
        "sign_type_downgraded_to_rsa",
        _replace(BODY, "sign_type=RSA2", "sign_type=RSA"),
        _provider(),
        SignatureError,
        "bad_signature",
    ),
    ("wrong_key", BODY.encode(), _provider(OTHER_PUBLIC), SignatureError, "bad_signature"),
    (
        "one_flipped_byte",
        _replace(BODY, "total_amount=88.88", "total_amount=88.89"),
        _provider(),
        SignatureError,
        "bad_signature",
    ),
    ("body_decoded_twice", _decoded_twice(BODY), _provider(), SignatureError, "bad_signature"),
    (
        "gbk_body_read_as_utf8",
        _gbk_read_as_utf8(GBK["raw_body"]),
        _provider(),
        SignatureError,
        "bad_signature",
    ),
    (
        "gbk_body_relabelled_utf8",
        _replace(GBK["raw_body"], "charset=GBK", "charset=utf-8"),
        _provider(),
        NotificationError,
        "bad_encoding",
    ),
    (
        "duplicated_key",
        BODY.encode() + b"&app_id=" + APP_ID.encode(),
        _provider(),
        NotificationError,
        "duplicate_field",
    ),
    (
        "duplicated_sign",
        BODY.encode() + b"&sign=AAAA",
        _provider(),
        NotificationError,
        "duplicate_field",
    ),
    (
        "unknown_charset",
        _replace(BODY, "charset=utf-8", "charset=ISO-8859-1"),
        _provider(),
        NotificationError,
        "unknown_charset",
    ),
    (
        "wrong_app_id",
        _signed(app_id="2021000000000009"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "wrong_app_id",
    ),
    (
        "missing_app_id",
        _signed(app_id=None),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    (
        "wrong_seller_id",
        BODY.encode(),
        _provider(seller_id="2088000000000009"),
        NotificationError,
        "wrong_seller",
    ),
    (
        "missing_seller_id",
        _signed(seller_id=None),
        _provider(TEST_PUBLIC, seller_id=SELLER),
        NotificationError,
        "wrong_seller",
    ),
    (
        "amount_three_decimals",
        _signed(total_amount="88.888"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "bad_amount",
    ),
    (
        "amount_negative",
        _signed(total_amount="-88.88"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "bad_amount",
    ),
    (
        "amount_exponent",
        _signed(total_amount="8.888E1"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "bad_amount",
    ),
    (
        "amount_not_a_number",
        _signed(total_amount="NaN"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "bad_amount",
    ),
    (
        "refund_fee_three_decimals",
        _signed(refund_fee="1.001", out_biz_no="R1"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "bad_amount",
    ),
    (
        "bad_gmt_payment",
        _signed(gmt_payment="2024-13-40 25:00:00"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "bad_time",
    ),
    (
        "missing_trade_no",
        _signed(trade_no=None),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    (
        "missing_out_trade_no",
        _signed(out_trade_no=None),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    (
        "missing_total_amount",
        _signed(total_amount=None),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    (
        "missing_notify_id",
        _signed(notify_id=None),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    (
        "refund_without_out_biz_no",
        _signed(refund_fee="1.00", gmt_refund="2024-05-21 10:00:00"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    (
        "refund_without_refund_fee",
        _signed(out_biz_no="R1"),
        _provider(TEST_PUBLIC),
        NotificationError,
        "missing_field",
    ),
    ("empty_body", b"", _provider(), NotificationError, "malformed"),
    ("pair_without_equals", BODY.encode() + b"&oops", _provider(), NotificationError, "malformed"),
    ("empty_pair", BODY.encode() + b"&", _provider(), NotificationError, "malformed"),
    (
        "bad_percent_escape",
        _replace(BODY, "%E4%BC", "%E4%ZC"),
        _provider(),
        NotificationError,
        "malformed",
    ),
    (
        "non_ascii_field_name",
        BODY.encode() + b"&%C3%A4=1",
        _provider(),
        NotificationError,
        "malformed",
    ),
    (
        "undecodable_utf8",
        _replace(BODY, "%E4%BC%9A", "%FF%FE"),
        _provider(),
        NotificationError,
        "bad_encoding",
    ),
]


@pytest.mark.parametrize(
    ("body", "provider", "error", "reason"),
    [case[1:] for case in NEGATIVE],
    ids=[case[0] for case in NEGATIVE],
)
def test_negative_table(
    body: bytes, provider: AlipayProvider, error: type[RefusedError], reason: str
) -> None:
    """Each bad notification is refused with its own error class and reason."""
    with pytest.raises(error) as info:
        provider.verify(_raw(body))
    assert info.value.reason == reason


def test_verify_happens_before_business_parsing() -> None:
    """A forged body with a bad amount and a foreign app_id is refused as a signature error."""
    body = _signed(total_amount="88.888", app_id="2021000000000009")
    with pytest.raises(SignatureError):
        _provider(OTHER_PUBLIC).verify(_raw(body))


def test_error_messages_never_carry_the_signature() -> None:
    """A refused notification's error names the problem, not the signature or the body."""
    with pytest.raises(SignatureError) as info:
        _provider(OTHER_PUBLIC).verify(_raw(BODY))
    assert UTF8["sign"][:16] not in str(info.value)
    assert "88.88" not in str(info.value)


# -- empty values ------------------------------------------------------------------------------


def test_empty_values_signed_as_kept_are_accepted() -> None:
    """The official convention (``k=`` in the string to sign) verifies."""
    parsed = _verify(_signed(buyer_logon_id="", passback_params=""))
    assert parsed.events[0].raw["buyer_logon_id"] == ""


def test_empty_values_signed_as_dropped_are_accepted() -> None:
    """The other convention (empty pairs left out of the string to sign) verifies too."""
    fields = _fields(buyer_logon_id="")
    content = "&".join(
        f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign_type" and v != ""
    )
    signature = base64.b64encode(rsa_sign(TEST_PRIVATE, content.encode())).decode()
    body = encode_form([*fields.items(), ("sign", signature)], "utf-8")
    assert _verify(body).events[0].type is EventType.ORDER_PAID


def test_empty_values_do_not_rescue_a_bad_signature() -> None:
    """The retry without empty values still needs the right key."""
    with pytest.raises(SignatureError, match="does not match"):
        _verify(_signed(buyer_logon_id=""), _provider(OTHER_PUBLIC))


# -- neutral encodings -------------------------------------------------------------------------


def _escape_everything(body: bytes) -> bytes:
    """Every byte of every key and value as a %XX escape (lower-case hex), spaces as %20."""
    out = []
    for pair in body.split(b"&"):
        key, value = pair.split(b"=", 1)
        raw_key, raw_value = unquote_to_bytes(key), unquote_to_bytes(value.replace(b"+", b" "))
        out.append(
            b"=".join("".join(f"%{b:02x}" for b in part).encode() for part in (raw_key, raw_value))
        )
    return b"&".join(out)


def test_equivalent_percent_encodings_give_the_same_result() -> None:
    """``%41`` for ``A``, lower-case hex and ``%20`` for ``+`` are the same form."""
    body = _signed()
    assert _verify(_escape_everything(body)) == _verify(body)


def test_gbk_vector_fully_escaped_still_verifies() -> None:
    """Escaping does not change the GBK bytes that were signed."""
    body = GBK["raw_body"].encode()
    assert _provider().verify(_raw(_escape_everything(body))) == _provider().verify(_raw(body))


# -- mapping -----------------------------------------------------------------------------------

KEY_PREFIX = f"alipay:{APP_ID}:2024052022001400001234567890"


def test_trade_finished_is_the_same_payment_as_trade_success() -> None:
    """TRADE_FINISHED maps to payment.order.paid under the TRADE_SUCCESS key."""
    success = _verify(_signed()).events
    finished = _verify(_signed(trade_status="TRADE_FINISHED", notify_id="another")).events
    assert [e.type for e in finished] == [EventType.ORDER_PAID]
    assert finished[0].key == success[0].key == f"{KEY_PREFIX}:payment.order.paid"


def test_partial_refund() -> None:
    """TRADE_SUCCESS with refund fields is one refund event with the cumulative refund_fee."""
    parsed = _verify(
        _signed(refund_fee="10.50", gmt_refund="2024-05-21 10:00:00.143", out_biz_no="R-1")
    )
    (event,) = parsed.events
    assert event.type is EventType.REFUND_SUCCEEDED
    assert event.key == f"{KEY_PREFIX}:refund:R-1:1050"
    # Every refund of the trade, and nothing else, has a key under this scope (the store
    # reads earlier cumulative totals by that key range).
    assert event.refund_scope == f"{KEY_PREFIX}:refund:"
    assert event.key.startswith(event.refund_scope)
    assert (event.refund_id, event.refunded_total, event.refund_amount) == ("R-1", 1050, None)
    assert (event.amount, event.order_id) == (8888, "ORDER-1001")
    assert event.paid_at == datetime(2024, 5, 20, 13, 14, 5, tzinfo=BEIJING)


def test_full_refund_closes_the_trade() -> None:
    """TRADE_CLOSED with refund fields yields the refund and the order.closed event."""
    parsed = _verify(
        _signed(
            trade_status="TRADE_CLOSED",
            refund_fee="88.88",
            gmt_refund="2024-05-21 10:00:00",
            gmt_close="2024-05-21 10:00:01",
            out_biz_no="R-2",
        )
    )
    assert [(e.type, e.key) for e in parsed.events] == [
        (EventType.REFUND_SUCCEEDED, f"{KEY_PREFIX}:refund:R-2:8888"),
        (EventType.ORDER_CLOSED, f"{KEY_PREFIX}:payment.order.closed"),
    ]
    assert parsed.events[1].refund_id is None


def test_closed_unpaid_trade() -> None:
    """TRADE_CLOSED without refund fields is payment.order.closed only, with no paid_at."""
    parsed = _verify(_signed(trade_status="TRADE_CLOSED", gmt_payment=None, buyer_id=None))
    (event,) = parsed.events
    assert event.type is EventType.ORDER_CLOSED
    assert event.key == f"{KEY_PREFIX}:payment.order.closed"
    assert (event.paid_at, event.payer_id, event.amount) == (None, None, 8888)


def test_trade_finished_with_refund_fields_is_a_refund_only() -> None:
    """A finished trade carrying refund fields reports the refund, not a second payment."""
    parsed = _verify(_signed(trade_status="TRADE_FINISHED", refund_fee="1.00", out_biz_no="R-3"))
    assert [e.type for e in parsed.events] == [EventType.REFUND_SUCCEEDED]


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"trade_status": "WAIT_BUYER_PAY", "gmt_payment": None}, "WAIT_BUYER_PAY"),
        ({"trade_status": "SOMETHING_NEW"}, "SOMETHING_NEW"),
        ({"notify_type": "fund_auth_freeze", "trade_status": None}, "fund_auth_freeze"),
        ({"notify_type": "other_sync", "trade_status": "TRADE_SUCCESS"}, "other_sync"),
    ],
    ids=["wait_buyer_pay", "unknown_trade_status", "other_notify_type", "other_type_with_status"],
)
def test_unmodelled_notifications_are_passed_on(changes: dict[str, str | None], kind: str) -> None:
    """Authentic notifications payhook does not model become notification.received."""
    parsed = _verify(_signed(**changes))
    (event,) = parsed.events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert event.provider_event_type == kind
    assert event.key == f"alipay:{APP_ID}:notification:2024052001222131406012345678901234"
    assert (event.order_id, event.amount) == ("ORDER-1001", 8888)


@pytest.mark.parametrize(
    "changes",
    [
        {"notify_type": "fund_auth_freeze", "trade_status": None, "seller_id": None},
        {"trade_status": "WAIT_BUYER_PAY"},
    ],
    ids=["other_notify_type", "wait_buyer_pay"],
)
def test_unmodelled_notifications_are_never_refused_for_their_fields(
    changes: dict[str, str | None],
) -> None:
    """A bad amount or time, or missing ids, in an unmodelled notification are dropped."""
    body = _signed(
        total_amount="1.234", gmt_payment="yesterday", trade_no=None, out_trade_no=None, **changes
    )
    (event,) = _verify(body, _provider(TEST_PUBLIC, seller_id=SELLER)).events
    assert event.type is EventType.NOTIFICATION_RECEIVED
    assert (event.amount, event.paid_at, event.order_id, event.transaction_id) == (
        None,
        None,
        None,
        None,
    )


def test_empty_gmt_payment_is_no_payment_time() -> None:
    """An empty gmt_payment is treated as absent, not as a malformed time."""
    assert _verify(_signed(gmt_payment="")).events[0].paid_at is None


@pytest.mark.parametrize(
    ("changes", "payer"),
    [
        ({}, "2088102177846880"),
        ({"buyer_open_id": "074a1Cc"}, "2088102177846880"),
        ({"buyer_id": None, "buyer_open_id": "074a1Cc"}, "074a1Cc"),
        ({"buyer_id": ""}, None),
        ({"buyer_id": None}, None),
    ],
    ids=["buyer_id", "buyer_id_wins", "buyer_open_id", "empty", "absent"],
)
def test_payer_id(changes: dict[str, str | None], payer: str | None) -> None:
    """payer_id is buyer_id, else buyer_open_id, else None."""
    assert _verify(_signed(**changes)).events[0].payer_id == payer


def test_seller_is_not_checked_unless_configured() -> None:
    """Without a configured seller_id any seller is accepted."""
    assert _verify(_signed(seller_id="2088999999999999")).events[0].type is EventType.ORDER_PAID


def test_raw_holds_every_verified_field_but_sign() -> None:
    """``raw`` is the decoded form minus ``sign``."""
    (event,) = _verify(_signed()).events
    assert dict(event.raw) == _fields()


# -- certificate SN ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "warned"),
    [("b09baa7d1d5b198c713b230c5a6ec8e7", True), ("a" * 32, False), (None, False)],
    ids=["different", "same", "absent"],
)
def test_cert_sn_mismatch_is_a_warning_not_a_refusal(
    caplog: pytest.LogCaptureFixture, received: str | None, warned: bool
) -> None:
    """A notification naming another Alipay certificate is accepted and logged."""
    provider = _provider(TEST_PUBLIC, alipay_cert_sn="a" * 32)
    with caplog.at_level(logging.WARNING, logger="payhook.providers.alipay"):
        parsed = _verify(_signed(alipay_cert_sn=received), provider)
    assert parsed.events[0].type is EventType.ORDER_PAID
    records = [r for r in caplog.records if r.name == "payhook.providers.alipay"]
    assert len(records) == int(warned)
    if warned:
        assert records[0].levelno == logging.WARNING
        assert records[0].__dict__["alipay_cert_sn"] == received


# -- reply -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status", "body"),
    [
        (Outcome.ACCEPTED, 200, b"success"),
        (Outcome.REFUSED_AUTH, 400, b"fail"),
        (Outcome.REFUSED_MALFORMED, 400, b"fail"),
        (Outcome.STORAGE_UNAVAILABLE, 503, b"fail"),
        (Outcome.KEY_MISCONFIGURED, 500, b"fail"),
    ],
    ids=[o.value for o in Outcome],
)
def test_reply_table(outcome: Outcome, status: int, body: bytes) -> None:
    """Only an accepted notification gets ``success``; every reply is text/plain."""
    reply = _provider().reply(outcome, "ignored message")
    assert (reply.status, reply.body, reply.content_type) == (status, body, "text/plain")


def test_provider_identity_and_repr() -> None:
    """The adapter is a Provider of kind alipay; its repr names the channel only."""
    provider: Provider = _provider(seller_id=SELLER)
    assert (provider.kind, provider.channel) == ("alipay", "alipay")
    assert repr(provider) == f"AlipayProvider(channel='alipay', app_id='{APP_ID}')"


# -- simulator ---------------------------------------------------------------------------------


def _simulator(**kwargs: str) -> AlipaySimulator:
    return AlipaySimulator(app_id=APP_ID, private_key=TEST_PRIVATE, seller_id=SELLER, **kwargs)


def _expected(
    event_type: EventType, key: str, paid_at: datetime | None, **extra: object
) -> EventDraft:
    digest = hashlib.sha256(f"{APP_ID}:1001".encode()).digest()
    return EventDraft(
        type=event_type,
        key=key,
        provider="alipay",
        merchant_id=APP_ID,
        order_id="1001",
        transaction_id=f"{int.from_bytes(digest[:16], 'big') % 10**28:028d}",
        amount=8888,
        paid_at=paid_at,
        payer_id=f"2088{int.from_bytes(digest[16:], 'big') % 10**12:012d}",
        **extra,  # type: ignore[arg-type]
    )


SIM_NOW = datetime(2026, 11, 28, 1, 2, 3, 456000, tzinfo=UTC)
LOCAL_NOW = datetime(2026, 11, 28, 9, 2, 3, tzinfo=BEIJING)


@pytest.mark.parametrize(
    ("sign_type", "charset"),
    [("RSA2", "utf-8"), ("RSA", "utf-8"), ("RSA2", "GBK"), ("RSA2", "gb2312"), ("RSA", "gb18030")],
    ids=["rsa2_utf8", "rsa_utf8", "rsa2_gbk", "rsa2_gb2312", "rsa_gb18030"],
)
@pytest.mark.parametrize("event", ["paid", "closed", "refund"])
def test_simulator_round_trip(event: str, sign_type: str, charset: str) -> None:
    """What the simulator builds verifies and maps to the expected drafts."""
    callback = _simulator(sign_type=sign_type, charset=charset).build(
        order_id="1001", amount=8888, event=event, refund_amount=1000, now=SIM_NOW
    )
    assert callback.headers == {
        "content-type": f"application/x-www-form-urlencoded; charset={charset}"
    }
    parsed = _verify(callback.body, _provider(TEST_PUBLIC, seller_id=SELLER))
    tx = _expected(EventType.ORDER_PAID, "", None).transaction_id
    prefix = f"alipay:{APP_ID}:{tx}"
    expected = {
        "paid": [_expected(EventType.ORDER_PAID, f"{prefix}:payment.order.paid", LOCAL_NOW)],
        "closed": [_expected(EventType.ORDER_CLOSED, f"{prefix}:payment.order.closed", None)],
        "refund": [
            _expected(
                EventType.REFUND_SUCCEEDED,
                f"{prefix}:refund:1001-R1000:1000",
                LOCAL_NOW - timedelta(minutes=1),
                refund_id="1001-R1000",
                refunded_total=1000,
                refund_scope=f"{prefix}:refund:",
            )
        ],
    }[event]
    assert [replace(e, raw={}) for e in parsed.events] == expected
    raw = parsed.events[0].raw
    assert raw["subject"] == "payhook 模拟订单 1001"
    assert (raw["charset"], raw["sign_type"], raw["seller_id"]) == (charset, sign_type, SELLER)
    assert parsed.notification_id == raw["notify_id"]


def test_simulator_gbk_body_is_gbk_bytes() -> None:
    """A GBK simulation percent-encodes GBK bytes, not UTF-8."""
    body = (
        _simulator(charset="GBK")
        .build(order_id="1001", amount=1, event="paid", refund_amount=None, now=SIM_NOW)
        .body
    )
    assert quote_plus("模拟".encode("gbk")).encode() in body
    assert quote_plus("模拟".encode()).encode() not in body


def test_simulator_notify_ids_are_random_and_trade_is_stable() -> None:
    """Each build has a new notify_id; payment and refund of one order share trade_no."""
    sim = _simulator()
    paid = _verify(
        sim.build(order_id="7", amount=100, event="paid", refund_amount=None, now=SIM_NOW).body
    )
    refund = _verify(
        sim.build(order_id="7", amount=100, event="refund", refund_amount=None, now=SIM_NOW).body
    )
    assert paid.notification_id != refund.notification_id
    assert paid.events[0].transaction_id == refund.events[0].transaction_id
    assert refund.events[0].refunded_total == 100  # default: the whole amount
    assert refund.events[0].raw["gmt_refund"] == "2026-11-28 09:02:03.456"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event": "shipped"}, "unknown event"),
        ({"amount": -1}, "must not be negative"),
        ({"now": datetime(2026, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
        ({"event": "refund", "refund_amount": 8889}, "refund amount"),
        ({"event": "refund", "refund_amount": 0}, "refund amount"),
    ],
    ids=["unknown_event", "negative_amount", "naive_now", "refund_too_big", "refund_zero"],
)
def test_simulator_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    """Bad simulate arguments raise ValueError with a clear message."""
    arguments: dict[str, object] = {
        "order_id": "1",
        "amount": 8888,
        "event": "paid",
        "refund_amount": None,
        "now": SIM_NOW,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        _simulator().build(**arguments)  # type: ignore[arg-type]


def test_simulator_constructor_checks_and_repr() -> None:
    """Unknown sign_type/charset are refused; the repr never shows the key."""
    with pytest.raises(ValueError, match="sign_type"):
        _simulator(sign_type="MD5")
    with pytest.raises(ValueError, match="charset"):
        _simulator(charset="latin-1")
    simulator: Simulator = _simulator()
    assert "PRIVATE" not in repr(simulator)
    assert "<hidden>" in repr(simulator)


def test_simulator_with_another_timezone_uses_beijing_time() -> None:
    """Times in the form are Beijing local time whatever ``now``'s zone."""
    now = SIM_NOW.astimezone(timezone(timedelta(hours=-5)))
    parsed = _verify(
        _simulator().build(order_id="1", amount=1, event="paid", refund_amount=None, now=now).body
    )
    assert parsed.events[0].raw["gmt_payment"] == "2026-11-28 09:02:03"


# -- sign_notification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "kwargs", "message"),
    [
        ({"a": "1", "sign": "x"}, {}, "already hold a sign"),
        ({"a": "1", "sign_type": "RSA"}, {}, "sign_type field"),
        ({"a": "1"}, {"sign_type": "RSA3"}, "unknown sign_type"),
        ({"a": "1"}, {"charset": "latin-1"}, "unknown charset"),
        ({"a": "1", "charset": "GBK"}, {}, "charset field"),
        ({"bad key": "1"}, {}, "field name"),
    ],
    ids=[
        "has_sign",
        "sign_type_mismatch",
        "unknown_sign_type",
        "unknown_charset",
        "charset_mismatch",
        "bad_key",
    ],
)
def test_sign_notification_refuses_bad_arguments(
    fields: dict[str, str], kwargs: dict[str, str], message: str
) -> None:
    """sign_notification refuses inputs it cannot sign faithfully."""
    with pytest.raises(ValueError, match=message):
        sign_notification(fields, TEST_PRIVATE, **kwargs)


def test_sign_notification_wire_shape() -> None:
    """Body order is kept, space is ``+``, ``+`` is ``%2B``, sign_type and sign come last."""
    body = sign_notification({"subject": "a+b c", "app_id": APP_ID}, TEST_PRIVATE)
    assert body.startswith(b"subject=a%2Bb+c&app_id=" + APP_ID.encode() + b"&sign_type=RSA2&sign=")


# -- interop with python-alipay-sdk ------------------------------------------------------------


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_python_alipay_sdk_signature_is_accepted(sign_type: str) -> None:
    """A notification signed by the PyPI python-alipay-sdk verifies in payhook."""
    alipay = pytest.importorskip("alipay")
    sdk = alipay.AliPay(
        appid=APP_ID,
        app_notify_url=None,
        app_private_key_string=TEST_PRIVATE_PEM.decode(),
        alipay_public_key_string=(VECTORS / "test_alipay_public.pem").read_text(),
        sign_type=sign_type,
    )
    fields = _fields(sign_type=None)
    body = sdk.sign_data(dict(fields)) + f"&sign_type={sign_type}"
    parsed = _verify(body)
    assert parsed.events[0].type is EventType.ORDER_PAID
    assert parsed.events[0].raw["subject"] == "会员+1 月卡"


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_payhook_signature_verifies_in_python_alipay_sdk(sign_type: str) -> None:
    """python-alipay-sdk accepts what sign_notification produces (the simulator's signer)."""
    alipay = pytest.importorskip("alipay")
    sdk = alipay.AliPay(
        appid=APP_ID,
        app_notify_url=None,
        app_private_key_string=TEST_PRIVATE_PEM.decode(),
        alipay_public_key_string=(VECTORS / "test_alipay_public.pem").read_text(),
        sign_type=sign_type,
    )
    body = sign_notification(_fields(sign_type=sign_type), TEST_PRIVATE, sign_type=sign_type)
    data = {k: v.decode() for k, v in parse_form(body).values.items()}
    signature = data.pop("sign")
    assert sdk.verify(data, signature)
    data["total_amount"] = "0.01"
    assert not sdk.verify(data, signature)
