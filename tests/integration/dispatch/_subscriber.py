"""A real subscriber HTTP server on 127.0.0.1 for dispatcher tests.

Each path has a behaviour: answer 204, fail N times, hang, answer 410, 429 with
Retry-After, or redirect. Every request is recorded with its headers and body.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    """One request the subscriber got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    query: str = ""


@dataclass
class Behaviour:
    """How a path answers: ``status`` after ``fail_first`` answers of ``fail_status``."""

    status: int = 204
    fail_first: int = 0
    fail_status: int = 500
    hang: bool = False
    hang_first: int = -1  # hang only the first N requests (-1: all when hang is set)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0


class Subscriber:
    """An aiohttp server that records deliveries and misbehaves on demand."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._counts: dict[str, int] = {}
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.arrived = asyncio.Event()

    def url(self, path: str, behaviour: Behaviour | None = None) -> str:
        """The URL of ``path``, configured with ``behaviour`` (default: answer 204)."""
        self.behaviours[path] = behaviour or Behaviour()
        return f"{self.base_url}/{path}"

    def on(self, path: str) -> list[Received]:
        """Requests received on ``path``."""
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        body = await request.read()
        self.received.append(
            Received(
                path=path,
                headers=dict(request.headers),
                body=body,
                at=time.monotonic(),
                query=request.query_string,
            )
        )
        self.arrived.set()
        behaviour = self.behaviours.get(path, Behaviour())
        n = self._counts.get(path, 0)
        self._counts[path] = n + 1
        if behaviour.hang and (behaviour.hang_first < 0 or n < behaviour.hang_first):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), 60)
            return web.Response(status=503)
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        if n < behaviour.fail_first:
            return web.Response(
                status=behaviour.fail_status, headers=behaviour.headers, body=behaviour.body
            )
        return web.Response(status=behaviour.status, body=behaviour.body or None)

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Release hanging requests and close."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, *, path: str | None = None, timeout: float = 10) -> None:
        """Until ``count`` requests (on ``path``) have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.on(path) if path else self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
