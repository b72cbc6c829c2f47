"""The bounded audit record of a refused callback (contract §14): size, digest, excerpt."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given, strategies as st

from payhook._stores import EXCERPT_BYTES, RefusedCallback, audit_excerpt

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def build(headers: dict[str, str], body: bytes | list[bytes]) -> RefusedCallback:
    return RefusedCallback.build(
        channel="alipay",
        received_at=NOW,
        reason="bad_signature",
        remote_addr="203.0.113.7",
        headers=headers,
        body=body,
    )


def test_small_callback_is_kept_whole_headers_first() -> None:
    """Headers, one per line in the order received, a blank line, then the body."""
    record = build({"content-type": "text/plain", "x-a": "1"}, b"sign=abc&x=1")
    assert record.excerpt == "content-type: text/plain\nx-a: 1\n\nsign=abc&x=1"
    assert record.size == 12
    assert record.digest == hashlib.sha256(b"sign=abc&x=1").hexdigest()
    assert (record.channel, record.reason, record.remote_addr) == (
        "alipay",
        "bad_signature",
        "203.0.113.7",
    )


def test_large_body_is_cut_but_digest_and_size_cover_all_of_it() -> None:
    body = b"a" * 60_000
    record = build({"content-type": "text/plain"}, body)
    assert len(record.excerpt.encode("utf-8")) == EXCERPT_BYTES
    assert record.excerpt.startswith("content-type: text/plain\n\naaaa")
    assert record.excerpt.endswith("\u2026")
    assert record.size == 60_000
    assert record.digest == hashlib.sha256(body).hexdigest()


def test_chunks_make_the_same_record_as_their_bytes() -> None:
    chunks = [b"abc", b"\xff\x00", b"def"]
    assert build({}, chunks) == build({}, b"".join(chunks))


def test_credentials_in_headers_are_masked() -> None:
    """Authorization, Cookie and any header named like a token or secret: value masked."""
    headers = {
        "authorization": "Bearer sk-live-123",
        "cookie": "session=abc",
        "x-admin-token": "t0ken",
        "x-webhook-secret": "whsec_xyz",
        "x-api-key": "k3y",
        "wechatpay-serial": "5157F09EFDC096DE15EBE81A47057A72",
    }
    excerpt = build(headers, b"body").excerpt
    for name in ("authorization", "cookie", "x-admin-token", "x-webhook-secret", "x-api-key"):
        assert f"{name}: ***" in excerpt
    for secret in ("sk-live-123", "session=abc", "t0ken", "whsec_xyz", "k3y"):
        assert secret not in excerpt
    assert "wechatpay-serial: 5157F09EFDC096DE15EBE81A47057A72" in excerpt


def test_bytes_that_are_not_text_are_escaped() -> None:
    """Invalid UTF-8 and control characters (NUL: PostgreSQL refuses it in text) become
    ``\\xNN``; UTF-8 text, tabs and line breaks stay as they are."""
    excerpt = build({"x-h": "a\x00b"}, "支付\t\r\n".encode() + b"\xff\xfe\x00\x1b").excerpt
    assert excerpt == "x-h: a\\x00b\n\n支付\t\r\n\\xff\\xfe\\x00\\x1b"


def test_huge_headers_leave_the_body_half_the_room() -> None:
    headers = {f"x-h{i}": "v" * 200 for i in range(50)}
    excerpt = build(headers, b"b" * 5000).excerpt
    head, _, body = excerpt.partition("\n\n")
    assert len(excerpt.encode("utf-8")) <= EXCERPT_BYTES
    assert head.startswith("x-h0: vvv")
    assert head.endswith("\u2026")
    assert len(body.encode("utf-8")) >= EXCERPT_BYTES // 2 - 2


def test_a_short_body_leaves_its_room_to_the_headers() -> None:
    headers = {f"x-h{i}": "v" * 100 for i in range(30)}
    excerpt = build(headers, b"tiny").excerpt
    assert excerpt.endswith("\n\ntiny")
    assert len(excerpt.encode("utf-8")) == EXCERPT_BYTES


def test_multibyte_text_is_never_cut_inside_a_character() -> None:
    excerpt = build({}, "支".encode() * 2000).excerpt
    assert len(excerpt.encode("utf-8")) <= EXCERPT_BYTES
    assert excerpt.endswith("支\u2026")


def test_long_remote_address_and_reason_fit_their_columns() -> None:
    record = RefusedCallback.build(
        channel="c", received_at=NOW, reason="r" * 100, remote_addr="a" * 100, headers={}, body=b""
    )
    assert (len(record.reason), len(record.remote_addr or "")) == (64, 64)


@given(
    headers=st.dictionaries(st.text(max_size=40), st.text(max_size=3000), max_size=20),
    body=st.binary(max_size=6000),
)
def test_any_callback_makes_a_bounded_plain_text_excerpt(
    headers: dict[str, str], body: bytes
) -> None:
    """Whatever arrives: at most 2 KiB of UTF-8, no NUL or other control character but tab
    and line breaks, and a body that fits comes out whole."""
    excerpt = audit_excerpt(headers, body)
    encoded = excerpt.encode("utf-8")  # raises on a lone surrogate
    assert len(encoded) <= EXCERPT_BYTES
    assert not any(ord(c) < 0x20 and c not in "\t\n\r" for c in excerpt)
    assert not any(0x7F <= ord(c) < 0xA0 for c in excerpt)
    if not headers and len(body) <= 1000 and body.isascii() and body.isalnum():
        assert excerpt == "\n\n" + body.decode()
