"""Batched write-back of attempt results, and the once-per-outage database health log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import Clock
from payhook.storage import Completion, complete, is_transient

__all__ = ["Completer", "Health"]

logger = logging.getLogger("payhook.dispatch")

MAX_BATCH = 500


class Health:
    """Whether the database answers; logs one warning per outage, not one per loop."""

    def __init__(self) -> None:
        self.down = False
        self.failures = 0

    def trouble(self, exc: BaseException, where: str) -> None:
        """Record a failed operation: logged once per outage (with a traceback if it is
        not a database error, since that is a bug)."""
        self.failures += 1
        if self.down:
            return
        self.down = True
        if is_transient(exc):
            logger.warning(
                "the database is unavailable (%s during %s); backing off and retrying",
                type(exc).__name__,
                where,
                extra={"action": "database_unavailable"},
            )
        else:
            logger.error(
                "unexpected %s during %s; backing off and retrying",
                type(exc).__name__,
                where,
                exc_info=exc,
                extra={"action": "dispatcher_error"},
            )

    def ok(self) -> None:
        """Record a successful database operation."""
        if self.down:
            self.down = False
            logger.info(
                "the dispatcher recovered after %d failed operations",
                self.failures,
                extra={"action": "database_available"},
            )
        self.failures = 0

    def backoff_s(self) -> float:
        """How long to wait before the next try: 0.25 s doubling up to 10 s."""
        return min(0.25 * (1 << min(max(self.failures - 1, 0), 6)), 10.0)


class Completer:
    """Collects attempt results and writes them back in batches (one transaction each).

    While one batch is being written, new results accumulate and go in the next one, so
    the batch size adapts to the load (group commit). When the database is down, results
    wait and are retried with back-off; a result whose lease expires meanwhile is simply
    fenced out by its claim token and the delivery is sent again (at least once).

    Args:
        on_written: called after each successful batch with the completions written.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        health: Health,
        *,
        on_written: Callable[[Sequence[Completion], set[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._health = health
        self._on_written = on_written
        self._pending: list[Completion] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def backlog(self) -> int:
        """Results not written yet."""
        return len(self._pending)

    def add(self, completion: Completion) -> None:
        """Queue one result for writing."""
        self._pending.append(completion)
        self._idle.clear()
        self._ready.set()

    async def drain(self) -> None:
        """Wait until every queued result has been written (or dropped as unwritable)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                if not await self._write(batch):
                    self._pending[:0] = batch
                    await self._clock.sleep(self._health.backoff_s())
            self._idle.set()

    async def _write(self, batch: list[Completion]) -> bool:
        try:
            updated = await complete(self._engine, batch, now=self._clock.now())
        except Exception as exc:  # noqa: BLE001 - the worker must outlive any database error
            if is_transient(exc):
                self._health.trouble(exc, "completion")
                return False
            if len(batch) == 1:
                logger.error(
                    "dropping an attempt result the database refuses (%s); the delivery "
                    "will be sent again when its lease expires",
                    type(exc).__name__,
                    extra={"action": "completion_dropped", "delivery_id": batch[0].delivery_id},
                )
                return True
            for one in batch:
                while not await self._write([one]):
                    await self._clock.sleep(self._health.backoff_s())
            return True
        self._health.ok()
        if self._on_written is not None:
            self._on_written(batch, updated)
        return True
