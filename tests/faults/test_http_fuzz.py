"""HTTP fuzz: >= 10,000 malformed callbacks per channel against a real ``payhook serve``.

Truncated bodies, wrong charsets, huge headers, invalid base64, JSON and XML bombs, wrong
content types, random bytes, authentic-but-hostile payloads and broken HTTP framing. The
server must answer every one without a 5xx (except the documented "authentic but our key
cannot decrypt it" 500), store no event, stay up, and keep its memory flat.

A transport error on the client side (a pooled keep-alive connection closed by the server
just as the next request goes out, which a loaded host makes likely) is not an answer: the
request is sent again on a fresh connection, and only an error that persists counts against
the server. Retried errors are reported, and bounded, apart from the statuses.

Run: ``.venv/bin/pytest tests/faults/test_http_fuzz.py -m slow -s``
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.faults._callbacks import PROVIDER_OF, Callbacks, Fact, is_success
from tests.faults._malformed import Generator, Malformed
from tests.faults._payhook import CHANNELS, PayhookServe, write_config

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REQUESTS_PER_CHANNEL = 10_000
CONCURRENCY = 16
RAW_SHARE = 0.02  # broken HTTP framing, over raw sockets
RSS_GROWTH_LIMIT = 24 * 1024 * 1024
TRANSPORT_RETRIES = 3  # a request is sent up to 1 + this many times when no answer comes
RETRIED_SHARE_LIMIT = 0.01  # more retried requests than this is a server problem
RAW_ANSWER_TIMEOUT_S = 30.0  # the server itself answers 408 after its 10 s read deadline


@dataclass
class Tally:
    """What the fuzz run saw."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    allowed_500: int = 0
    successes: list[str] = field(default_factory=list)
    transport_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    retried: collections.Counter[str] = field(default_factory=collections.Counter)
    raw_hangups: collections.Counter[str] = field(default_factory=collections.Counter)
    sent: int = 0
    rss_after_1000: int = 0


_RAW_REQUESTS = (
    # Content-Length promises more than arrives, then the client goes away.
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nnotify_id=1&sign=",
    # A chunked body whose chunk size is not hex.
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    # Both framings at once (request smuggling shape).
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # Negative and absurd lengths.
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nx",
    # Not HTTP at all.
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
    b"GARBAGE /notify/{ch}\r\n\r\n",
    # A header line without a colon, and a NUL in a header.
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nBroken header\r\nContent-Length: 0\r\n\r\n",
    b"POST /notify/{ch} HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
)


async def _open(
    port: int, tally: Tally
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to the server, retried like a provider would on a refused connect."""
    for attempt in range(TRANSPORT_RETRIES + 1):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            if attempt == TRANSPORT_RETRIES:
                tally.transport_errors[f"raw {type(exc).__name__}"] += 1
                return None
            tally.retried[f"raw {type(exc).__name__}"] += 1
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


async def _raw(port: int, channel: str, rng: random.Random, tally: Tally) -> None:
    request = rng.choice(_RAW_REQUESTS).replace(b"{ch}", channel.encode())
    tally.kinds["raw_framing"] += 1
    opened = await _open(port, tally)
    if opened is None:
        return
    reader, writer = opened
    try:
        writer.write(request)
        await writer.drain()
        if b"Content-Length: 5000" in request:
            return  # hang up mid-body
        try:
            head = await asyncio.wait_for(reader.read(64), timeout=RAW_ANSWER_TIMEOUT_S)
        except TimeoutError:
            tally.transport_errors["raw_timeout"] += 1  # not even the server's 408
            return
        match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        if match:
            status = int(match.group(1))
            tally.statuses[status] += 1
            if status >= 500:
                tally.server_errors.append(f"raw framing {request[:60]!r} -> {status}")
        else:
            tally.raw_hangups["closed without an answer"] += 1
    except OSError as exc:
        # The server refused the framing and closed while bytes were unread: the reset can
        # reach the client before the 400 does. A hang-up, not a server error.
        tally.raw_hangups[type(exc).__name__] += 1
    finally:
        writer.close()


async def _post(
    client: httpx.AsyncClient, url: str, request: Malformed, tally: Tally
) -> httpx.Response | None:
    """POST ``request``; a transport error is retried on a fresh connection (httpx drops the
    broken one from its pool), and counted as a failure only when it persists."""
    for attempt in range(TRANSPORT_RETRIES + 1):
        try:
            return await client.post(url, content=request.body, headers=request.headers)
        except httpx.TransportError as exc:
            name = type(exc).__name__
            if attempt == TRANSPORT_RETRIES:
                tally.transport_errors[name] += 1
                return None
            tally.retried[name] += 1
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


async def _fuzz(server: PayhookServe, gen: Generator, channel: str) -> Tally:
    tally = Tally()
    url = f"{server.url}/notify/{channel}"
    rng = random.Random(11)
    counter = iter(range(REQUESTS_PER_CHANNEL))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            for n in counter:
                if n == 1000:
                    tally.rss_after_1000 = server.rss_bytes()
                tally.sent += 1
                if rng.random() < RAW_SHARE:
                    await _raw(server.port, channel, rng, tally)
                    continue
                request = gen.make(channel)
                tally.kinds[request.kind] += 1
                response = await _post(client, url, request, tally)
                if response is None:
                    continue
                status = response.status_code
                tally.statuses[status] += 1
                if is_success(channel, status, response.content):
                    tally.successes.append(request.kind)
                if status >= 500:
                    if request.may_500 and status == 500:
                        tally.allowed_500 += 1
                    else:
                        tally.server_errors.append(
                            f"{request.kind} -> {status} {response.text[:80]}"
                        )

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return tally


def _stored_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM payhook_events").fetchone()[0])


def _adapter_crashes(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("payhook_callbacks_total{") and 'reason="adapter_error"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(600)
@pytest.mark.parametrize("channel", CHANNELS, ids=[PROVIDER_OF[c] for c in CHANNELS])
def test_malformed_callbacks_never_5xx_never_stored(tmp_path: Path, channel: str) -> None:
    """10,000 malformed callbacks: no 5xx, no success, no event, process up, memory flat."""
    db = tmp_path / "payhook.db"
    config = write_config(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{db}",
        subscriber_url="http://127.0.0.1:9/unused",
        log_level="ERROR",
    )
    gen = Generator(config, seed=CHANNELS.index(channel))
    with PayhookServe(config, log=tmp_path / "serve.log") as server:
        started = time.monotonic()
        tally = asyncio.run(_fuzz(server, gen, channel))
        duration = time.monotonic() - started
        rss_end = server.rss_bytes()
        assert server.alive(), server.tail()
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        # A legitimate callback still gets through after the storm.
        ok = Callbacks(config).build(
            Fact(channel=channel, order_id="AFTER", event="paid", amount=1)
        )
        after = httpx.post(
            server.url + f"/notify/{channel}", content=ok.body, headers=dict(ok.headers), timeout=30
        )
        assert is_success(channel, after.status_code, after.content), after.text
    figures = {
        "channel": channel,
        "requests": tally.sent,
        "duration_s": round(duration, 1),
        "statuses": dict(sorted(tally.statuses.items())),
        "kinds": dict(sorted(tally.kinds.items())),
        "allowed_500": tally.allowed_500,
        "transport_errors": dict(tally.transport_errors),
        "retried_transport_errors": dict(tally.retried),
        "raw_hangups": dict(tally.raw_hangups),
        "rss_after_1000_mib": round(tally.rss_after_1000 / 2**20, 1),
        "rss_end_mib": round(rss_end / 2**20, 1),
        "adapter_crashes": _adapter_crashes(metrics),
    }
    print("FIGURES http_fuzz", json.dumps(figures))
    assert tally.sent >= REQUESTS_PER_CHANNEL
    assert tally.transport_errors == {}, f"errors that persisted over retries: {figures}"
    assert sum(tally.retried.values()) <= RETRIED_SHARE_LIMIT * tally.sent, figures
    assert tally.server_errors == [], tally.server_errors[:20]
    assert tally.successes == [], collections.Counter(tally.successes)
    assert _stored_events(db) == 1  # only the legitimate one sent after the storm
    assert figures["adapter_crashes"] == 0, "a verifier raised something but payhook's errors"
    assert rss_end - tally.rss_after_1000 < RSS_GROWTH_LIMIT, figures
