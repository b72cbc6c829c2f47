"""Property tests for the Alipay adapter: mutations, arbitrary bytes, sign/verify round trips."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import example, given, strategies as st

from payhook.errors import RefusedError
from payhook.events import EventType
from payhook.providers import ParsedNotification, RawNotification
from payhook.providers.alipay import AlipayProvider, AlipaySimulator, sign_notification
from payhook.providers.alipay._form import codec_for, encode_form
from payhook.signing import load_rsa_private_key, load_rsa_public_key, rsa_sign

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
SYNTHETIC = json.loads((VECTORS / "vectors.json").read_text("utf-8"))["synthetic"]
PRIVATE = load_rsa_private_key((VECTORS / "test_alipay_private.pem").read_bytes())
PUBLIC = load_rsa_public_key((VECTORS / "test_alipay_public.pem").read_bytes())
GOPAY_KEY = load_rsa_public_key(SYNTHETIC["alipay_utf8_rsa2"]["alipay_public_key_base64_spki"])
APP_ID = "2021000122672388"
SELLER = "2088721003236442"
NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)

BOTH = ("RSA2", "RSA")
PROVIDER = AlipayProvider(
    channel="alipay", app_id=APP_ID, public_key=PUBLIC, seller_id=SELLER, sign_types=BOTH
)
GOPAY_PROVIDER = AlipayProvider(
    channel="alipay", app_id=APP_ID, public_key=GOPAY_KEY, sign_types=BOTH
)


def _raw(body: bytes) -> RawNotification:
    return RawNotification(channel="alipay", headers={}, body=body, received_at=NOW)


def _simulated(event: str, charset: str, sign_type: str) -> bytes:
    simulator = AlipaySimulator(
        app_id=APP_ID, private_key=PRIVATE, seller_id=SELLER, sign_type=sign_type, charset=charset
    )
    return simulator.build(
        order_id="ORDER-1001", amount=8888, event=event, refund_amount=1234, now=NOW
    ).body


# (provider, signed body) pairs the mutation properties start from.
BASES: list[tuple[AlipayProvider, bytes]] = [
    (PROVIDER, _simulated("paid", "utf-8", "RSA2")),
    (PROVIDER, _simulated("refund", "GBK", "RSA")),
    (PROVIDER, _simulated("closed", "utf-8", "RSA2")),
    *((GOPAY_PROVIDER, vector["raw_body"].encode()) for vector in SYNTHETIC.values()),
]
BASELINES = [provider.verify(_raw(body)) for provider, body in BASES]


def _outcome(provider: AlipayProvider, body: bytes) -> ParsedNotification | None:
    """The parsed notification, or None when refused; anything else escapes and fails."""
    try:
        return provider.verify(_raw(body))
    except RefusedError:
        return None


@st.composite
def _mutation(draw: st.DrawFn, kind: str) -> tuple[int, bytes]:
    which = draw(st.integers(0, len(BASES) - 1))
    body = BASES[which][1]
    at = draw(st.integers(0, len(body) - 1 if kind != "insert" else len(body)))
    if kind == "replace":
        byte = draw(st.integers(0, 255).filter(lambda b: b != body[at]))
        return which, body[:at] + bytes([byte]) + body[at + 1 :]
    if kind == "insert":
        return which, body[:at] + bytes([draw(st.integers(0, 255))]) + body[at:]
    return which, body[:at] + body[at + 1 :]


def _refused_or_same(which: int, body: bytes) -> None:
    result = _outcome(BASES[which][0], body)
    assert result is None or result == BASELINES[which]


@given(_mutation("replace"))
@example((0, BASES[0][1].replace(b"%E6%A8%A1", b"%e6%A8%A1", 1)))  # hex case: same bytes
@example((0, BASES[0][1].replace(b"sign_type=RSA2", b"sign_type=RSA3", 1)))
def test_any_single_byte_mutation_is_refused_or_neutral(case: tuple[int, bytes]) -> None:
    """Changing one byte is refused, or (e.g. ``%e6`` for ``%E6``) verifies to the same fields."""
    _refused_or_same(*case)


@given(_mutation("insert"))
def test_any_inserted_byte_is_refused_or_neutral(case: tuple[int, bytes]) -> None:
    """Inserting one byte anywhere is refused or changes nothing that was verified."""
    _refused_or_same(*case)


@given(_mutation("delete"))
def test_any_deleted_byte_is_refused_or_neutral(case: tuple[int, bytes]) -> None:
    """Deleting one byte anywhere is refused or changes nothing that was verified."""
    _refused_or_same(*case)


def test_a_neutral_single_byte_mutation_exists() -> None:
    """The property is not vacuous: a hex-case change is accepted with identical fields."""
    body = BASES[0][1].replace(b"%E6%A8%A1", b"%e6%A8%A1", 1)
    assert body != BASES[0][1]
    assert PROVIDER.verify(_raw(body)) == BASELINES[0]


@given(st.binary(max_size=4096))
@example(b"sign=%ZZ")
@example(b"charset=%FF&sign=AAAA")
@example(b"=&=")
@example(b"a=%")
def test_arbitrary_bytes_raise_only_refused_errors(body: bytes) -> None:
    """Whatever bytes arrive, verify raises nothing but RefusedError subclasses."""
    assert _outcome(PROVIDER, body) is None


FORM_KEYS = [
    "app_id",
    "auth_app_id",
    "buyer_id",
    "buyer_open_id",
    "charset",
    "gmt_close",
    "gmt_payment",
    "gmt_refund",
    "notify_id",
    "notify_type",
    "out_biz_no",
    "out_trade_no",
    "refund_fee",
    "seller_id",
    "subject",
    "total_amount",
    "trade_no",
    "trade_status",
    "alipay_cert_sn",
    "x-custom.field",
]
INTERESTING = st.sampled_from(
    [
        APP_ID,
        SELLER,
        "",
        "0",
        "88.88",
        "88.888",
        "-1",
        "1e3",
        "１２",
        "TRADE_SUCCESS",
        "TRADE_FINISHED",
        "TRADE_CLOSED",
        "WAIT_BUYER_PAY",
        "trade_status_sync",
        "2024-05-20 13:14:05",
        "2024-05-20 13:14:05.143",
        "2024-02-30 00:00:00",
        "utf-8",
        "GBK",
        "gb2312",
        "latin1",
        "会员+1 月卡",
    ]
)


@given(
    st.dictionaries(
        st.sampled_from(FORM_KEYS), st.one_of(INTERESTING, st.text(max_size=40)), max_size=20
    )
)
def test_authentic_forms_with_arbitrary_fields_raise_only_refused_errors(
    fields: dict[str, str],
) -> None:
    """A correctly signed form with arbitrary field values is parsed or refused, never crashes."""
    codec = codec_for(fields.get("charset", "utf-8")) or "utf-8"
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items())).encode(codec)
    signature = base64.b64encode(rsa_sign(PRIVATE, content)).decode()
    body = encode_form([*fields.items(), ("sign_type", "RSA2"), ("sign", signature)], codec)
    result = _outcome(PROVIDER, body)
    if result is not None:
        assert result.events
        assert all(event.merchant_id == APP_ID for event in result.events)
        assert all(event.amount is None or event.amount >= 0 for event in result.events)


CHARSETS = ["utf-8", "GBK", "gb2312", "gb18030"]


@given(
    subject=st.text(max_size=60),
    body_text=st.text(max_size=60),
    charset=st.sampled_from(CHARSETS),
    sign_type=st.sampled_from(["RSA2", "RSA"]),
)
def test_sign_verify_round_trip_for_any_text(
    subject: str, body_text: str, charset: str, sign_type: str
) -> None:
    """Any text signed by sign_notification verifies to exactly the fields that were signed."""
    fields = {
        "notify_id": "n1",
        "notify_type": "trade_status_sync",
        "app_id": APP_ID,
        "seller_id": SELLER,
        "charset": charset,
        "trade_status": "TRADE_SUCCESS",
        "trade_no": "T1",
        "out_trade_no": "O1",
        "total_amount": "0.01",
        "gmt_payment": "2026-11-28 09:02:03",
        "subject": subject,
        "body": body_text,
        "sign_type": sign_type,
    }
    body = sign_notification(fields, PRIVATE, sign_type=sign_type, charset=charset)
    (event,) = PROVIDER.verify(_raw(body)).events
    assert event.type is EventType.ORDER_PAID
    assert dict(event.raw) == fields


@given(
    order_id=st.from_regex(r"[A-Za-z0-9_\-]{1,32}", fullmatch=True), amount=st.integers(1, 10**9)
)
def test_simulated_payments_verify_for_any_order(order_id: str, amount: int) -> None:
    """The simulator's payment verifies for any order id and amount, with the amount intact."""
    simulator = AlipaySimulator(app_id=APP_ID, private_key=PRIVATE, seller_id=SELLER)
    body = simulator.build(
        order_id=order_id, amount=amount, event="paid", refund_amount=None, now=NOW
    ).body
    (event,) = PROVIDER.verify(_raw(body)).events
    assert (event.order_id, event.amount) == (order_id, amount)
