"""Event ids sort by time; provider times become RFC 3339 with an offset."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from hypothesis import given, strategies as st

from payhook.errors import NotificationError
from payhook.events import new_id, parse_beijing, parse_rfc3339, to_rfc3339
from payhook.events._filters import filter_matches, validate_filter

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def test_ids_sort_by_time() -> None:
    """An id made later sorts after one made earlier, whatever the random part."""
    ids = [new_id("evt", now_ms=ms) for ms in (1, 2, 1000, 10**12, 2**47)]
    assert ids == sorted(ids)
    assert all(i.startswith("evt_") and len(i) == 30 for i in ids)
    assert len({new_id("evt", now_ms=5) for _ in range(100)}) == 100


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_id_is_crockford_base32_of_time_and_randomness(ms: int, random_part: bytes) -> None:
    """The id is the 26 Crockford base32 digits of (48-bit ms << 80 | 80 random bits)."""
    value = (ms << 80) | int.from_bytes(random_part, "big")
    digits = "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))
    with mock.patch("payhook.events._ids.os.urandom", return_value=random_part):
        assert new_id("evt", now_ms=ms) == f"evt_{digits}"


def test_beijing_time_to_rfc3339() -> None:
    """Beijing local time keeps its +08:00 offset."""
    value = parse_beijing("2026-11-28 09:00:00", field="gmt_payment")
    assert to_rfc3339(value) == "2026-11-28T09:00:00+08:00"
    assert to_rfc3339(parse_beijing("20261128090000", field="time_end")) == (
        "2026-11-28T09:00:00+08:00"
    )
    assert value.astimezone(UTC) == datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def test_utc_renders_with_z() -> None:
    """UTC times render with Z and milliseconds when they have them."""
    assert to_rfc3339(datetime(2026, 11, 28, 1, 2, 3, 456000, tzinfo=UTC)) == (
        "2026-11-28T01:02:03.456Z"
    )


@pytest.mark.parametrize("text", ["2026-13-01 00:00:00", "yesterday", ""], ids=str)
def test_bad_times_refused(text: str) -> None:
    """Unparseable provider times are refused, not guessed."""
    with pytest.raises(NotificationError):
        parse_beijing(text, field="t")


def test_rfc3339_needs_offset() -> None:
    """A time without an offset is ambiguous and refused."""
    with pytest.raises(NotificationError):
        parse_rfc3339("2026-11-28T09:00:00", field="success_time")
    assert parse_rfc3339("2026-11-28T09:00:00+08:00", field="t").utcoffset() is not None


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["*"], "payment.order.paid", True),
        (["payment.order.paid"], "payment.order.paid", True),
        (["payment.refund.*"], "payment.refund.succeeded", True),
        (["payment.refund.*"], "payment.order.paid", False),
        (["payment.*"], "payment.order.closed", True),
        (["payment.order"], "payment.order.paid", False),
        (["payment.order.paid"], "payment.order.paidx", False),
    ],
    ids=["star", "exact", "prefix", "prefix-miss", "top-prefix", "not-a-prefix", "exact-miss"],
)
def test_filters(patterns: list[str], event_type: str, expected: bool) -> None:
    """Filters select by '*', exact type or dotted prefix wildcard."""
    assert filter_matches(patterns, event_type) is expected


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [("*", True), ("payment.*", True), ("payment.order.paid", True), ("payment.*.paid", False),
     ("Payment.order", False), ("", False), ("payment.", False), ("**", False)],
    ids=str,
)  # fmt: skip
def test_filter_syntax(pattern: str, ok: bool) -> None:
    """Only '*', dotted names and a trailing '.*' are valid filters."""
    assert validate_filter(pattern) is ok
