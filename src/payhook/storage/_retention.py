"""Retention (contract §14): remove what is older than its window, in bounded batches.

What goes, per table, oldest first:

- ``payhook_refused_callbacks``: audit rows received before the ``refused_callbacks`` window;
- ``payhook_notifications``: legacy refused rows (verdict ``refused``, written before
  migration 0004) by the same window, and accepted/duplicate callbacks by the ``events``
  window;
- ``payhook_delivery_attempts``: attempts made before the ``attempts`` window whose delivery
  is finished (``succeeded`` or ``dead``); never those of a delivery that may still be sent;
- ``payhook_events``: events created before the ``events`` window none of whose deliveries
  is pending or failed (a claimed delivery is one of those), with their deliveries and
  those deliveries' attempts (deleted explicitly, not left to ``ON DELETE CASCADE``).

Each batch is one short transaction of at most ``batch_size`` rows of the table walked, so
a first prune of a large database holds no long lock: on SQLite the batch takes the write
lock with ``BEGIN IMMEDIATE`` like every other operator write, and the prune pauses between
batches so that the intake's writer thread gets the lock in time; on PostgreSQL rows are
locked (``FOR UPDATE … SKIP LOCKED``), so two prunes at once share the work, and a delivery
made pending again meanwhile (``deliveries retry``, ``events replay``) keeps its event: its
row lock, or the lock its insert takes on the event, makes the prune skip or re-read it.
Each pass walks its time index in (time, id) order from where the last batch ended, so rows
that must stay (old events of pending deliveries) are read once per prune, not once per batch.

A dry run reads the same batches in the same order and counts what would go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    delete,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook._types import DeliveryStatus, NotificationVerdict
from payhook.storage._tables import attempts, deliveries, events, notifications, refused_callbacks
from payhook.storage._txn import read_tx, write_tx

__all__ = [
    "BATCH_SIZE",
    "RETENTION_TABLES",
    "PruneReport",
    "RetentionWindows",
    "prune",
]

BATCH_SIZE = 500  # rows of the walked table per transaction
# Between two batches on SQLite, so that the intake's writer (waiting in its busy handler,
# whose retries are up to 100 ms apart) takes the write lock before the next batch does.
SQLITE_PAUSE_S = 0.05

# The tables a prune reports on, in the order it walks them.
RETENTION_TABLES: tuple[str, ...] = (
    refused_callbacks.name,
    notifications.name,
    attempts.name,
    deliveries.name,
    events.name,
)

_FINISHED = (DeliveryStatus.SUCCEEDED.value, DeliveryStatus.DEAD.value)
# A literal, not a bound parameter: only then can SQLite and PostgreSQL prove that the
# query's condition implies the partial index's (ix_payhook_notifications_refused).
_REFUSED = notifications.c.verdict == literal_column(f"'{NotificationVerdict.REFUSED.value}'")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionWindows:
    """How long each kind of row is kept (``[retention]``)."""

    refused_callbacks: timedelta
    attempts: timedelta
    events: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneReport:
    """What a prune removed, or with ``dry_run`` would remove: rows per table.

    ``complete`` is False when the prune was asked to stop (shutdown) before it was done.
    """

    dry_run: bool
    counts: dict[str, int]
    cutoffs: dict[str, datetime]
    complete: bool = True

    @property
    def total(self) -> int:
        """Rows over all tables."""
        return sum(self.counts.values())


_Key = tuple[Any, Any]  # (time, id) of the last row a batch read


def _after(query: Select[Any], time_col: Any, id_col: Any, key: _Key | None) -> Select[Any]:
    """``query`` from just after ``key``, in (time, id) order."""
    if key is not None:
        at, last_id = key
        # (time > at) or (time = at and id > last_id), with "time >= at" on its own so that
        # the index scan starts at ``at`` instead of filtering from the oldest row.
        query = query.where(time_col >= at, or_(time_col > at, id_col > last_id))
    return query.order_by(time_col, id_col)


@dataclass(slots=True)
class _Run:
    engine: AsyncEngine
    dry_run: bool
    batch_size: int
    pause_s: float
    stop: Callable[[], bool] | None
    counts: dict[str, int]
    stopped: bool = False

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def between_batches(self) -> bool:
        """Pause between two batches; False when the prune must stop now."""
        if self.stop is not None and self.stop():
            self.stopped = True
            return False
        await asyncio.sleep(self.pause_s)
        if self.stop is not None and self.stop():
            self.stopped = True
            return False
        return True

    def tx(self) -> Any:
        return read_tx(self.engine) if self.dry_run else write_tx(self.engine)

    async def rows(
        self,
        table: Table,
        time_col: Any,
        where: Sequence[ColumnElement[bool]],
        *,
        join: Any = None,
        lock: Sequence[Table] = (),
    ) -> None:
        """Remove (count) the rows of ``table`` matching ``where``, batch by batch."""
        key: _Key | None = None
        while True:
            async with self.tx() as conn:
                query = select(table.c.id, time_col)
                if join is not None:
                    query = query.select_from(join)
                query = _after(query.where(*where), time_col, table.c.id, key).limit(
                    self.batch_size
                )
                if self.postgres and not self.dry_run:
                    query = query.with_for_update(skip_locked=True, of=list(lock or [table]))
                found = (await conn.execute(query)).all()
                if found:
                    key = (found[-1][1], found[-1][0])
                    ids = [row[0] for row in found]
                    if self.dry_run:
                        self.counts[table.name] += len(ids)
                    else:
                        self.counts[table.name] += await _delete(conn, table, table.c.id, ids)
            if len(found) < self.batch_size or not await self.between_batches():
                return

    async def events(self, cutoff: datetime, attempts_cutoff: datetime) -> None:
        """Remove (count) finished old events with their deliveries and attempts."""
        key: _Key | None = None
        while True:
            async with self.tx() as conn:
                query = _after(
                    select(events.c.id, events.c.created_at).where(events.c.created_at < cutoff),
                    events.c.created_at,
                    events.c.id,
                    key,
                ).limit(self.batch_size)
                if self.postgres and not self.dry_run:
                    # An event being replayed right now (its new delivery's insert holds a
                    # key-share lock on it) is skipped; one replayed after this waits for us.
                    query = query.with_for_update(skip_locked=True)
                found = (await conn.execute(query)).all()
                if found:
                    key = (found[-1][1], found[-1][0])
                    await self._events_batch(conn, [row[0] for row in found], attempts_cutoff)
            if len(found) < self.batch_size or not await self.between_batches():
                return

    async def _events_batch(
        self, conn: AsyncConnection, ids: list[str], attempts_cutoff: datetime
    ) -> None:
        # Read (on PostgreSQL: lock, waiting for a retry in progress) the deliveries now,
        # after the events are locked, so a status changed meanwhile is the one seen.
        query = select(deliveries.c.id, deliveries.c.event_id, deliveries.c.status).where(
            deliveries.c.event_id.in_(ids)
        )
        if self.postgres and not self.dry_run:
            query = query.with_for_update()
        rows = (await conn.execute(query)).all()
        busy = {row.event_id for row in rows if row.status not in _FINISHED}
        doomed = [event_id for event_id in ids if event_id not in busy]
        if not doomed:
            return
        doomed_deliveries = select(deliveries.c.id).where(deliveries.c.event_id.in_(doomed))
        if self.dry_run:
            # Older attempts of these (finished) deliveries were counted by the attempts pass.
            attempts_left = await conn.scalar(
                select(func.count())
                .select_from(attempts)
                .where(
                    attempts.c.delivery_id.in_(doomed_deliveries),
                    attempts.c.attempted_at >= attempts_cutoff,
                )
            )
            self.counts[attempts.name] += int(attempts_left or 0)
            self.counts[deliveries.name] += sum(1 for row in rows if row.event_id not in busy)
            self.counts[events.name] += len(doomed)
            return
        self.counts[attempts.name] += await _delete(
            conn, attempts, attempts.c.delivery_id, doomed_deliveries
        )
        self.counts[deliveries.name] += await _delete(
            conn, deliveries, deliveries.c.event_id, doomed
        )
        self.counts[events.name] += await _delete(conn, events, events.c.id, doomed)


async def _delete(conn: AsyncConnection, table: Table, column: Any, values: Any) -> int:
    result = await conn.execute(delete(table).where(column.in_(values)))
    return int(result.rowcount or 0)


async def prune(
    engine: AsyncEngine,
    windows: RetentionWindows,
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    pause_s: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> PruneReport:
    """Apply the retention windows as of ``now`` (or with ``dry_run`` count what would go).

    Args:
        batch_size: rows of the walked table per transaction.
        pause_s: wait between two batches (default: 50 ms on SQLite, none on PostgreSQL).
        stop: asked between batches; when it answers True the prune ends early (shutdown),
            with what it removed so far (``PruneReport.complete`` is False).

    Raises:
        StorageUnavailableError: the database cannot be reached or is locked.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if pause_s is None:
        pause_s = SQLITE_PAUSE_S if engine.dialect.name == "sqlite" else 0.0
    cutoffs = {
        "refused_callbacks": now - windows.refused_callbacks,
        "attempts": now - windows.attempts,
        "events": now - windows.events,
    }
    run = _Run(
        engine=engine,
        dry_run=dry_run,
        batch_size=batch_size,
        pause_s=pause_s,
        stop=stop,
        counts=dict.fromkeys(RETENTION_TABLES, 0),
    )
    refused_before, events_before = cutoffs["refused_callbacks"], cutoffs["events"]
    passes: list[Callable[[], Any]] = [
        lambda: run.rows(
            refused_callbacks,
            refused_callbacks.c.received_at,
            [refused_callbacks.c.received_at < refused_before],
        ),
        # Refused callbacks stored in full before migration 0004.
        lambda: run.rows(
            notifications,
            notifications.c.received_at,
            [_REFUSED, notifications.c.received_at < refused_before],
        ),
        # Accepted and duplicate callbacks: kept as long as events are.
        lambda: run.rows(
            notifications,
            notifications.c.received_at,
            [
                notifications.c.received_at < events_before,
                notifications.c.verdict != NotificationVerdict.REFUSED.value,
            ],
        ),
        lambda: run.rows(
            attempts,
            attempts.c.attempted_at,
            [
                attempts.c.attempted_at < cutoffs["attempts"],
                deliveries.c.status.in_(_FINISHED),
            ],
            join=attempts.join(deliveries, deliveries.c.id == attempts.c.delivery_id),
            # The delivery too: a retry that re-queues it waits for this batch or is seen.
            lock=(attempts, deliveries),
        ),
        lambda: run.events(events_before, cutoffs["attempts"]),
    ]
    for step in passes:
        await step()
        if run.stopped:
            break
    return PruneReport(
        dry_run=dry_run, counts=run.counts, cutoffs=cutoffs, complete=not run.stopped
    )
