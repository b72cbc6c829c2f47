"""One attempt: POST a signed delivery with aiohttp, or call an in-process handler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from payhook._clock import Clock
from payhook.dispatch._classify import (
    RESPONSE_EXCERPT_BYTES,
    Outcome,
    classify_exception,
    classify_handler_error,
    classify_response,
)
from payhook.dispatch._request import build_headers, redact_url
from payhook.events import Event
from payhook.storage._outbox import ClaimedDelivery

__all__ = ["Handler", "call_handler", "post"]

Handler = Callable[[Event], Awaitable[None]]

# A response body is read up to this much so the connection can be reused; larger ones
# close the connection instead.
_DRAIN_LIMIT = 64 * 1024


def _ms(clock: Clock, started: float) -> int:
    return max(0, int((clock.monotonic() - started) * 1000))


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


async def post(
    session: aiohttp.ClientSession,
    delivery: ClaimedDelivery,
    *,
    keys: Sequence[bytes],
    timeout: aiohttp.ClientTimeout,
    clock: Clock,
) -> Outcome:
    """POST ``delivery`` to its subscription; never raises (except on cancellation).

    Success is any 2xx within ``timeout``; redirects are not followed.
    """
    started = clock.monotonic()
    url = delivery.url or ""
    if not keys:
        return Outcome(
            ok=False, latency_ms=0, error="the subscription has no active signing secret"
        )
    now = clock.now()
    headers = build_headers(
        event_id=delivery.event_id,
        body=delivery.body,
        timestamp=int(now.timestamp()),
        secret_keys=keys,
    )
    try:
        async with session.post(
            url, data=delivery.body, headers=headers, allow_redirects=False, timeout=timeout
        ) as response:
            content = response.content
            excerpt = b""
            if not content.at_eof():  # a 204 has nothing to read
                excerpt = await _read_excerpt(content)
            return classify_response(
                response.status,
                latency_ms=_ms(clock, started),
                body=excerpt,
                retry_after=response.headers.get("Retry-After"),
                now=now,
            )
    except Exception as exc:  # noqa: BLE001 - a subscriber's failure is a failed attempt
        return classify_exception(
            exc, latency_ms=_ms(clock, started), redact=((url, redact_url(url)),)
        )


async def call_handler(
    handler: Handler, delivery: ClaimedDelivery, *, timeout_s: float, clock: Clock
) -> Outcome:
    """Run an in-process handler on the delivery's event; a raise is a failed attempt."""
    started = clock.monotonic()
    try:
        event = Event.from_body(delivery.body)
        async with asyncio.timeout(timeout_s):
            await handler(event)
    except Exception as exc:  # noqa: BLE001 - user code: any error is a failed attempt
        return classify_handler_error(exc, latency_ms=_ms(clock, started))
    return Outcome(ok=True, latency_ms=_ms(clock, started))
