"""Property tests of the WeChat Pay v3 provider: mutations are refused, hostile input only ever
raises payhook's refusal or decryption errors."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, strategies as st

from payhook.errors import DecryptionError, RefusedError
from payhook.providers.wechatpay_v3 import WechatPayV3Provider
from tests.unit.providers._wechat_v3_support import (
    API_V3_KEY,
    MCH_ID,
    PUB_KEY_ID,
    clock_at,
    encrypt_resource,
    envelope,
    key_ring,
    provider,
    raw,
    sign_headers,
    vector_headers,
    vectors,
)

TX = vectors()["synthetic"]["wechat_v3_transaction_success"]
TS = int(TX["headers"]["Wechatpay-Timestamp"])
CLOCK = clock_at(TS)
BODY: bytes = TX["body"].encode()
HEADERS = vector_headers(TX, mode="public")
# Public-key mode only: with a certificate in the ring, changing the case of a hex serial
# names the same certificate on purpose.
PROVIDER = provider(CLOCK, keys=key_ring(CLOCK, certificates=False))
SIGNED = ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial")

# A verifier that never fails on a key problem, to reach the mapping with arbitrary payloads.
LENIENT: WechatPayV3Provider = provider(CLOCK, app_id=None)


def test_the_unmutated_callback_is_accepted() -> None:
    """The baseline of the mutation properties verifies."""
    assert PROVIDER.verify(raw(HEADERS, BODY, CLOCK)).events


@given(index=st.integers(min_value=0, max_value=len(BODY) - 1), value=st.integers(0, 255))
def test_any_single_byte_change_of_the_body_is_refused(index: int, value: int) -> None:
    """Changing any one byte of the body makes the callback fail verification."""
    if BODY[index] == value:
        value ^= 0x01
    mutated = BODY[:index] + bytes([value]) + BODY[index + 1 :]
    try:
        PROVIDER.verify(raw(HEADERS, mutated, CLOCK))
    except RefusedError:
        return
    raise AssertionError("a mutated body was accepted")


@given(
    name=st.sampled_from(SIGNED),
    data=st.data(),
)
def test_any_single_character_change_of_a_signed_header_is_refused(
    name: str, data: st.DataObject
) -> None:
    """Changing one character of a signed header (or dropping it) makes verification fail."""
    original = HEADERS[name]
    index = data.draw(st.integers(min_value=0, max_value=len(original)), label="index")
    replacement = data.draw(st.text(max_size=1), label="replacement")
    mutated = original[:index] + replacement + original[index + 1 :]
    if mutated == original:
        return
    try:
        PROVIDER.verify(raw({**HEADERS, name: mutated}, BODY, CLOCK))
    except RefusedError:
        return
    raise AssertionError(f"a mutated {name} was accepted")


HEADER_NAMES = st.sampled_from(
    [*SIGNED, "wechatpay-signature-type", "content-type", "Wechatpay-Serial", "x-other"]
)


@given(headers=st.dictionaries(HEADER_NAMES, st.text(max_size=64)), body=st.binary(max_size=512))
def test_arbitrary_headers_and_bodies_only_raise_refusals(
    headers: dict[str, str], body: bytes
) -> None:
    """Whatever the headers and body, verify raises only RefusedError or DecryptionError."""
    try:
        PROVIDER.verify(raw(headers, body, CLOCK))
    except (RefusedError, DecryptionError):
        return
    raise AssertionError("arbitrary input was accepted")


@given(
    base=st.fixed_dictionaries({}, optional={name: st.just(HEADERS[name]) for name in HEADERS}),
    extra=st.dictionaries(HEADER_NAMES, st.text(max_size=40), max_size=2),
)
def test_valid_headers_mixed_with_garbage_only_raise_refusals(
    base: dict[str, str], extra: dict[str, str]
) -> None:
    """Subsets of the real headers mixed with arbitrary ones never raise anything else."""
    headers = {**base, **extra}
    with contextlib.suppress(RefusedError, DecryptionError):
        PROVIDER.verify(raw(headers, BODY, CLOCK))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_VALUES = JSON_VALUES | st.sampled_from([MCH_ID, "SUCCESS", "2024-05-20T13:14:05+08:00"])
RESOURCE_FIELDS = st.sampled_from(
    [
        "mchid",
        "sp_mchid",
        "appid",
        "out_trade_no",
        "transaction_id",
        "out_refund_no",
        "refund_id",
        "success_time",
        "trade_state",
        "payer",
        "amount",
    ]
)
EVENT_TYPES = st.sampled_from(
    ["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED", "COUPON.USE"]
) | st.text(max_size=12)


@given(
    event_type=EVENT_TYPES,
    plain=st.dictionaries(RESOURCE_FIELDS, FIELD_VALUES, max_size=8),
    amount=st.dictionaries(st.sampled_from(["total", "refund", "currency"]), FIELD_VALUES),
    encrypted=st.booleans(),
    event_id=JSON_VALUES,
)
def test_signed_arbitrary_payloads_only_raise_refusals(
    event_type: str,
    plain: dict[str, Any],
    amount: dict[str, Any],
    encrypted: bool,
    event_id: object,
) -> None:
    """Authentic callbacks with arbitrary resources map or raise only payhook's errors."""
    plain = {**plain, "amount": amount} if amount else plain
    resource: object = (
        encrypt_resource(json.dumps(plain).encode(), key=API_V3_KEY) if encrypted else plain
    )
    doc = envelope(event_type, resource)
    doc["id"] = event_id
    body = json.dumps(doc).encode()
    try:
        parsed = LENIENT.verify(raw(sign_headers(body, timestamp=TS, serial=PUB_KEY_ID), body))
    except (RefusedError, DecryptionError):
        return
    [event] = parsed.events
    assert event.key.startswith("wechatpay:")
    assert event.amount is None or event.amount >= 0


@given(body=st.binary(max_size=512))
def test_signed_arbitrary_bytes_only_raise_refusals(body: bytes) -> None:
    """An authentic body that is not a usable envelope is refused as malformed, never crashes."""
    with contextlib.suppress(RefusedError, DecryptionError):
        LENIENT.verify(raw(sign_headers(body, timestamp=TS), body))
