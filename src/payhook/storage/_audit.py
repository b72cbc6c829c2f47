"""The refused-callback audit: bounded, written behind the intake, droppable and counted.

Contract §14: a refused callback is audited as a bounded record, written at lower priority
than accepted callbacks; a flood of refused callbacks may lose audit records (counted in
metrics), never delays or loses an accepted one. So the audit never goes through the intake
transaction. :class:`RefusedAudit` keeps a short queue in memory and one drainer task that
hands batches to the database driver's low-priority write (``write_refused``: on SQLite a
job the writer thread runs only when no callback waits; on PostgreSQL a multi-row insert
made only while the pool has a connection to spare). A record is dropped, and the drop
counted, when it arrives over the audit rate (:class:`AuditBudget`, which bounds how fast a
flood can grow the database), when the queue is full, when its write fails, and when the
process stops before it could be written.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence

from payhook._clock import Clock
from payhook._stores import RefusedCallback

__all__ = ["DROP_CAUSES", "AuditBudget", "DropHook", "RefusedAudit", "WriteBatch"]

logger = logging.getLogger("payhook.storage")

# Why an audit record was not written (the ``cause`` label of the dropped-audits counter):
# over the budget, queue full, not made or not written (database error), process stopping.
DROP_CAUSES = ("rate", "queue_full", "write_failed", "shutdown")

# Called with (channel, cause) once per dropped record, on the event loop.
DropHook = Callable[[str, str], None]
WriteBatch = Callable[[Sequence[RefusedCallback]], Awaitable[None]]


class AuditBudget:
    """A token bucket: ``burst`` records at once, then ``rate_per_s`` records a second.

    Refused callbacks are rare in normal operation (a probe, a wrong key) and all of them are
    audited; a flood spends the burst and is then audited at ``rate_per_s``, the rest counted.
    """

    def __init__(self, *, rate_per_s: float, burst: int, clock: Clock) -> None:
        if rate_per_s < 0 or burst < 1:
            raise ValueError("the audit budget needs rate_per_s >= 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self) -> bool:
        """Spend one token; False when none is left."""
        now = self._clock.monotonic()
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class RefusedAudit:
    """The queue of refused-callback records and the task that writes them in batches.

    Args:
        write: the driver's low-priority write of one batch (one transaction).
        clock: time for the budget.
        on_dropped: told (channel, cause) of every record not written.
        max_pending: records held in memory at most (beyond, ``queue_full``).
        rate_per_s, burst: the :class:`AuditBudget` (beyond, ``rate``).
        batch_size: records per write at most.
    """

    def __init__(
        self,
        write: WriteBatch,
        *,
        clock: Clock,
        on_dropped: DropHook | None = None,
        max_pending: int = 256,
        rate_per_s: float = 5.0,
        burst: int = 100,
        batch_size: int = 64,
    ) -> None:
        self._write = write
        self._on_dropped = on_dropped
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._budget = AuditBudget(rate_per_s=rate_per_s, burst=burst, clock=clock)
        self._queue: collections.deque[RefusedCallback] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.written = 0

    @property
    def pending(self) -> int:
        """Records queued and not yet handed to a write."""
        return len(self._queue)

    def offer(self, channel: str, build: Callable[[], RefusedCallback]) -> bool:
        """Queue the record ``build`` makes, calling it only when the record will be kept;
        False when it was dropped (and counted). Never blocks."""
        if self._closed:
            return self._drop(channel, "shutdown")
        if len(self._queue) >= self._max_pending:
            return self._drop(channel, "queue_full")
        if not self._budget.take():
            return self._drop(channel, "rate")
        try:
            record = build()
        except Exception:  # noqa: BLE001 - a refused callback's answer must not depend on it
            logger.warning(
                "could not make a refused-callback audit record", extra={"action": "audit_failed"}
            )
            return self._drop(channel, "write_failed")
        self._queue.append(record)
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            # First record, or a store used again on another event loop (tests).
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._drain(self._wake), name="payhook-refused-audit")
        assert self._wake is not None
        self._wake.set()
        return True

    def open(self) -> None:
        """Take records again after :meth:`close` (a store that is started again)."""
        self._closed = False

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking records and write what is queued, for ``timeout_s`` at most; what is
        left then is dropped (``shutdown``)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and task.get_loop() is not asyncio.get_running_loop():
            task = None  # its loop is gone: what it still held is dropped below
        if task is not None and self._wake is not None:
            self._wake.set()
            done, _pending = await asyncio.wait({task}, timeout=timeout_s)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        while self._queue:
            self._drop(self._queue.popleft().channel, "shutdown")

    def _drop(self, channel: str, cause: str) -> bool:
        if self._on_dropped is not None:
            self._on_dropped(channel, cause)
        return False

    async def _drain(self, wake: asyncio.Event) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                wake.clear()
                await wake.wait()
                continue
            count = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for record in batch:
                    self._drop(record.channel, "shutdown")
                raise
            except Exception as exc:  # noqa: BLE001 - the audit is best effort, counted when lost
                logger.warning(
                    "could not write %d refused-callback audit records: %s",
                    len(batch),
                    exc.__class__.__name__,
                    extra={"action": "audit_failed"},
                )
                for record in batch:
                    self._drop(record.channel, "write_failed")
            else:
                self.written += len(batch)
