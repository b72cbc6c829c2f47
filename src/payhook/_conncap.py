"""The per-address connection cap of ``payhook serve`` (``max_connections_per_address``).

uvicorn's ``limit_concurrency`` is one pool for every client: a single address holding
that many idle connections makes every other client's request a 503. The cap counts the live
connections of each remote address and refuses a new one at once when its address already
holds ``limit``, so one address can take at most ``limit`` of the pool.

An address is the IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 address) or,
for IPv6, its /64 network: one host is routinely given a whole /64, and counting each of its
2^64 addresses apart would cap nothing.

The cost is a dictionary update when a connection opens and when it closes; requests are not
looked at. Refusals are counted (``on_refused``) and logged at most once per ``log_every_s``:
the first refusal of a quiet period at once, the others in a summary line at the end of each
period while refusals go on, so a flood of refused connections cannot flood the log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["ConnectionCap", "address_key"]

logger = logging.getLogger("payhook.inbound")

# Addresses named in one summary line; the rest are counted together.
_NAMED = 5
# Distinct addresses remembered between two summary lines (a flood from many addresses
# must not grow this without bound); refusals from further ones are counted as "others".
_REMEMBERED = 256


def address_key(peername: Any) -> str | None:
    """What ``peername`` (``transport.get_extra_info("peername")``) is counted under:
    ``"192.0.2.1"`` for IPv4 and IPv4-mapped IPv6, ``"2001:db8:1:2::/64"`` for IPv6, None
    for anything else (a Unix socket), which is not capped."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    host: str = peername[0]
    if not host:
        return None
    if ":" not in host:
        return host  # IPv4, as the kernel wrote it
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])  # no zone id (fe80::1%eth0)
    except ValueError:
        return None
    mapped = address.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    network = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
    return str(network)


class ConnectionCap:
    """Live connections per remote address, at most ``limit`` each (0: no cap).

    Args:
        limit: connections one address may hold at once; 0 turns the cap off.
        on_refused: called once per refused connection (the metric).
        log_every_s: at most one log line per this many seconds while refusals go on.
    """

    def __init__(
        self,
        limit: int,
        *,
        on_refused: Callable[[], None] | None = None,
        log_every_s: float = 60.0,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (no cap) or more")
        self.limit = limit
        self._on_refused = on_refused
        self._log_every_s = log_every_s
        self._open: dict[str, int] = {}
        self._quiet = True  # no refusal logged within the last log_every_s
        self._unlogged: dict[str, int] = {}
        self._unlogged_others = 0

    def __repr__(self) -> str:
        return f"ConnectionCap(limit={self.limit}, addresses={len(self._open)})"

    def open_connections(self, key: str) -> int:
        """How many connections ``key`` holds now."""
        return self._open.get(key, 0)

    @property
    def addresses(self) -> int:
        """How many addresses hold at least one connection."""
        return len(self._open)

    def admit(self, key: str) -> bool:
        """Count a new connection from ``key``; False (nothing counted) when it is over the
        cap. Every admitted connection must be :meth:`release`\\ d exactly once."""
        held = self._open.get(key, 0)
        if self.limit and held >= self.limit:
            return False
        self._open[key] = held + 1
        return True

    def release(self, key: str) -> None:
        """An admitted connection from ``key`` closed."""
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)

    def refused(self, key: str, loop: asyncio.AbstractEventLoop) -> None:
        """Count a refused connection from ``key`` and log it, rate-limited."""
        if self._on_refused is not None:
            self._on_refused()
        if self._quiet:
            self._quiet = False
            logger.warning(
                "connection refused: %s already holds %d connections "
                "(max_connections_per_address); further refusals are summed up every %g s",
                key,
                self.limit,
                self._log_every_s,
                extra={"action": "connection_refused", "reason": "per_address_cap", "remote": key},
            )
            loop.call_later(self._log_every_s, self._end_period, loop)
            return
        if key in self._unlogged or len(self._unlogged) < _REMEMBERED:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
        else:
            self._unlogged_others += 1

    def _end_period(self, loop: asyncio.AbstractEventLoop) -> None:
        total = sum(self._unlogged.values()) + self._unlogged_others
        if total == 0:
            self._quiet = True  # the next refusal is logged at once
            return
        top = sorted(self._unlogged.items(), key=lambda item: -item[1])[:_NAMED]
        named = ", ".join(f"{key} ({count})" for key, count in top)
        rest = total - sum(count for _key, count in top)
        logger.warning(
            "%d more connections refused over max_connections_per_address (%d) in the last "
            "%g s: %s%s",
            total,
            self.limit,
            self._log_every_s,
            named or "-",
            f" and {rest} from other addresses" if rest else "",
            extra={
                "action": "connection_refused",
                "reason": "per_address_cap",
                "remote": top[0][0] if top else None,
            },
        )
        self._unlogged.clear()
        self._unlogged_others = 0
        loop.call_later(self._log_every_s, self._end_period, loop)
