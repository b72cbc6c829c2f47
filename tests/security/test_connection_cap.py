"""One address holding many idle connections cannot lock the other addresses out
(``max_connections_per_address``, issue 16 item 7).

The flood comes from 127.0.0.1 and the provider's callback from 127.0.0.2 (a client socket
bound to that source address before it connects), both to a real uvicorn server on
127.0.0.1. Without the cap the same flood fills uvicorn's ``limit_concurrency`` and the
callback gets uvicorn's plain-text 503: the control case shows it, so the test cannot pass
on a flood that misses.
"""

from __future__ import annotations

import os
import select
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from payhook._conncap import ConnectionCap
from payhook._hook import PayHook
from payhook._protocol import capped_protocol
from payhook.config import load_settings
from tests._server import ServerThread
from tests.faults._callbacks import Callbacks, Fact, is_success
from tests.faults._payhook import CHANNELS, PayhookServe, write_config

FLOODER = "127.0.0.1"
PROVIDER = "127.0.0.2"
CAP = 20
LIMIT_CONCURRENCY = 60  # uvicorn's global limit in the in-process server
FLOOD = 80  # past the cap and past the global limit
# A guard against a hang, never a speed check: how long to wait for the server to act.
GUARD_S = 60.0


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _answered(sock: socket.socket, received: bytearray | None = None) -> bytes | None:
    """What the server sent before it closed ``sock`` (b"" for a bare close), or None while
    it has not closed it. ``received`` keeps what arrived before the close across calls."""
    data = bytearray() if received is None else received
    sock.setblocking(False)
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except BlockingIOError:
        return None
    except OSError:
        pass
    return bytes(data)


def _wait_for_answers(socks: list[socket.socket], count: int) -> dict[socket.socket, bytes]:
    """Wait until ``count`` of ``socks`` have been answered and closed by the server."""
    answered: dict[socket.socket, bytes] = {}
    received: dict[socket.socket, bytearray] = {sock: bytearray() for sock in socks}
    deadline = time.monotonic() + GUARD_S
    while len(answered) < count:
        waiting = [s for s in socks if s not in answered]
        readable, _w, _x = select.select(waiting, [], [], 0.2)
        for sock in readable:
            data = _answered(sock, received[sock])
            if data is not None:
                answered[sock] = data
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(answered)} of {count} connections were answered")
    return answered


def _post_from(source: str, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=GUARD_S) as client:
        return client.post(url, content=body, headers=headers)


def _get_from(source: str, url: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=GUARD_S) as client:
        return client.get(url)


@dataclass
class InProcess:
    url: str
    port: int
    hook: PayHook
    config: Path
    server: ServerThread

    def refused(self) -> float:
        value = self.hook.metrics.registry.get_sample_value("payhook_connections_refused_total")
        return value or 0.0


def _in_process(tmp_path: Path, limit: int) -> Iterator[InProcess]:
    config = write_config(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    hook = PayHook(load_settings(config), run_dispatcher=False)
    cap = ConnectionCap(limit, on_refused=hook.metrics.connections_refused.inc)

    class Protocol(capped_protocol(cap)):  # type: ignore[misc]
        read_timeout_s = 3600.0  # the flood is never cut off by the read deadline here

    with ServerThread(hook.app, http=Protocol, limit_concurrency=LIMIT_CONCURRENCY) as server:
        yield InProcess(url=server.url, port=server.port, hook=hook, config=config, server=server)


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[InProcess]:
    yield from _in_process(tmp_path, CAP)


@pytest.fixture
def uncapped(tmp_path: Path) -> Iterator[InProcess]:
    yield from _in_process(tmp_path, 0)


def _wait_for_connections(server: ServerThread, count: int) -> None:
    deadline = time.monotonic() + GUARD_S
    while len(server.server.server_state.connections) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the server holds {len(server.server.server_state.connections)} connections, "
                f"not {count}"
            )
        time.sleep(0.01)


def _callback(config: Path, order_id: str, channel: str = "alipay") -> tuple[bytes, dict[str, str]]:
    built = Callbacks(config).build(Fact(channel=channel, order_id=order_id, event="paid",
                                         amount=100))  # fmt: skip
    return built.body, dict(built.headers)


def test_a_flooding_address_cannot_lock_another_address_out(capped: InProcess) -> None:
    """127.0.0.1 opens FLOOD idle connections (past the cap and past limit_concurrency):
    CAP of them are held, the others are answered 503 and closed at once; a callback from
    127.0.0.2 meanwhile gets the provider's success reply, for every provider."""
    flood = [_connect(capped.port, FLOODER) for _ in range(FLOOD)]
    try:
        refused = _wait_for_answers(flood, FLOOD - CAP)
        assert all(data.startswith(b"HTTP/1.1 503 ") for data in refused.values()), {
            data[:40] for data in refused.values()
        }
        assert all(b"too many connections" in data for data in refused.values())
        held = [sock for sock in flood if sock not in refused]
        assert len(held) == CAP
        assert capped.refused() == FLOOD - CAP
        for channel in CHANNELS:
            body, headers = _callback(capped.config, f"CAP-{channel}", channel)
            reply = _post_from(PROVIDER, f"{capped.url}/notify/{channel}", body, headers)
            assert is_success(channel, reply.status_code, reply.content), (
                channel, reply.status_code, reply.text[:80],
            )  # fmt: skip
        # The flood was in effect all along: the held connections are still open.
        assert all(_answered(sock) is None for sock in held)
        # A connection more from the flooding address is still refused.
        extra = _connect(capped.port, FLOODER)
        flood.append(extra)
        assert _wait_for_answers([extra], 1)[extra].startswith(b"HTTP/1.1 503 ")
        assert capped.refused() == FLOOD - CAP + 1
    finally:
        for sock in flood:
            sock.close()


def test_closed_connections_give_their_places_back(capped: InProcess) -> None:
    """Once the flood's connections close, the address may open CAP connections again and a
    request from it is served: the count follows connection_lost, nothing leaks."""
    for _round in range(2):
        flood = [_connect(capped.port, FLOODER) for _ in range(CAP + 5)]
        try:
            _wait_for_answers(flood, 5)
        finally:
            for sock in flood:
                sock.close()
    # Wait for the server to see the closes (connection_lost), then use the address again.
    _wait_until_no_connections(capped.server)
    again = [_connect(capped.port, FLOODER) for _ in range(CAP - 1)]
    try:
        reply = _get_from(FLOODER, f"{capped.url}/healthz")  # the CAP-th connection
        assert reply.status_code == 200, reply.text
        assert capped.refused() == 10
    finally:
        for sock in again:
            sock.close()


def _wait_until_no_connections(server: ServerThread) -> None:
    deadline = time.monotonic() + GUARD_S
    while server.server.server_state.connections:
        if time.monotonic() > deadline:
            raise AssertionError("the server still holds connections that the client closed")
        time.sleep(0.01)


def test_without_the_cap_the_same_flood_locks_everyone_out(uncapped: InProcess) -> None:
    """The control: with the cap off (0), the flood holds limit_concurrency and the provider's
    callback from 127.0.0.2 gets uvicorn's plain-text 503."""
    flood = [_connect(uncapped.port, FLOODER) for _ in range(FLOOD)]
    try:
        _wait_for_connections(uncapped.server, FLOOD)
        body, headers = _callback(uncapped.config, "NOCAP-1")
        reply = _post_from(PROVIDER, f"{uncapped.url}/notify/alipay", body, headers)
        assert reply.status_code == 503, reply.text
        assert uncapped.refused() == 0
    finally:
        for sock in flood:
            sock.close()


# -- `payhook serve`: the config key reaches the server, the metric and a rate-limited log --


@pytest.mark.e2e
def test_payhook_serve_caps_connections_per_address(tmp_path: Path) -> None:
    """``max_connections_per_address`` in the config file caps ``payhook serve``: the extra
    connections are refused and counted, logged once rather than once each, and a callback
    from another address is accepted and stored."""
    db = tmp_path / "payhook.db"
    config = write_config(tmp_path, database_url=f"sqlite+aiosqlite:///{db}")
    config.write_text(f"max_connections_per_address = {CAP}\n" + config.read_text())
    log = tmp_path / "serve.log"
    with PayhookServe(config, log=log) as serve:
        # /readyz polling may still hold a keep-alive connection from 127.0.0.1: the flood
        # is answered for what is over the cap, however many that is.
        flood = [_connect(serve.port, FLOODER) for _ in range(FLOOD)]
        try:
            refused = _wait_for_answers(flood, FLOOD - CAP)
            assert all(data.startswith(b"HTTP/1.1 503 ") for data in refused.values())
            body, headers = _callback(config, "SERVE-CAP-1")
            reply = _post_from(PROVIDER, f"{serve.url}/notify/alipay", body, headers)
            assert is_success("alipay", reply.status_code, reply.content), reply.text
            metrics = _get_from(PROVIDER, f"{serve.url}/metrics")
        finally:
            for sock in flood:
                sock.close()
        assert metrics.status_code == 200, metrics.text
        refused_total = _sample(metrics.text, "payhook_connections_refused_total")
        assert refused_total >= FLOOD - CAP, metrics.text
    lines = [line for line in log.read_text().splitlines() if "connection refused:" in line]
    assert len(lines) == 1, lines  # the other refusals wait for the summary line
    assert "127.0.0.1" in lines[0]
    assert f"holds {CAP} connections" in lines[0]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM payhook_events").fetchone()[0] == 1


def _sample(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _check_config(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "payhook", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, **env},
    )


def test_check_config_shows_the_cap_and_refuses_a_bad_value(tmp_path: Path) -> None:
    """``check-config`` prints the cap (or "no cap"); a negative value is one error line."""
    config = tmp_path / "payhook.toml"
    config.write_text(f'database_url = "sqlite+aiosqlite:///{tmp_path / "p.db"}"\n')
    default = _check_config(config)
    assert default.returncode == 0, default.stderr
    assert "connections per address: 256 (payhook serve)" in default.stdout
    env = _check_config(config, PAYHOOK_MAX_CONNECTIONS_PER_ADDRESS="0")
    assert "connections per address: no cap (payhook serve)" in env.stdout
    config.write_text(config.read_text() + "max_connections_per_address = -1\n")
    bad = _check_config(config)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert lines[0].startswith("error: ")
    assert "max_connections_per_address: " in lines[0]


def test_ipv6_clients_are_capped_too() -> None:
    """On an IPv6 listener (asyncio's 4-tuple peer names) ::1 is held to the cap as well."""
    cap = ConnectionCap(3)

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        raise AssertionError("no request is sent")

    server = ServerThread(app, host="::1", http=capped_protocol(cap), lifespan="off")
    with server:
        socks = [socket.create_connection(("::1", server.port)) for _ in range(5)]
        try:
            refused = _wait_for_answers(socks, 2)
            assert all(data.startswith(b"HTTP/1.1 503 ") for data in refused.values())
            assert cap.open_connections("::/64") == 3
        finally:
            for sock in socks:
                sock.close()
