"""Fixed examples for the HTTP sink's classification, from the mutation run (issue 14).

Each case pins a boundary a one-token change would move: the edges of the 2xx range, the
Retry-After length limit and zones, a Retry-After of exactly now, and the exact outcome of a
failed handler. See docs/mutation-testing.md.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from payhook.dispatch.sinks._base import (
    ErrorClass,
    Outcome,
    SinkContext,
    describe_error,
    elapsed_ms,
)
from payhook.dispatch.sinks.handler import classify_handler_error
from payhook.dispatch.sinks.http import classify_exception, classify_response, parse_retry_after
from payhook.testing import FakeClock

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
MAX_HINT_S = 366 * 86400.0


@pytest.mark.parametrize(
    ("status", "ok"),
    [(100, False), (199, False), (200, True), (299, True), (300, False), (304, False),
     (399, False)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_only_200_to_299_is_delivered(status: int, ok: bool) -> None:
    """199 and 300 sit next to the 2xx range: neither counts as delivered, nor does any 3xx."""
    outcome = classify_response(status, latency_ms=2, body=b"", now=NOW)
    assert outcome.ok is ok
    assert outcome.status_code == status
    if ok:
        assert (outcome.error_class, outcome.error) == (None, None)
    else:
        assert outcome.error_class is ErrorClass.HTTP
        assert outcome.error == f"HTTP {status}"
        assert outcome.disable_reason is None
        assert outcome.retry_after_s is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # An HTTP date in another zone is the same instant: +0800 is 8 hours ahead of UTC.
        ("Sat, 28 Nov 2026 20:02:00 +0800", 120.0),
        ("Sat, 28 Nov 2026 04:02:00 -0800", 120.0),
        # RFC 5322: -0000 is UTC with the zone unknown; Python parses it as a naive time.
        ("Sat, 28 Nov 2026 12:02:00 -0000", 120.0),
        ("Sat, 28 Nov 2026 12:02:00 +0000", 120.0),
        # Exactly now, or one second ago, is no hint at all; one second ahead is.
        ("Sat, 28 Nov 2026 12:00:00 GMT", None),
        ("Sat, 28 Nov 2026 11:59:59 GMT", None),
        ("Sat, 28 Nov 2026 12:00:01 GMT", 1.0),
        ("Sat, 28 Nov 2026 20:00:00 +0800", None),
        ("1", 1.0),
    ],
    ids=["plus-0800", "minus-0800", "minus-0000", "plus-0000", "now", "past-1s", "ahead-1s",
         "now-plus-0800", "one-second"],
)  # fmt: skip
def test_retry_after_dates_in_every_zone(value: str, expected: float | None) -> None:
    """A Retry-After date is read in its own zone; a naive one (``-0000``) is UTC."""
    assert parse_retry_after(value, now=NOW) == expected
    outcome = classify_response(503, latency_ms=1, retry_after=value, now=NOW)
    assert outcome.retry_after_s == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9" * 64, MAX_HINT_S),
        ("9" * 65, None),
        ("0" * 63 + "7", 7.0),
        ("0" * 64 + "7", None),
        (" " * 100 + "7" + " " * 100, 7.0),
        ("   ", None),
        (None, None),
    ],
    ids=["64-digits", "65-digits", "64-with-zeros", "65-with-zeros", "padded", "blank", "none"],
)
def test_retry_after_length_limit(value: str | None, expected: float | None) -> None:
    """At most 64 characters after stripping: a longer value is ignored, not parsed."""
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_is_capped_at_366_days() -> None:
    """Both forms are capped at 366 days; one second less is kept as it is."""
    assert parse_retry_after(str(366 * 86400 + 1), now=NOW) == MAX_HINT_S
    assert parse_retry_after(str(366 * 86400 - 1), now=NOW) == MAX_HINT_S - 1
    assert parse_retry_after("Sat, 28 Nov 2099 12:00:00 GMT", now=NOW) == MAX_HINT_S


def test_every_outcome_field_of_a_429_with_a_body() -> None:
    """One failure spelled out field by field."""
    outcome = classify_response(
        429, latency_ms=42, body=b"slow down\x00", retry_after="30", now=NOW
    )
    assert outcome.ok is False
    assert outcome.latency_ms == 42
    assert outcome.status_code == 429
    assert outcome.error_class is ErrorClass.HTTP
    assert outcome.error == "HTTP 429"
    assert outcome.response_body == "slow down\ufffd"
    assert outcome.retry_after_s == 30.0
    assert outcome.disable_reason is None


def test_every_outcome_field_of_a_success() -> None:
    """A success carries the status, the latency and the body excerpt, and no error."""
    outcome = classify_response(201, latency_ms=7, body="已收到".encode(), now=NOW)
    assert outcome.ok is True
    assert (outcome.latency_ms, outcome.status_code) == (7, 201)
    assert outcome.response_body == "已收到"
    assert (outcome.error_class, outcome.error, outcome.retry_after_s) == (None, None, None)
    assert outcome.disable_reason is None


def test_a_transport_failure_is_never_ok() -> None:
    """A transport exception gives ok False, no status and the exception's text."""
    outcome = classify_exception(ConnectionRefusedError(111, "refused"), latency_ms=9)
    assert outcome.ok is False
    assert outcome.latency_ms == 9
    assert outcome.status_code is None
    assert outcome.error_class is ErrorClass.CONNECT
    assert outcome.error == "ConnectionRefusedError: [Errno 111] refused"


@pytest.mark.parametrize(
    ("exc", "error_class", "error"),
    [
        (RuntimeError("boom"), ErrorClass.HANDLER, "RuntimeError: boom"),
        (TimeoutError(), ErrorClass.TIMEOUT, "TimeoutError"),
        (ValueError(""), ErrorClass.HANDLER, "ValueError"),
    ],
    ids=["raise", "timeout", "empty-message"],
)
def test_handler_errors_are_failed_attempts(
    exc: BaseException, error_class: ErrorClass, error: str
) -> None:
    """A raising or overrunning handler is a failed attempt: ``ok`` is False, never True."""
    outcome = classify_handler_error(exc, latency_ms=4)
    assert outcome.ok is False
    assert outcome.latency_ms == 4
    assert outcome.error_class is error_class
    assert outcome.error == error
    assert (outcome.status_code, outcome.response_body, outcome.retry_after_s) == (None,) * 3


@pytest.mark.parametrize(
    ("error_class", "wire"),
    [
        (ErrorClass.TIMEOUT, "timeout"),
        (ErrorClass.CONNECT, "connect"),
        (ErrorClass.DNS, "dns"),
        (ErrorClass.TLS, "tls"),
        (ErrorClass.HTTP, "http"),
        (ErrorClass.HANDLER, "handler"),
    ],
)
def test_error_class_wire_values(error_class: ErrorClass, wire: str) -> None:
    """The values stored in ``payhook_delivery_attempts.error_class`` and shown to operators."""
    assert str(error_class) == wire
    assert error_class.value == wire


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (Outcome, {"ok": True, "latency_ms": 1}),
        (SinkContext, {"clock": FakeClock(NOW), "request_timeout_s": 1.0, "concurrency": 1}),
    ],
    ids=["Outcome", "SinkContext"],
)
def test_sink_value_types_are_frozen_keyword_only_and_slotted(
    cls: type[Any], fields: dict[str, Any]
) -> None:
    """An outcome cannot be changed after the fact, nor built by position."""
    value = cls(**fields)
    name = next(iter(fields))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, name, fields[name])
    with pytest.raises(TypeError):
        cls(*fields.values())
    assert not hasattr(value, "__dict__")


class _StoppedClock(FakeClock):
    """A clock whose monotonic reading is set by hand."""

    reading = 0.0

    def monotonic(self) -> float:
        return self.reading


@pytest.mark.parametrize(
    ("started", "now", "expected"),
    [(10.0, 10.0, 0), (10.0, 10.0009, 0), (10.0, 10.0015, 1), (10.0, 11.2345, 1234),
     (10.0, 9.0, 0), (0.0, 0.25, 250)],
    ids=["zero", "sub-ms", "one-ms", "seconds", "clock-went-back", "from-zero"],
)  # fmt: skip
def test_elapsed_ms(started: float, now: float, expected: int) -> None:
    """Whole milliseconds since the start, rounded down, never negative."""
    clock = _StoppedClock(NOW)
    clock.reading = now
    assert elapsed_ms(clock, started) == expected


def test_error_text_limit_and_nul() -> None:
    """Stored error texts are cut at exactly 500 characters, with NUL replaced."""
    assert len(describe_error(RuntimeError("x" * 486))) == 500
    assert describe_error(RuntimeError("x" * 487)) == "RuntimeError: " + "x" * 486
    text = describe_error(RuntimeError("\x00" + "y" * 1000))
    assert len(text) == 500
    assert text.startswith("RuntimeError: \ufffdy")
    assert describe_error(RuntimeError("a\x00b")) == "RuntimeError: a\ufffdb"
