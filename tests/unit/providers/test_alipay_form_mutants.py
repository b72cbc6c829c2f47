"""Fixed examples for Alipay's form parser and signature check, from the mutation run (issue 14).

``parse_form`` has two paths: the whole-body fast path, taken only when every field name has
been seen plain before (the ``_NAMES`` cache), and the general pair-by-pair path. Which one
runs depends on what earlier tests parsed, so every example here runs on both, from a reset
cache: the first parse takes the general path and fills the cache, the second takes the fast
path. See docs/mutation-testing.md.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from payhook.errors import NotificationError, SignatureError
from payhook.providers import RawNotification
from payhook.providers.alipay import AlipayProvider, _form, sign_notification
from payhook.providers.alipay._form import (
    AlipayForm,
    codec_for,
    decode_fields,
    encode_form,
    parse_form,
    string_to_sign,
)
from payhook.signing import load_rsa_private_key, load_rsa_public_key, rsa_sign

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
TEST_PRIVATE = load_rsa_private_key((VECTORS / "test_alipay_private.pem").read_bytes())
TEST_PUBLIC = load_rsa_public_key((VECTORS / "test_alipay_public.pem").read_bytes())
APP_ID = "2021000122672388"
NOW = datetime(2024, 5, 20, 5, 14, 6, tzinfo=UTC)


@pytest.fixture(autouse=True)
def cold_names() -> Iterator[dict[bytes, str]]:
    """An empty field-name cache for the test, and the previous one back afterwards."""
    saved = dict(_form._NAMES)
    _form._NAMES.clear()
    yield _form._NAMES
    _form._NAMES.clear()
    _form._NAMES.update(saved)


def _both_paths(body: bytes) -> dict[str, bytes]:
    """Parse ``body`` cold (general path) and warm (fast path); both must agree."""
    _form._NAMES.clear()
    cold = dict(parse_form(body).values)
    warm = dict(parse_form(body).values)
    assert warm == cold
    return cold


def _refused_on_both_paths(body: bytes, warm_names: bytes) -> str:
    """The reason ``body`` is refused, cold and after ``warm_names`` filled the cache."""
    _form._NAMES.clear()
    with pytest.raises(NotificationError) as cold:
        parse_form(body)
    parse_form(warm_names)
    with pytest.raises(NotificationError) as warm:
        parse_form(body)
    assert warm.value.reason == cold.value.reason
    return cold.value.reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a=1&b=2", {"a": b"1", "b": b"2"}),
        (b"a=x+y", {"a": b"x y"}),
        (b"a=x%41+y", {"a": b"xA y"}),
        (b"a=1%2B1", {"a": b"1+1"}),
        (b"a=%E4%B8%AD+%e6%96%87", {"a": "中 文".encode()}),
        # "=" inside a value: the general path's urllib branch; "+" is still a space there.
        (b"a=x%20y+z=w", {"a": b"x y z=w"}),
        (b"a=x+y=z", {"a": b"x y=z"}),
        (b"a=x%3Dy+z", {"a": b"x=y z"}),
        # A literal "=" next to an escape: "=42" and a final "=" are not quoted-printable.
        (b"a=%41=42", {"a": b"A=42"}),
        (b"a=x%20=", {"a": b"x ="}),
        (b"a=&b=", {"a": b"", "b": b""}),
        # Escapes that decode to a separator: never split on, on either path.
        (b"a=%26b%3D1&c=2", {"a": b"&b=1", "c": b"2"}),
        (b"a=%00&b=1", {"a": b"\x00", "b": b"1"}),
        (b"a=x%00y%26", {"a": b"x\x00y&"}),
        # "=" in a value alongside an escape, with the pair count right for the fast path.
        (b"a=%41=&b", None),
        (b"A.b-c_9=1", {"A.b-c_9": b"1"}),
        (b"x%41=1", {"xA": b"1"}),
        (b"charset=gbk&a=%D6%D0", {"charset": b"gbk", "a": b"\xd6\xd0"}),
    ],
    ids=[
        "plain", "plus", "escape-and-plus", "escaped-plus", "utf8", "equals-escape-plus",
        "equals-plus", "escaped-equals", "equals-hex", "equals-last", "empty-values", "escaped-separators", "escaped-nul",
        "escaped-nul-amp", "pair-without-equals", "name-chars", "escaped-name", "gbk",
    ],
)  # fmt: skip
def test_values_on_both_paths(body: bytes, expected: dict[str, bytes] | None) -> None:
    """Every value is decoded once, ``+`` is a space, escapes never split pairs."""
    if expected is None:
        assert _refused_on_both_paths(body, b"a=1&b=2") == "malformed"
        return
    assert _both_paths(body) == expected


@pytest.mark.parametrize(
    ("body", "warm", "reason"),
    [
        # A raw NUL never reaches the fast path, where it would be taken for the "=" of a pair.
        (b"a\x00b=1", b"a=1&b=2", "malformed"),
        (b"a=1\x00&b=2", b"a=1&b=2", None),
        (b"a=1&a=2", b"a=1", "duplicate_field"),
        (b"a=1&b=2&a=3", b"a=1&b=2", "duplicate_field"),
        (b"a=1&&b=2", b"a=1&b=2", "malformed"),
        (b"a&b=1=2", b"a=1&b=2", "malformed"),
        (b"a=1&b", b"a=1&b=2", "malformed"),
        (b"=1", b"a=1", "malformed"),
        (b"a+b=1", b"a=1&b=2", "malformed"),
        (b"a%20b=1", b"a=1&b=2", "malformed"),
        (b"a=%4", b"a=1", "malformed"),
        (b"a=%zz", b"a=1", "malformed"),
        (b"a=1%", b"a=1", "malformed"),
        (b"", b"a=1", "malformed"),
        (b"charset=latin-1&a=1", b"charset=gbk&a=1", "unknown_charset"),
        (b"x%2541=1", b"x%41=1", "malformed"),
    ],
    ids=[
        "raw-nul-in-name", "raw-nul-in-value", "duplicate", "duplicate-later", "empty-pair",
        "pair-without-equals", "trailing-name", "empty-name", "space-in-name",
        "escaped-space-in-name", "short-escape", "bad-escape", "trailing-percent", "empty",
        "unknown-charset", "escaped-twice",
    ],
)  # fmt: skip
def test_refusals_on_both_paths(body: bytes, warm: bytes, reason: str | None) -> None:
    """Bad bodies are refused with the same reason whether or not their names are cached."""
    if reason is None:  # a raw NUL in a value is kept as it is
        _form._NAMES.clear()
        assert dict(parse_form(body).values) == {"a": b"1\x00", "b": b"2"}
        parse_form(warm)
        assert dict(parse_form(body).values) == {"a": b"1\x00", "b": b"2"}
        return
    assert _refused_on_both_paths(body, warm) == reason


def test_an_empty_body_says_so() -> None:
    """The empty body is refused as ``malformed`` with its own message."""
    with pytest.raises(NotificationError, match=r"^the body is empty$") as caught:
        parse_form(b"")
    assert caught.value.reason == "malformed"


def test_the_name_cache_is_bounded(cold_names: dict[bytes, str]) -> None:
    """At most 1024 names are remembered, however many a flood of bodies makes up."""
    body = b"&".join(b"n%d=1" % i for i in range(1100))
    assert len(parse_form(body).values) == 1100
    assert len(cold_names) == 1024
    assert cold_names[b"n0"] == "n0"
    assert b"n1024" not in cold_names
    # Names sent escaped are never remembered.
    cold_names.clear()
    parse_form(b"x%41=1&y=2")
    assert cold_names == {b"y": "y"}


def test_names_are_at_most_64_characters() -> None:
    """A 64-character name is an Alipay field name; 65 characters is not."""
    assert _both_paths(b"a" * 64 + b"=1") == {"a" * 64: b"1"}
    _form._NAMES.clear()
    with pytest.raises(NotificationError) as caught:
        parse_form(b"a" * 65 + b"=1")
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    ("charset", "codec"),
    [("utf-8", "utf-8"), ("UTF-8", "utf-8"), ("gbk", "gb18030"), ("GBK", "gb18030"),
     ("gb2312", "gb18030"), ("gb18030", "gb18030"), ("utf8", None), ("latin-1", None),
     ("", None)],
)  # fmt: skip
def test_codecs(charset: str, codec: str | None) -> None:
    """The charsets Alipay sends, any case; nothing else."""
    assert codec_for(charset) == codec
    if codec is not None:
        assert parse_form(b"charset=" + charset.encode() + b"&a=1").codec == codec
    assert parse_form(b"a=1").codec == "utf-8"


def test_decode_fields_uses_the_forms_charset() -> None:
    """GBK bytes decode as GBK; bytes invalid in the charset are ``bad_encoding``."""
    form = parse_form(b"charset=GBK&subject=%D6%D0%CE%C4")
    assert decode_fields(form) == {"charset": "GBK", "subject": "中文"}
    bad = AlipayForm(values={"subject": b"\xff\xfe"}, codec="utf-8")
    with pytest.raises(NotificationError) as caught:
        decode_fields(bad)
    assert caught.value.reason == "bad_encoding"
    assert "subject" in str(caught.value)


def test_string_to_sign_exact_bytes() -> None:
    """Sorted by name, sign and sign_type left out; empty values kept unless dropped."""
    form = AlipayForm(
        values={"b": b"2", "sign": b"S", "a": b"", "sign_type": b"RSA2", "c": b"x y"},
        codec="utf-8",
    )
    assert string_to_sign(form) == b"a=&b=2&c=x y"
    assert string_to_sign(form, drop_empty=True) == b"b=2&c=x y"
    assert string_to_sign(AlipayForm(values={"sign": b"S"}, codec="utf-8")) == b""


def test_encode_form_exact_bytes() -> None:
    """Percent-encoded in the codec, ``+`` for a space, ``&`` between pairs."""
    pairs = [("a", "x y"), ("b", "中"), ("c", "&=+")]
    assert encode_form(pairs, "utf-8") == b"a=x+y&b=%E4%B8%AD&c=%26%3D%2B"
    assert encode_form(pairs, "gb18030") == b"a=x+y&b=%D6%D0&c=%26%3D%2B"


# -- the signature check ------------------------------------------------------------------------


def _fields(**changes: str) -> dict[str, str]:
    fields = {
        "notify_id": "2024052001222131406012345678901234",
        "notify_type": "trade_status_sync",
        "out_trade_no": "ORDER-1001",
        "total_amount": "88.88",
        "trade_status": "TRADE_SUCCESS",
        "trade_no": "2024052022001400001234567890",
        "gmt_payment": "2024-05-20 13:14:05",
        "app_id": APP_ID,
        "sign_type": "RSA2",
    }
    fields.update(changes)
    return fields


def _verify(body: bytes) -> list[tuple[str, int | None]]:
    provider = AlipayProvider(channel="alipay", app_id=APP_ID, public_key=TEST_PUBLIC)
    raw = RawNotification(channel="alipay", headers={}, body=body, received_at=NOW)
    return [(str(e.type), e.amount) for e in provider.verify(raw).events]


def _with_sign(body: bytes, sign: bytes) -> bytes:
    head, _, _ = body.rpartition(b"&sign=")
    return head + b"&sign=" + sign


def _sign_of(body: bytes) -> bytes:
    return body.rpartition(b"&sign=")[2]


def test_a_genuine_body_is_accepted() -> None:
    """The baseline for the cases below: the body as signed verifies."""
    assert _verify(sign_notification(_fields(), TEST_PRIVATE)) == [("payment.order.paid", 8888)]


@pytest.mark.parametrize(
    "junk",
    [b"%21", b"%2A", b"%0A", b"+", b"%3D%3D%3D%3D"],
    ids=["bang", "star", "newline", "space", "extra-padding"],
)
def test_a_sign_with_non_base64_characters_is_bad_base64(junk: bytes) -> None:
    """Characters outside the base64 alphabet are refused, not skipped: the valid signature
    with one of them inserted must not verify (strict decoding)."""
    body = sign_notification(_fields(), TEST_PRIVATE)
    sign = _sign_of(body)
    for tampered in (sign[:8] + junk + sign[8:], junk + sign, sign + junk):
        with pytest.raises(SignatureError) as caught:
            _verify(_with_sign(body, tampered))
        assert caught.value.reason == "bad_base64"


def test_a_sign_that_decodes_but_does_not_match_is_bad_signature() -> None:
    """Valid base64 of the wrong bytes is ``bad_signature``, not ``bad_base64``."""
    body = sign_notification(_fields(), TEST_PRIVATE)
    wrong = base64.b64encode(b"\x01" * 256).replace(b"+", b"%2B").replace(b"/", b"%2F")
    with pytest.raises(SignatureError) as caught:
        _verify(_with_sign(body, wrong.replace(b"=", b"%3D")))
    assert caught.value.reason == "bad_signature"


def test_empty_values_are_tried_both_ways_only_when_present() -> None:
    """A body signed without its empty pairs (the second convention) verifies too."""
    fields = _fields(body="")
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k != "sign_type")
    sign = base64.b64encode(rsa_sign(TEST_PRIVATE, content.encode(), digest="sha256"))
    body = encode_form([*fields.items(), ("sign", sign.decode())], "utf-8")
    assert _verify(body) == [("payment.order.paid", 8888)]
