"""Target-guard benchmark: what the HTTP sink's connect-time address check costs.

Command (from the repository root)::

    .venv/bin/python bench/target_guard.py --rounds 7 --requests 2000

An in-process aiohttp server on 127.0.0.1 answers 204. Two aiohttp sessions POST the same
1 KB body to it, one request at a time, taken round-robin per round (plain, guarded, plain,
...):

- ``plain``: ``TCPConnector`` as aiohttp builds it;
- ``guarded``: ``TCPConnector(socket_factory=guarded_socket_factory(refuse_private=False))``,
  as :class:`payhook.dispatch.sinks.http.HttpSink` builds it by default (the server is on
  loopback, which the switch would refuse; the verdict per address is cached either way).

Twice: with ``force_close`` (every request opens a new connection: the check runs each
time, the worst case) and with keep-alive (the dispatcher's normal case: the check runs once).
Reports µs per request (median [min-max] over rounds) and the ratio guarded/plain of the same
round; the median ratio is the figure. The goal: no measurable cost (ratio within noise of 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._outbound_common import median_range

from payhook.dispatch.sinks.http import guarded_socket_factory

BODY = b"x" * 1024


async def _timed(session: aiohttp.ClientSession, url: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        async with session.post(url, data=BODY) as response:
            await response.read()
            assert response.status == 204
    return (time.perf_counter() - started) / n * 1e6


async def main(rounds: int, requests: int) -> None:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/hook"
    try:
        for force_close in (True, False):
            plain = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=force_close))
            guarded = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    force_close=force_close,
                    socket_factory=guarded_socket_factory(refuse_private=False),
                )
            )
            try:
                await _timed(plain, url, requests // 10)  # warm-up
                await _timed(guarded, url, requests // 10)
                got: dict[str, list[float]] = {"plain": [], "guarded": []}
                ratios: list[float] = []
                for _ in range(rounds):
                    a = await _timed(plain, url, requests)
                    b = await _timed(guarded, url, requests)
                    got["plain"].append(a)
                    got["guarded"].append(b)
                    ratios.append(b / a)
            finally:
                await plain.close()
                await guarded.close()
            mode = "new connection per request" if force_close else "keep-alive"
            print(f"{mode}:")
            print(f"  plain    {median_range(got['plain'])} µs/request")
            print(f"  guarded  {median_range(got['guarded'])} µs/request")
            print(f"  ratio guarded/plain {median_range(ratios)}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests))
