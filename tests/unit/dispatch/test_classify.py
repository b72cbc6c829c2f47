"""Outcome classification: status codes, Retry-After values and transport exceptions."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from payhook.dispatch._classify import (
    ErrorClass,
    classify_exception,
    classify_handler_error,
    classify_response,
    clean_text,
    parse_retry_after,
)

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
    assert outcome.gone is gone
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


def test_handler_errors() -> None:
    """A raising handler is a 'handler' failure; a handler timeout is a 'timeout'."""
    assert (
        classify_handler_error(RuntimeError("boom"), latency_ms=1).error_class is ErrorClass.HANDLER
    )
    assert classify_handler_error(TimeoutError(), latency_ms=1).error_class is ErrorClass.TIMEOUT
    assert classify_handler_error(RuntimeError("boom"), latency_ms=1).error == "RuntimeError: boom"


def test_clean_text() -> None:
    """clean_text cuts and removes NUL characters."""
    assert clean_text("a\x00b" * 10, 4) == "a\ufffdba"
