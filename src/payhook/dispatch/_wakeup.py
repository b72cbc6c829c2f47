"""Cross-process wake-ups on PostgreSQL: ``LISTEN payhook_outbox`` on a dedicated connection.

The intake transaction runs ``pg_notify('payhook_outbox', '')``; PostgreSQL delivers the
notification after the commit, so a worker in another process claims the new deliveries at
once instead of at its next poll. The connection is re-opened after any loss; polling keeps
working meanwhile, so a lost notification only costs latency, never a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from payhook._clock import Clock
from payhook.storage import OutboxSignal

__all__ = ["PgListener", "asyncpg_dsn"]

logger = logging.getLogger("payhook.dispatch")


def asyncpg_dsn(url: URL) -> str:
    """The libpq-style DSN asyncpg accepts for a ``postgresql+asyncpg://`` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    """Keeps a ``LISTEN`` connection open and calls ``on_notify`` for each notification.

    Args:
        dsn: where to connect (see :func:`asyncpg_dsn`); never logged.
        on_notify: called (in the event loop) on every notification and after every
            (re)connection, since notifications sent while disconnected are lost.
        clock: for the back-off between reconnection attempts.
        health_check_s: how often an idle connection is checked with ``SELECT 1``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        on_notify: Callable[[], None],
        clock: Clock,
        channel: str = OutboxSignal.CHANNEL,
        health_check_s: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._on_notify = on_notify
        self._clock = clock
        self._channel = channel
        self._health_check_s = health_check_s
        self.connected = asyncio.Event()

    def __repr__(self) -> str:
        return f"PgListener(channel={self._channel!r})"

    def _callback(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._on_notify()

    async def run(self) -> None:
        """Listen until cancelled; never raises anything else."""
        failures = 0
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(self._channel, self._callback)
                if failures:
                    logger.info("LISTEN connection restored", extra={"action": "listen_restored"})
                failures = 0
                self.connected.set()
                self._on_notify()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._health_check_s)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), 10)
                raise ConnectionError("the LISTEN connection was closed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
                self.connected.clear()
                failures += 1
                if failures == 1:
                    logger.warning(
                        "LISTEN connection lost (%s); polling until it is back",
                        type(exc).__name__,
                        extra={"action": "listen_lost"},
                    )
            finally:
                if conn is not None:
                    await _close(conn)
            await self._clock.sleep(min(0.5 * (1 << min(failures, 5)), 10.0))


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    def on_terminated(_conn: Any) -> None:
        event.set()

    return on_terminated


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(timeout=2), 3)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:  # noqa: BLE001 - best effort on a dead socket
        conn.terminate()
