"""What an attempt's result means: success, retry (with which error class), or "gone".

Pure functions: an HTTP status or an exception in, an :class:`Outcome` out. Error classes
are the stable labels stored with every attempt (``timeout``, ``connect``, ``dns``,
``tls``, ``http``, ``handler``).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import aiohttp

__all__ = [
    "RESPONSE_EXCERPT_BYTES",
    "ErrorClass",
    "Outcome",
    "classify_exception",
    "classify_handler_error",
    "classify_response",
    "clean_text",
    "parse_retry_after",
]

RESPONSE_EXCERPT_BYTES = 1024
ERROR_TEXT_CHARS = 500
# Retry-After hints longer than this are nonsense; the policy bounds them further.
_MAX_HINT_S = 366 * 86400.0


class ErrorClass(StrEnum):
    """Why an attempt failed, as stored in ``payhook_delivery_attempts.error_class``."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    DNS = "dns"
    TLS = "tls"
    HTTP = "http"
    HANDLER = "handler"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The result of one attempt.

    ``gone`` is set for HTTP 410: the subscriber asks to be disabled (Standard Webhooks).
    ``retry_after_s`` is a 429/503 ``Retry-After`` hint, already turned into seconds.
    """

    ok: bool
    latency_ms: int
    status_code: int | None = None
    error_class: ErrorClass | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after_s: float | None = None
    gone: bool = False


def clean_text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, without NUL (PostgreSQL text refuses it)."""
    return value[:limit].replace("\x00", "\ufffd")


def _excerpt(body: bytes) -> str | None:
    if not body:
        return None
    return clean_text(body[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace"), 4 * 1024)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """A ``Retry-After`` value (delay-seconds or HTTP-date) in seconds from ``now``.

    Returns ``None`` for a missing, malformed or past value; never raises.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        return min(float(int(text)), _MAX_HINT_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    if seconds <= 0:
        return None
    return min(seconds, _MAX_HINT_S)


def classify_response(
    status: int,
    *,
    latency_ms: int,
    body: bytes = b"",
    retry_after: str | None = None,
    now: datetime,
) -> Outcome:
    """The outcome of an HTTP response: any 2xx is a success, everything else a failure.

    Redirects (3xx) are failures too: payhook never follows them.
    """
    excerpt = _excerpt(body)
    if 200 <= status <= 299:
        return Outcome(ok=True, latency_ms=latency_ms, status_code=status, response_body=excerpt)
    hint = parse_retry_after(retry_after, now=now) if status in (429, 503) else None
    return Outcome(
        ok=False,
        latency_ms=latency_ms,
        status_code=status,
        error_class=ErrorClass.HTTP,
        error=f"HTTP {status}",
        response_body=excerpt,
        retry_after_s=hint,
        gone=status == 410,
    )


def _error_class(exc: BaseException) -> ErrorClass:
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | ssl.CertificateError):
        return ErrorClass.TLS
    os_error = getattr(exc, "os_error", None)
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror) or isinstance(
        os_error, socket.gaierror
    ):
        return ErrorClass.DNS
    if isinstance(exc, TimeoutError):  # includes aiohttp.ServerTimeoutError
        return ErrorClass.TIMEOUT
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return ErrorClass.CONNECT
    return ErrorClass.HTTP


def _describe(exc: BaseException, redact: tuple[tuple[str, str], ...]) -> str:
    text = str(exc)
    for secret, shown in redact:
        if secret:
            text = text.replace(secret, shown)
    name = type(exc).__name__
    return clean_text(f"{name}: {text}" if text else name, ERROR_TEXT_CHARS)


def classify_exception(
    exc: BaseException, *, latency_ms: int, redact: tuple[tuple[str, str], ...] = ()
) -> Outcome:
    """The outcome of an exception raised while sending (timeout, DNS, TLS, connect, …).

    Args:
        exc: what the HTTP client raised.
        latency_ms: time spent on the attempt.
        redact: ``(text, replacement)`` pairs applied to the message, e.g. the full URL
            (which may carry credentials) replaced by its redacted form.
    """
    return Outcome(
        ok=False,
        latency_ms=latency_ms,
        error_class=_error_class(exc),
        error=_describe(exc, redact),
    )


def classify_handler_error(exc: BaseException, *, latency_ms: int) -> Outcome:
    """The outcome of an in-process handler that raised (or timed out)."""
    error_class = ErrorClass.TIMEOUT if isinstance(exc, TimeoutError) else ErrorClass.HANDLER
    return Outcome(
        ok=False, latency_ms=latency_ms, error_class=error_class, error=_describe(exc, ())
    )
