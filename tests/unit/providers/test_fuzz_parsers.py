"""Hypothesis fuzzing of the parsers the ``*_properties`` tests do not reach directly.

Structured hostile input for: the Alipay form parser (form-shaped bodies with stray escapes and
charsets), the WeChat Pay v3 helpers (signature header decoding, serial lookup, AES-GCM fields,
the certificate download response), WeChat Pay v2 refunds whose ``req_info`` is correctly
encrypted but holds anything, and the amount and time parsers every adapter feeds provider
text into. Each either returns a value or raises payhook's own error, nothing else.
"""

from __future__ import annotations

import base64
import json
import re
import string
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest
from hypothesis import given, strategies as st

from payhook.errors import (
    ConfigurationError,
    DecryptionError,
    NotificationError,
    RefusedError,
)
from payhook.events import parse_amount, parse_beijing, parse_fen, parse_rfc3339
from payhook.providers import RawNotification
from payhook.providers._safe_xml import render_flat_xml
from payhook.providers.alipay import AlipayProvider
from payhook.providers.alipay._form import codec_for, decode_fields, parse_form, string_to_sign
from payhook.providers.wechatpay_v2 import WechatPayV2Provider, encrypt_req_info
from payhook.providers.wechatpay_v3._certs import CertificateDownloadError, _certificate_items
from payhook.providers.wechatpay_v3._keys import normalise_serial
from payhook.providers.wechatpay_v3._sign import decode_signature
from payhook.signing import (
    aead_aes_gcm_decrypt,
    aead_aes_gcm_encrypt,
    load_rsa_public_key,
    parse_secret,
)
from tests.unit.providers._wechat_v3_support import clock_at, key_ring

NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
API_V2_KEY = "192006250b4c09247ec02edce69f6a2d"
V2 = WechatPayV2Provider(channel="v2", mch_id="1900000002", app_id=None, api_key=API_V2_KEY)
API_V3_KEY = b"0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[3]
ALIPAY = AlipayProvider(
    channel="c",
    app_id="2021000000000001",
    public_key=load_rsa_public_key((ROOT / "samples" / "keys" / "alipay_public.pem").read_text()),
)
RING = key_ring(clock_at(int(NOW.timestamp())))

ALIPAY_KEYS = [
    "notify_id", "notify_type", "app_id", "charset", "sign", "sign_type", "trade_status",
    "out_trade_no", "trade_no", "total_amount", "refund_fee", "gmt_payment", "subject",
]  # fmt: skip
CHARSET_VALUES = st.sampled_from(["utf-8", "UTF-8", "GBK", "gb2312", "gb18030", "latin1", "x", ""])


def _raw(body: bytes, headers: dict[str, str] | None = None) -> RawNotification:
    return RawNotification(channel="c", headers=headers or {}, body=body, received_at=NOW)


@st.composite
def _form_value(draw: st.DrawFn) -> bytes:
    """A value as it may appear on the wire: escaped bytes, raw bytes, stray % and +."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return quote_from_bytes(draw(st.binary(max_size=40))).encode()
    if kind == 1:
        text = draw(st.text(max_size=20))
        codec = draw(st.sampled_from(["utf-8", "gbk", "gb18030", "utf-16"]))
        return quote_from_bytes(text.encode(codec, "replace")).encode()
    if kind == 2:
        return draw(st.text(alphabet="%+=&0123456789abcdefABCDEFxyz", max_size=20)).encode()
    return draw(st.binary(max_size=20))


@st.composite
def _alipay_forms(draw: st.DrawFn) -> bytes:
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(ALIPAY_KEYS) | st.text(max_size=8), _form_value()),
            max_size=16,
        )
    )
    parts = [k.encode("utf-8", "replace") + b"=" + v for k, v in pairs]
    if draw(st.booleans()):
        parts.append(b"charset=" + draw(CHARSET_VALUES).encode())
    separator = draw(st.sampled_from([b"&", b"&&", b";", b"&amp;"]))
    return separator.join(parts)


@given(_alipay_forms())
def test_alipay_form_parser_on_form_shaped_bytes(body: bytes) -> None:
    """Form-shaped bodies parse to fields or fail as NotificationError, at every stage."""
    try:
        form = parse_form(body)
        fields = decode_fields(form)
        content = string_to_sign(form)
    except NotificationError:
        return
    assert set(fields) == set(form.values)
    assert content.count(b"=") >= len(set(fields) - {"sign", "sign_type"})


def _reference_form(body: bytes) -> dict[str, bytes] | str:
    """The form parser's rules done the plain way: split, then unquote each part with urllib."""
    if not body:
        return "malformed"
    if re.search(rb"%(?![0-9A-Fa-f]{2})", body):
        return "malformed"
    values: dict[str, bytes] = {}
    for segment in body.split(b"&"):
        name, sep, value = segment.partition(b"=")
        if not sep:
            return "malformed"
        key = unquote_to_bytes(name.replace(b"+", b" "))
        if not re.fullmatch(rb"[A-Za-z0-9_.\-]{1,64}", key):
            return "malformed"
        if key.decode() in values:
            return "duplicate_field"
        values[key.decode()] = unquote_to_bytes(value.replace(b"+", b" "))
    return values


@given(_alipay_forms() | st.binary(max_size=200))
def test_alipay_form_parser_matches_a_plain_reference(body: bytes) -> None:
    """The fast parser decodes exactly what a plain split-and-unquote parser decodes.

    The string to sign is built from these bytes, so any difference would be a signature
    mismatch (or worse, a different field seen than signed). Run twice so the second pass
    goes through the cache of field names seen before.
    """
    expected = _reference_form(body)
    for _ in range(2):
        try:
            got: dict[str, bytes] | str = dict(parse_form(body).values)
        except NotificationError as exc:
            got = exc.reason
        if got == "unknown_charset":
            assert isinstance(expected, dict)
            assert codec_for(expected["charset"].decode("latin-1")) is None
            continue
        assert got == expected


def test_alipay_form_parser_cache_never_answers_for_escaped_names() -> None:
    """A name once sent escaped (x%41 = xA) does not make its escaped-again form valid."""
    assert dict(parse_form(b"x%41=1&y=%26%00").values) == {"xA": b"1", "y": b"&\x00"}
    for body in (b"x%2541=1", b"x%41=1&x%2541=2"):
        assert _reference_form(body) == "malformed"
        with pytest.raises(NotificationError) as caught:
            parse_form(body)
        assert caught.value.reason == "malformed"


@given(_alipay_forms())
def test_alipay_verify_on_form_shaped_bytes(body: bytes) -> None:
    """The Alipay verifier refuses unsigned form-shaped bodies with RefusedError only."""
    try:
        ALIPAY.verify(_raw(body))
    except RefusedError:
        return
    raise AssertionError("an unsigned form was accepted")


@given(st.text(max_size=40))
def test_codec_for_is_total(charset: str) -> None:
    """Any charset text maps to a Python codec or to None (refused), never raises."""
    codec = codec_for(charset)
    if codec is not None:
        "测试".encode(codec)


@given(st.text(max_size=400) | st.from_regex(r"[A-Za-z0-9+/]{0,400}={0,3}", fullmatch=True))
def test_decode_signature_is_total_and_canonical(text: str) -> None:
    """A signature header decodes to bytes only when it is canonical base64, else None."""
    raw = decode_signature(text)
    if raw is not None:
        assert base64.b64encode(raw).decode("ascii") == text


@given(st.text(max_size=80) | st.from_regex(r"[0-9A-Fa-f]{0,70}", fullmatch=True))
def test_serial_lookup_is_total(serial: str) -> None:
    """Any Wechatpay-Serial text names a key or nothing; the lookup never raises."""
    number = normalise_serial(serial)
    assert number is None or number >= 0
    key = RING.key_for(serial)
    assert key is None or key.key_size >= 2048


_FIELD = (
    st.text(max_size=64)
    | st.binary(max_size=64)
    | st.from_regex(r"[A-Za-z0-9+/]{0,80}={0,2}", fullmatch=True)
)


@given(nonce=_FIELD, aad=_FIELD, ciphertext=_FIELD)
def test_aead_decrypt_on_arbitrary_fields(
    nonce: str | bytes, aad: str | bytes, ciphertext: str | bytes
) -> None:
    """Arbitrary resource fields fail as NotificationError or DecryptionError only."""
    try:
        aead_aes_gcm_decrypt(API_V3_KEY, nonce=nonce, associated_data=aad, ciphertext=ciphertext)
    except (NotificationError, DecryptionError):
        return
    raise AssertionError("random fields decrypted")


@given(plaintext=st.binary(max_size=200), aad=st.text(max_size=20), flip=st.integers(0, 10**6))
def test_aead_any_altered_ciphertext_is_a_decryption_error(
    plaintext: bytes, aad: str, flip: int
) -> None:
    """Altering one bit of an authentic ciphertext is always a DecryptionError (tag check)."""
    sealed = base64.b64decode(
        aead_aes_gcm_encrypt(API_V3_KEY, nonce="abcdefghijkl", associated_data=aad,
                             plaintext=plaintext)
    )  # fmt: skip
    bit = flip % (len(sealed) * 8)
    altered = bytearray(sealed)
    altered[bit // 8] ^= 1 << (bit % 8)
    try:
        aead_aes_gcm_decrypt(
            API_V3_KEY,
            nonce="abcdefghijkl",
            associated_data=aad,
            ciphertext=base64.b64encode(bytes(altered)).decode(),
        )
    except DecryptionError:
        return
    raise AssertionError("an altered ciphertext decrypted")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(
    st.binary(max_size=300)
    | _JSON.map(lambda v: json.dumps(v).encode())
    | st.lists(
        st.dictionaries(
            st.sampled_from(["serial_no", "encrypt_certificate", "effective_time"]), _JSON
        ),
        max_size=3,
    ).map(lambda items: json.dumps({"data": items}).encode())
)
def test_certificate_response_parser_is_total(body: bytes) -> None:
    """A certificate download response yields entries or a CertificateDownloadError."""
    try:
        items = _certificate_items(body)
    except CertificateDownloadError:
        return
    assert all(isinstance(item, dict) for item in items)


_XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="]"),
    max_size=30,
)


@given(
    inner=st.binary(max_size=300)
    | st.dictionaries(
        st.sampled_from(
            [
                "out_refund_no",
                "refund_id",
                "refund_fee",
                "total_fee",
                "refund_status",
                "out_trade_no",
                "transaction_id",
                "success_time",
                "x",
            ]
        ),
        _XML_TEXT | st.sampled_from(["SUCCESS", "CHANGE", "REFUNDCLOSE", "-1", "1e9", "0"]),
    ).map(lambda fields: render_flat_xml(fields, root="root"))
)
def test_v2_refund_with_authentic_req_info_of_any_content(inner: bytes) -> None:
    """req_info encrypted with our key but holding anything maps or is refused, never crashes."""
    body = render_flat_xml(
        {
            "return_code": "SUCCESS",
            "mch_id": "1900000002",
            "req_info": encrypt_req_info(inner, API_V2_KEY),
        }
    )
    try:
        parsed = V2.verify(_raw(body))
    except RefusedError:
        return
    (event,) = parsed.events
    assert event.merchant_id == "1900000002"
    assert event.refund_amount is None or event.refund_amount >= 0


@given(st.text(max_size=30) | st.from_regex(r"-?[0-9]{0,20}(\.[0-9]{0,4})?", fullmatch=True))
def test_parse_amount_is_total_and_exact(text: str) -> None:
    """A yuan string becomes exact integer fen, or a NotificationError; never a float error."""
    try:
        fen = parse_amount(text)
    except NotificationError:
        return
    assert fen >= 0
    assert Decimal(fen) == Decimal(text) * 100


@given(_JSON | st.floats() | st.from_regex(r"[0-9]{0,25}", fullmatch=True))
def test_parse_fen_is_total(value: object) -> None:
    """Any JSON value is a non-negative int amount or a NotificationError."""
    try:
        fen = parse_fen(value)
    except NotificationError:
        return
    assert type(fen) is int
    assert fen >= 0


@given(
    st.text(max_size=40)
    | st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}.{0,12}", fullmatch=True
    )
    | st.from_regex(r"[0-9]{14}", fullmatch=True)
)
def test_time_parsers_are_total(text: str) -> None:
    """Provider times parse to aware datetimes or fail as NotificationError."""
    for parse in (parse_beijing, parse_rfc3339):
        try:
            value = parse(text, field="t")
        except NotificationError:
            continue
        assert value.tzinfo is not None


@given(
    st.text(max_size=80)
    | st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=60).map(
        lambda s: "whsec_" + s
    )
)
def test_webhook_secret_parser_is_total(secret: str) -> None:
    """A subscription secret parses to key bytes or fails as ConfigurationError, never echoed."""
    message = None
    try:
        key = parse_secret(secret)
    except ConfigurationError as exc:
        message = exc.message
    if message is not None:
        assert len(secret) < 12 or secret not in message
        return
    assert isinstance(key, bytes)
    assert key
