"""The HTTP sink: a Standard-Webhooks-signed POST per delivery, on one aiohttp session.

Contract §6: success is any 2xx within ``request_timeout``; redirects are never followed;
a 429/503 ``Retry-After`` is honoured when longer than the schedule's wait; 410 asks to be
disabled; every attempt keeps the first KiB of the response body. What a response or an
aiohttp exception means is decided by the pure ``classify_*`` functions below.

Every connection is opened through :func:`guarded_socket_factory`, which refuses link-local
and cloud metadata addresses (and, with ``[dispatcher] refuse_private_targets``, private and
other non-public ones) after name resolution, so a name that resolves (or is re-bound) to such
an address is refused too. The check runs once per connection, not per request: kept-alive
connections are reused without it. A refused address is a failed attempt of class
``connect`` whose error says ``refused target: ...``; it is retried on the schedule like any
connect error (an operator fixes the URL, or the DNS record, and the next attempt goes).
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import aiohttp
import yarl

from payhook._targets import MASK, mask_url, refused_address, url_secrets
from payhook._version import __version__
from payhook.dispatch.sinks._base import (
    ErrorClass,
    Outcome,
    SinkContext,
    clean_text,
    describe_error,
    elapsed_ms,
)
from payhook.dispatch.sinks._signing import SecretKeys, webhook_headers
from payhook.storage import ClaimedDelivery

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType

__all__ = [
    "RESPONSE_EXCERPT_BYTES",
    "USER_AGENT",
    "HttpSink",
    "TargetRefusedError",
    "build_headers",
    "classify_exception",
    "classify_response",
    "guarded_socket_factory",
    "parse_retry_after",
    "url_redactions",
]

USER_AGENT = f"payhook/{__version__}"
RESPONSE_EXCERPT_BYTES = 1024
# Retry-After hints longer than this are nonsense; the policy bounds them further.
_MAX_HINT_S = 366 * 86400.0
# A response body is read up to this much so the connection can be reused; larger ones
# close the connection instead.
_DRAIN_LIMIT = 64 * 1024


class HttpSink:
    """POSTs every ``http``/``https`` subscription's deliveries, signed, at most
    ``concurrency`` connections at once; serves every subscription of its kind.
    """

    names = None

    def __init__(self, context: SinkContext) -> None:
        self._clock = context.clock
        self._timeout = aiohttp.ClientTimeout(total=context.request_timeout_s)
        self._concurrency = context.concurrency
        self._refuse_private = context.refuse_private_targets
        self._keys = SecretKeys()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpSink(open={self._session is not None})"

    async def open(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._concurrency,
                    limit_per_host=0,
                    socket_factory=guarded_socket_factory(refuse_private=self._refuse_private),
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"user-agent": USER_AGENT},
                trust_env=False,
                auto_decompress=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, delivery: ClaimedDelivery) -> Outcome:
        """POST ``delivery`` to its subscription's URL; never raises (except on cancellation)."""
        session = self._session
        if session is None:
            raise RuntimeError("HttpSink.send() before open()")
        clock = self._clock
        started = clock.monotonic()
        now = clock.now()
        keys = self._keys.active(delivery.secrets_json, now)
        if not keys:
            return Outcome(
                ok=False, latency_ms=0, error="the subscription has no active signing secret"
            )
        url = delivery.url or ""
        headers = build_headers(
            event_id=delivery.event_id,
            body=delivery.body,
            timestamp=int(now.timestamp()),
            secret_keys=keys,
        )
        try:
            async with session.post(
                url,
                data=delivery.body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                content = response.content
                excerpt = b""
                if not content.at_eof():  # a 204 has nothing to read
                    excerpt = await _read_excerpt(content)
                return classify_response(
                    response.status,
                    latency_ms=elapsed_ms(clock, started),
                    body=excerpt,
                    retry_after=response.headers.get("Retry-After"),
                    now=now,
                )
        except Exception as exc:  # noqa: BLE001 - a subscriber's failure is a failed attempt
            return classify_exception(
                exc, latency_ms=elapsed_ms(clock, started), redact=url_redactions(url)
            )


async def _read_excerpt(content: aiohttp.StreamReader) -> bytes:
    """The first KiB of a response body; the rest (up to 64 KiB) is drained and dropped."""
    excerpt = bytearray()
    while len(excerpt) < RESPONSE_EXCERPT_BYTES:
        chunk = await content.read(RESPONSE_EXCERPT_BYTES - len(excerpt))
        if not chunk:
            break
        excerpt += chunk
    drained = len(excerpt)
    while not content.at_eof() and drained < _DRAIN_LIMIT:
        chunk = await content.read(16 * 1024)
        if not chunk:
            break
        drained += len(chunk)
    return bytes(excerpt)


# --------------------------------------------------------------------------------------------
# the request


def build_headers(
    *, event_id: str, body: bytes, timestamp: int, secret_keys: Sequence[bytes]
) -> dict[str, str]:
    """The headers of one POST: JSON content type, payhook's user agent and the three
    Standard Webhooks headers (see :func:`~payhook.dispatch.sinks._signing.webhook_headers`).

    Args:
        event_id: the event's id (``evt_…``).
        body: the exact bytes that will be POSTed.
        timestamp: Unix seconds of this attempt.
        secret_keys: the subscription's active HMAC keys, newest first.
    """
    headers = webhook_headers(
        event_id=event_id, body=body, timestamp=timestamp, secret_keys=secret_keys
    )
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    return headers


def url_redactions(url: str) -> tuple[tuple[str, str], ...]:
    """What to replace in an error message about ``url`` so it shows no credentials: the
    URL as given and as aiohttp prints it, by its masked form
    (:func:`payhook._targets.mask_url`), then each credential on its own by ``***``."""
    masked = mask_url(url)
    pairs = [(url, masked)]
    try:
        normalised = str(yarl.URL(url))
    except (ValueError, TypeError):
        normalised = url
    if normalised != url:
        pairs.append((normalised, masked))
    pairs.extend((secret, MASK) for secret in url_secrets(url))
    return tuple(pairs)


# --------------------------------------------------------------------------------------------
# where a connection may go


class TargetRefusedError(OSError):
    """The address a connection would go to is refused
    (:func:`payhook._targets.refused_address`); aiohttp reports it as a connect error."""


def guarded_socket_factory(*, refuse_private: bool) -> Callable[[AddrInfoType], socket.socket]:
    """The ``socket_factory`` of the sink's connector: a plain socket for an allowed address,
    :class:`TargetRefusedError` for a refused one. aiohttp calls it with each resolved
    address it tries (literal IP hosts included), once per new connection.
    """

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _canonname, sockaddr = addr_info
        reason = refused_address(str(sockaddr[0]), refuse_private=refuse_private)
        if reason is not None:
            raise TargetRefusedError(errno.EACCES, f"refused target: {reason}")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


# --------------------------------------------------------------------------------------------
# what the answer means (pure)


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

    Redirects (3xx) are failures too: payhook never follows them. 410 Gone asks for the
    subscription to be disabled (Standard Webhooks).
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
        disable_reason="HTTP 410 Gone" if status == 410 else None,
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


def classify_exception(
    exc: BaseException, *, latency_ms: int, redact: tuple[tuple[str, str], ...] = ()
) -> Outcome:
    """The outcome of an exception raised while sending (timeout, DNS, TLS, connect, …).

    Args:
        exc: what aiohttp raised.
        latency_ms: time spent on the attempt.
        redact: ``(text, replacement)`` pairs applied to the message, e.g. the full URL
            (which may carry credentials) replaced by its redacted form.
    """
    return Outcome(
        ok=False,
        latency_ms=latency_ms,
        error_class=_error_class(exc),
        error=describe_error(exc, redact),
    )
