"""The HTTP sink's classification: status codes, Retry-After values and transport exceptions."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from payhook.dispatch.sinks._base import ErrorClass, SinkContext
from payhook.dispatch.sinks.http import (
    HttpSink,
    classify_exception,
    classify_response,
    parse_retry_after,
)
from payhook.storage._outbox import ClaimedDelivery
from payhook.testing import FakeClock

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
CERT = ssl.SSLCertVerificationError()
KEY = ConnectionKey("example.test", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("status", "ok", "gone"),
    [
        (200, True, False),
        (201, True, False),
        (204, True, False),
        (299, True, False),
        (301, False, False),
        (302, False, False),
        (400, False, False),
        (404, False, False),
        (410, False, True),
        (429, False, False),
        (500, False, False),
        (503, False, False),
    ],
    ids=lambda v: str(v),
)
def test_status_codes(status: int, ok: bool, gone: bool) -> None:
    """Only 2xx succeeds; redirects fail (never followed); 410 asks to be disabled."""
    outcome = classify_response(status, latency_ms=5, now=NOW)
    assert outcome.ok is ok
    assert outcome.disable_reason == ("HTTP 410 Gone" if gone else None)
    assert outcome.status_code == status
    assert outcome.latency_ms == 5
    if not ok:
        assert outcome.error_class is ErrorClass.HTTP
        assert outcome.error == f"HTTP {status}"


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "120", 120.0),
        (503, "7", 7.0),
        (429, "Sat, 28 Nov 2026 12:02:00 GMT", 120.0),
        (500, "120", None),
        (429, None, None),
    ],
    ids=["429-seconds", "503-seconds", "429-date", "500-ignored", "absent"],
)
def test_retry_after_only_on_429_and_503(
    status: int, header: str | None, expected: float | None
) -> None:
    """The hint is read from 429 and 503 answers only."""
    outcome = classify_response(status, latency_ms=1, retry_after=header, now=NOW)
    assert outcome.retry_after_s == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        (" 30 ", 30.0),
        ("99999999999999", 366 * 86400.0),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("٣", None),
        ("x" * 100, None),
        ("Sat, 99 Nov 2026 12:00:30 GMT", None),
    ],
    ids=[
        "zero", "spaces", "huge", "date", "past-date", "negative", "fraction", "word",
        "empty", "arabic-digit", "long", "bad-date",
    ],
)  # fmt: skip
def test_parse_retry_after(value: str, expected: float | None) -> None:
    """Seconds or an HTTP date; anything malformed or past is ignored, nothing raises."""
    assert parse_retry_after(value, now=NOW) == expected


def test_response_excerpt_is_first_kib_without_nul() -> None:
    """The stored response body is the first 1 KiB, decoded leniently, with NUL replaced."""
    outcome = classify_response(500, latency_ms=1, body=b"\x00ab\xff" + b"z" * 5000, now=NOW)
    assert outcome.response_body is not None
    assert "\x00" not in outcome.response_body
    assert outcome.response_body.startswith("\ufffdab\ufffd")
    assert len(outcome.response_body) == 1024
    assert classify_response(204, latency_ms=1, body=b"", now=NOW).response_body is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), ErrorClass.TIMEOUT),
        (TimeoutError("timed out"), ErrorClass.TIMEOUT),
        (aiohttp.ServerTimeoutError("read timeout"), ErrorClass.TIMEOUT),
        (aiohttp.ConnectionTimeoutError("connect timeout"), ErrorClass.TIMEOUT),
        (aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name unknown")), ErrorClass.DNS),
        (aiohttp.ClientConnectorError(KEY, socket.gaierror(-2, "x")), ErrorClass.DNS),
        (socket.gaierror(-2, "Name or service not known"), ErrorClass.DNS),
        (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "no")), ErrorClass.CONNECT),
        (aiohttp.ServerDisconnectedError(), ErrorClass.CONNECT),
        (ConnectionResetError(), ErrorClass.CONNECT),
        (aiohttp.ClientConnectorCertificateError(KEY, CERT), ErrorClass.TLS),
        (aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError("handshake")), ErrorClass.TLS),
        (ssl.SSLError("alert"), ErrorClass.TLS),
        (aiohttp.ClientPayloadError("truncated"), ErrorClass.HTTP),
        (aiohttp.InvalidURL("nope"), ErrorClass.HTTP),
        (ValueError("odd"), ErrorClass.HTTP),
    ],
    ids=[
        "timeout", "timeout-text", "read-timeout", "connect-timeout", "dns", "dns-legacy",
        "gaierror", "refused", "disconnected", "reset", "certificate", "ssl", "raw-ssl",
        "payload", "invalid-url", "other",
    ],
)  # fmt: skip
def test_exceptions_map_to_error_classes(exc: BaseException, expected: ErrorClass) -> None:
    """Transport failures get a stable error class."""
    outcome = classify_exception(exc, latency_ms=3)
    assert not outcome.ok
    assert outcome.error_class is expected
    assert outcome.error is not None
    assert outcome.error.startswith(type(exc).__name__)


def test_exception_text_is_redacted_and_bounded() -> None:
    """Credentials in a URL never reach the stored error text, which is capped at 500 chars."""
    url = "https://user:hunter2@hooks.example/x?token=abc"
    exc = aiohttp.InvalidURL(url + "y" * 1000)
    outcome = classify_exception(exc, latency_ms=1, redact=((url, "https://hooks.example/x"),))
    assert outcome.error is not None
    assert "hunter2" not in outcome.error
    assert "token=abc" not in outcome.error
    assert len(outcome.error) == 500


@pytest.mark.anyio
async def test_sink_without_an_active_secret_sends_nothing() -> None:
    """A subscription whose secrets all expired gets a failed attempt, not an unsigned POST;
    the sink opens and closes again (a dispatcher can run more than once)."""
    clock = FakeClock(NOW)
    sink = HttpSink(SinkContext(clock=clock, request_timeout_s=5.0, concurrency=2))
    delivery = ClaimedDelivery(
        id="dlv_01",
        event_id="evt_01",
        subscription_id="sub_01",
        subscription_name="orders",
        kind="http",
        url="http://127.0.0.1:9/never",
        secrets_json='[{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", '
        '"expires_at": "2026-11-28T11:00:00Z"}]',
        body=b"{}",
        attempt=1,
        claim_token="t",
        claimed_at=NOW,
        lease_until=NOW + timedelta(seconds=40),
    )
    with pytest.raises(RuntimeError, match="before open"):
        await sink.send(delivery)
    for _ in range(2):
        await sink.open()
        outcome = await sink.send(delivery)
        await sink.close()
        assert not outcome.ok
        assert outcome.error == "the subscription has no active signing secret"
