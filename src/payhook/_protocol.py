"""uvicorn protocol for `payhook serve`: slow or oversized requests cannot hold the server.

uvicorn's httptools protocol times out only *between* requests (keep-alive), and uvicorn
puts no limit on header size. A client that sends its headers one byte at a time, connects and
says nothing, or trickles its body would keep a connection (and a `limit_concurrency` slot)
forever. This protocol gives every request a deadline from its first byte (or from the
connection) to its last, and refuses headers larger than 64 KiB.

It also holds each remote address to ``max_connections_per_address`` live connections
(:class:`~payhook._conncap.ConnectionCap`): a connection over the cap is answered 503 and
closed as soon as it is made, before any request is read.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from payhook._conncap import ConnectionCap, address_key

__all__ = ["GuardedHttpToolsProtocol", "capped_protocol"]

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)
_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_503_BODY = b"too many connections from this address\n"
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_503_BODY), _503_BODY)
)


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A request (headers and body) must arrive within ``read_timeout_s`` of its first byte
    (or of the connection); headers larger than ``max_header_bytes`` get 431."""

    read_timeout_s = 10.0
    max_header_bytes = 64 * 1024
    # Set on the class that capped_protocol() makes for one server; None: no per-address cap.
    connection_cap: ConnectionCap | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_headers = True
        self._headers_too_large = False
        self._raw_header_bytes = 0
        self._parsed_header_bytes = 0
        self._deadline: float | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._cap_key: str | None = None
        # uvicorn's own set-up runs for a refused connection too: its connection_lost and
        # shutdown then find everything they expect.
        super().connection_made(transport)
        cap = self.connection_cap
        if cap is not None and cap.limit:
            key = address_key(transport.get_extra_info("peername"))
            if key is not None:
                if not cap.admit(key):
                    self.connections.discard(self)  # not a slot of limit_concurrency
                    transport.write(_503)
                    transport.close()
                    cap.refused(key, self.loop)
                    return
                self._cap_key = key
        self._arm()

    # One timer per connection, re-armed lazily: a request sets its deadline, finishing it
    # clears the deadline, and the timer (created only when none is pending) checks what
    # the deadline is when it fires. No timer is created or cancelled per request.

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.time() + self.read_timeout_s
            if self._read_timer is None:
                self._read_timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = None

    def _check_deadline(self) -> None:
        self._read_timer = None
        deadline = self._deadline
        if deadline is None:
            return  # no request under way: the timer lapses
        if self.loop.time() < deadline:  # a later request: wait for its own deadline
            self._read_timer = self.loop.call_at(deadline, self._check_deadline)
            return
        self._read_timed_out()

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)  # unset until the first request's headers
        if cycle is None or not cycle.response_started:
            self.transport.write(_408)
        self.transport.close()

    def _refuse_headers(self) -> None:
        self.transport.write(_431)
        self.transport.close()

    def _headers_over_limit(self) -> _HeadersTooLarge:
        self._headers_too_large = True
        return _HeadersTooLarge()

    def send_400_response(self, msg: str) -> None:
        # httptools turns an exception raised in a parser callback (on_url, on_header) into
        # HttpParserCallbackError, which uvicorn answers with 400: answer 431 instead.
        if self._headers_too_large:
            self._refuse_headers()
        else:
            super().send_400_response(msg)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_headers:
            self._raw_header_bytes += len(data)
        try:
            super().data_received(data)
        except _HeadersTooLarge:  # a parser that lets callback exceptions through
            self._refuse_headers()
            return
        # Still inside the headers after this chunk: every byte counted was a header byte.
        if (
            self._in_headers
            and self._raw_header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._parsed_header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._parsed_header_bytes += len(url)
        if self._parsed_header_bytes > self.max_header_bytes:
            raise self._headers_over_limit()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_header_bytes += len(name) + len(value) + 4
        if self._parsed_header_bytes > self.max_header_bytes:
            raise self._headers_over_limit()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._raw_header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._in_headers = True
        self._raw_header_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        if self._cap_key is not None and self.connection_cap is not None:
            self.connection_cap.release(self._cap_key)
            self._cap_key = None
        self._deadline = None
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)


def capped_protocol(cap: ConnectionCap | None) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for one server, whose connections share ``cap`` (None: no cap)."""

    class CappedHttpToolsProtocol(GuardedHttpToolsProtocol):
        connection_cap = cap

    return CappedHttpToolsProtocol
