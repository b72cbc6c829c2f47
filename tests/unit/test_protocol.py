"""`payhook serve`'s uvicorn protocol subclasses uvicorn internals: these tests fail loudly when
the uvicorn hooks it overrides or relies on change, before a slowloris guard silently stops
working after a uvicorn upgrade."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from importlib.metadata import requires, version
from typing import Any

import pytest
import uvicorn
from packaging.requirements import Requirement
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from payhook._conncap import ConnectionCap
from payhook._protocol import GuardedHttpToolsProtocol, capped_protocol

pytestmark = pytest.mark.anyio

REVIEW = (
    "payhook._protocol.GuardedHttpToolsProtocol subclasses uvicorn's HttpToolsProtocol "
    f"(uvicorn {uvicorn.__version__} installed): review it against this uvicorn before "
    "widening the uvicorn pin in pyproject.toml."
)

# Every uvicorn method the guard overrides, with uvicorn's parameter names.
OVERRIDDEN = {
    "connection_made": ("self", "transport"),
    "connection_lost": ("self", "exc"),
    "data_received": ("self", "data"),
    "on_message_begin": ("self",),
    "on_url": ("self", "url"),
    "on_header": ("self", "name", "value"),
    "on_headers_complete": ("self",),
    "on_message_complete": ("self",),
    "on_response_complete": ("self",),
    "send_400_response": ("self", "msg"),
}


def test_installed_uvicorn_is_inside_the_pinned_range() -> None:
    """The uvicorn requirement has an upper bound, and the installed uvicorn satisfies it."""
    pins = [Requirement(r) for r in requires("payhook") or [] if r.startswith("uvicorn")]
    assert len(pins) == 1, pins
    assert any(spec.operator == "<" for spec in pins[0].specifier), (
        f"uvicorn must be pinned below the next untested minor version: {pins[0]}"
    )
    assert pins[0].specifier.contains(version("uvicorn")), (
        f"uvicorn {version('uvicorn')} is outside the tested range {pins[0]}. {REVIEW}"
    )


def test_the_overridden_hooks_are_the_listed_ones() -> None:
    """A new override must be added to OVERRIDDEN (and so to the checks below)."""
    overrides = {
        name
        for name, value in vars(GuardedHttpToolsProtocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    assert overrides == set(OVERRIDDEN)


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_uvicorn_still_has_each_overridden_hook(name: str) -> None:
    """Each overridden method exists on uvicorn's HttpToolsProtocol with the same parameters."""
    base = getattr(HttpToolsProtocol, name, None)
    assert inspect.isfunction(base), (
        f"uvicorn's HttpToolsProtocol.{name} is gone: the guard's override is never called. "
        + REVIEW
    )
    params = tuple(inspect.signature(base).parameters)
    assert params == OVERRIDDEN[name], (
        f"uvicorn's HttpToolsProtocol.{name}{params} changed from {OVERRIDDEN[name]}. " + REVIEW
    )
    ours = tuple(inspect.signature(getattr(GuardedHttpToolsProtocol, name)).parameters)
    assert ours == params


def test_uvicorn_builds_protocols_with_the_arguments_the_guard_expects() -> None:
    """uvicorn creates the protocol with (config, server_state, app_state[, _loop])."""
    params = tuple(inspect.signature(HttpToolsProtocol.__init__).parameters)
    assert params == ("self", "config", "server_state", "app_state", "_loop"), (
        f"uvicorn's HttpToolsProtocol.__init__{params} changed. " + REVIEW
    )


# -- the hooks are still called as the guard expects: a protocol on a fake transport ------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}
        return extra.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _protocol(read_timeout_s: float = 10.0) -> tuple[GuardedHttpToolsProtocol, _Transport]:
    config = uvicorn.Config(_app, http=GuardedHttpToolsProtocol, log_config=None, lifespan="off")
    config.load()
    protocol = GuardedHttpToolsProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        _loop=asyncio.get_running_loop(),
    )
    protocol.read_timeout_s = read_timeout_s
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def _wait(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not predicate():
            await asyncio.sleep(0.001)


async def test_a_request_runs_through_every_hook() -> None:
    """uvicorn feeds the parser callbacks and the end of the response to the guard's hooks:
    the deadline is armed by the request and cleared by its end."""
    protocol, transport = _protocol()
    assert protocol._deadline is not None  # armed by connection_made
    protocol.data_received(b"POST /notify/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
    assert not protocol._in_headers  # on_headers_complete ran
    assert protocol._deadline is not None  # the body has not arrived
    protocol.data_received(b"abcd")
    assert protocol._deadline is None  # on_message_complete ran
    await _wait(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    await _wait(lambda: protocol._in_headers)  # on_response_complete ran
    protocol.connection_lost(None)
    assert protocol._read_timer is None


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n",
        b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n",
    ],
    ids=["one-header", "url", "many-headers"],
)
async def test_oversized_headers_get_431_in_one_chunk(request_head: bytes) -> None:
    """Headers over the limit that end within the chunk are stopped in on_url/on_header;
    uvicorn's parser-error path (send_400_response) then answers 431, once."""
    protocol, transport = _protocol()
    protocol.data_received(request_head)
    assert bytes(transport.written) == b"HTTP/1.1 431 Request Header Fields Too Large\r\n" + (
        b"content-length: 0\r\nconnection: close\r\n\r\n"
    )
    assert transport.is_closing()
    protocol.connection_lost(None)


async def test_oversized_headers_get_431_when_they_keep_coming() -> None:
    """Headers still unfinished past the limit are refused after the chunk."""
    protocol, transport = _protocol()
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n")
    for _ in range(70):
        protocol.data_received(b"X-A: " + b"b" * 1000 + b"\r\n")
        if transport.is_closing():
            break
    assert transport.written.startswith(b"HTTP/1.1 431"), bytes(transport.written[:40])
    protocol.connection_lost(None)


async def test_other_parser_errors_still_get_uvicorn_s_400() -> None:
    protocol, transport = _protocol()
    protocol.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 400"), bytes(transport.written[:40])
    protocol.connection_lost(None)


async def test_a_request_that_stalls_gets_408() -> None:
    """A body that stops coming gets 408 once the deadline passes (cycle.response_started
    is still read from uvicorn's request cycle)."""
    protocol, transport = _protocol(read_timeout_s=0.05)
    protocol.data_received(b"POST /notify/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
    assert protocol.cycle is not None
    assert protocol.cycle.response_started is False
    async with asyncio.timeout(30):
        await transport.closed.wait()
    assert transport.written.startswith(b"HTTP/1.1 408"), bytes(transport.written[:40])
    protocol.connection_lost(None)


async def test_a_silent_connection_gets_408() -> None:
    protocol, transport = _protocol(read_timeout_s=0.05)
    async with asyncio.timeout(30):
        await transport.closed.wait()
    assert transport.written.startswith(b"HTTP/1.1 408")
    protocol.connection_lost(None)


# -- the per-address connection cap ---------------------------------------------------------


class _PeerTransport(_Transport):
    def __init__(self, peer: Any) -> None:
        super().__init__()
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.peer
        return super().get_extra_info(name, default)


def _capped(cap: ConnectionCap, state: ServerState, peer: Any) -> tuple[Any, Any]:
    cls = capped_protocol(cap)
    config = uvicorn.Config(_app, http=cls, log_config=None, lifespan="off")
    config.load()
    protocol = cls(
        config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = _PeerTransport(peer)
    protocol.connection_made(transport)
    return protocol, transport


async def test_a_connection_over_the_cap_gets_503_and_is_closed_at_once() -> None:
    """Over the cap: 503 and close from connection_made, no read deadline, no slot of
    limit_concurrency; closing an admitted connection gives its place back."""
    cap = ConnectionCap(2)
    state = ServerState()
    v4 = ("192.0.2.1", 40000)
    mapped = ("::ffff:192.0.2.1", 40001, 0, 0)  # the same client over a dual-stack socket
    first, _t1 = _capped(cap, state, v4)
    second, _t2 = _capped(cap, state, mapped)
    third, t3 = _capped(cap, state, v4)
    assert bytes(t3.written).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close\r\n" in t3.written
    assert t3.is_closing()
    assert third not in state.connections
    assert third._read_timer is None
    third.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # ignored: it is closing
    assert bytes(t3.written).count(b"HTTP/1.1") == 1
    third.connection_lost(None)
    assert cap.open_connections("192.0.2.1") == 2  # the refused one took no place
    first.connection_lost(None)
    assert cap.open_connections("192.0.2.1") == 1
    fourth, t4 = _capped(cap, state, v4)
    assert not t4.is_closing()
    other, t5 = _capped(cap, state, ("192.0.2.2", 40000))  # another address, its own count
    assert not t5.is_closing()
    for protocol in (second, fourth, other):
        protocol.connection_lost(None)
    assert cap.addresses == 0


async def test_an_admitted_connection_is_served_as_before() -> None:
    cap = ConnectionCap(1)
    protocol, transport = _capped(cap, ServerState(), ("192.0.2.1", 40000))
    protocol.data_received(b"POST /notify/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab")
    await _wait(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    protocol.connection_lost(None)
    assert cap.open_connections("192.0.2.1") == 0


async def test_no_cap_for_a_unix_socket_or_a_zero_limit() -> None:
    cases: tuple[tuple[ConnectionCap, Any], ...] = (
        (ConnectionCap(1), ""),  # what asyncio gives for a Unix socket's peer
        (ConnectionCap(0), ("192.0.2.1", 1)),
    )
    for cap, peer in cases:
        protocols = [_capped(cap, ServerState(), peer) for _ in range(3)]
        assert not any(transport.is_closing() for _p, transport in protocols)
        for protocol, _t in protocols:
            protocol.connection_lost(None)
