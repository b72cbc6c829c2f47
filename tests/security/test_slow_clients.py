"""Slow and oversized clients cannot exhaust ``payhook serve`` (its uvicorn limits and timeouts).

A slowloris client (headers one byte at a time), a client that connects and says nothing, and
one that trickles its body must all be cut off by the server within ``DEADLINE_S``; headers
beyond ``MAX_HEADER_BYTES`` must be refused; and enough idle connections to reach uvicorn's
``limit_concurrency`` must not lock providers out for longer than that deadline.

Run: ``.venv/bin/pytest tests/security/test_slow_clients.py -s``
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults._callbacks import Callbacks, Fact, is_success
from tests.faults._payhook import PayhookServe, write_config

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# A provider's callback is a few KiB sent at once; 10 s is generous for any real client.
DEADLINE_S = 15.0
MAX_HEADER_BYTES = 64 * 1024
LIMIT_CONCURRENCY = 2048  # what `payhook serve` gives uvicorn (cli.py)
# `payhook serve` holds one address to max_connections_per_address (256 by default): the
# many-connection tests below come from several loopback addresses, below that cap each.
PER_ADDRESS = 200


def _connect_from(port: int, index: int) -> socket.socket:
    """A connection from 127.0.0.(10 + index // PER_ADDRESS), PER_ADDRESS per address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((f"127.0.0.{10 + index // PER_ADDRESS}", 0))
    sock.connect(("127.0.0.1", port))
    return sock


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PayhookServe]:
    """``payhook serve`` on a fresh SQLite file."""
    config = write_config(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}",
        subscriber_url="http://127.0.0.1:9/unused",
    )
    with PayhookServe(config, log=tmp_path / "serve.log") as serve:
        yield serve


async def _held_open_s(port: int, kind: str, give_up_s: float) -> float | None:
    """Seconds until the server closed a slow connection, or None if it never did."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    if kind == "headers_byte_by_byte":
        trickle = b"POST /notify/alipay HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: a\r\n" * 500
    elif kind == "body_trickle":
        writer.write(
            b"POST /notify/alipay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n"
        )
        trickle = b"a" * 60000
    else:  # idle_after_connect
        trickle = b""
    position = 0
    try:
        while time.monotonic() - started < give_up_s:
            if position < len(trickle):
                writer.write(trickle[position : position + 1])
                position += 1
                await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=0.5)
            except TimeoutError:
                continue
            if not data or data.startswith(b"HTTP/1.1 4"):
                return time.monotonic() - started
        return None
    except (ConnectionError, OSError):
        return time.monotonic() - started
    finally:
        writer.close()


def test_slow_clients_are_cut_off_within_the_deadline(server: PayhookServe) -> None:
    """Headers byte by byte, silence after connecting and a trickled body are all cut off."""
    kinds = ("headers_byte_by_byte", "idle_after_connect", "body_trickle")

    async def run() -> dict[str, float | None]:
        times = await asyncio.gather(
            *(_held_open_s(server.port, kind, DEADLINE_S + 10) for kind in kinds)
        )
        return dict(zip(kinds, times, strict=True))

    held = asyncio.run(run())
    print("FIGURES slow_clients", {k: None if v is None else round(v, 1) for k, v in held.items()})
    assert server.alive()
    too_long = {k: v for k, v in held.items() if v is None or v > DEADLINE_S}
    assert too_long == {}, (
        f"connections held open longer than {DEADLINE_S} s (None = never closed): {held}"
    )


@pytest.mark.parametrize("header_bytes", [100 * 1024, 4 * 1024 * 1024], ids=["100KiB", "4MiB"])
def test_oversized_headers_are_refused(server: PayhookServe, header_bytes: int) -> None:
    """Headers larger than MAX_HEADER_BYTES are refused (431/400), not buffered and served."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                + b"a" * header_bytes
                + b"\r\n\r\n"
            )
        except ConnectionError:
            return  # the server hung up while the headers were still coming: refused
        answer = sock.recv(64)
    assert not answer.startswith(b"HTTP/1.1 200"), (
        f"{header_bytes} bytes of headers (limit {MAX_HEADER_BYTES}) were accepted: {answer!r}"
    )
    assert server.alive()


def test_a_few_hundred_slow_clients_do_not_block_callbacks(
    server: PayhookServe, tmp_path: Path
) -> None:
    """With 300 slow connections open, a provider's callback is still answered at once: while
    the slow clients are still held, before the server's read deadline cuts them off."""
    socks = [_connect_from(server.port, i) for i in range(300)]
    try:
        for sock in socks:
            sock.sendall(b"POST /notify/alipay HTTP/1.1\r\nHost: x\r\n")
        callback = Callbacks(server.config).build(
            Fact(channel="alipay", order_id="SLOW-1", event="paid", amount=100)
        )
        reply = httpx.post(
            f"{server.url}/notify/alipay",
            content=callback.body,
            headers=dict(callback.headers),
            timeout=60,
        )
        cut_off = sum(not _still_open(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert is_success("alipay", reply.status_code, reply.content), reply.text
    # Had the callback waited behind the slow clients, the server would have cut them off
    # (408) by the time it was answered.
    assert cut_off == 0, f"{cut_off} slow clients were cut off before the callback was answered"


def _still_open(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed ``sock`` yet."""
    sock.setblocking(False)
    try:
        sock.recv(64)  # b"" (closed) or the 408
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


def test_idle_connections_at_the_concurrency_limit_lock_out_only_until_the_deadline(
    server: PayhookServe,
) -> None:
    """Holding limit_concurrency idle sockets locks callbacks out for at most DEADLINE_S."""
    socks = [_connect_from(server.port, i) for i in range(LIMIT_CONCURRENCY + 50)]
    try:
        time.sleep(DEADLINE_S + 2)  # the attacker keeps every socket open all along
        callback = Callbacks(server.config).build(
            Fact(channel="alipay", order_id="SLOW-2", event="paid", amount=100)
        )
        reply = httpx.post(
            f"{server.url}/notify/alipay",
            content=callback.body,
            headers=dict(callback.headers),
            timeout=10,
        )
    finally:
        for sock in socks:
            sock.close()
    assert is_success("alipay", reply.status_code, reply.content), (
        f"{LIMIT_CONCURRENCY + 50} idle connections still lock callbacks out after "
        f"{DEADLINE_S + 2:.0f} s: HTTP {reply.status_code} {reply.text[:60]!r}"
    )
