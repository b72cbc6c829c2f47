"""The Store: owns the engine (one pool for everything) and picks the intake driver."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import Clock, SystemClock
from payhook._stores import RefusedCallback
from payhook.errors import StorageUnavailableError
from payhook.storage._audit import DropHook, RefusedAudit
from payhook.storage._engine import create_engine, is_sqlite
from payhook.storage._migrate import upgrade
from payhook.storage._signal import OutboxSignal
from payhook.storage.intake import (
    Intake,
    IntakeRecord,
    IntakeResult,
    PostgresIntake,
    SqliteIntake,
)

__all__ = ["Store"]

logger = logging.getLogger("payhook.storage")


class Store:
    """payhook's database: intake writes, plus the engine the dispatcher and admin API use.

    Args:
        database_url: ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://…``.
        clock: the time source for ``created_at`` columns.
        sqlite_busy_timeout_s: how long an intake write waits for a SQLite lock held elsewhere.
        signal: raised after a commit that created deliveries (wakes the in-process dispatcher).
        on_audit_dropped: told ``(channel, cause)`` of every refused-callback audit record
            that was not written (``cause``: ``rate``, ``queue_full``, ``write_failed``,
            ``shutdown``); payhook counts them in a metric.
    """

    # The refused-callback audit (contract §14, ``_audit.py``): records held in memory at
    # most, the budget (a burst, then a rate per second) that bounds how fast a flood of
    # refused callbacks grows the database, records per write, and how long ``close``
    # spends writing what is still queued.
    max_pending_audits = 256
    audit_burst = 100
    audit_rate_per_s = 5.0
    audit_batch = 64
    audit_flush_s = 5.0

    def __init__(
        self,
        database_url: str,
        *,
        clock: Clock | None = None,
        signal: OutboxSignal | None = None,
        sqlite_busy_timeout_s: float = 3.0,
        on_audit_dropped: DropHook | None = None,
    ) -> None:
        self.database_url = database_url
        self._sqlite_busy_timeout_s = sqlite_busy_timeout_s
        self.clock = clock or SystemClock()
        self.signal = signal or OutboxSignal()
        self.is_sqlite = is_sqlite(database_url)
        self._engine: AsyncEngine | None = None
        self._intake: Intake | None = None
        self._audit = RefusedAudit(
            self._write_refused,
            clock=self.clock,
            on_dropped=on_audit_dropped,
            max_pending=self.max_pending_audits,
            rate_per_s=self.audit_rate_per_s,
            burst=self.audit_burst,
            batch_size=self.audit_batch,
        )

    def __repr__(self) -> str:
        url = make_url(self.database_url).render_as_string(hide_password=True)
        return f"Store({url!r})"

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (created on first use)."""
        if self._engine is None:
            self._engine = create_engine(self.database_url)
        return self._engine

    async def migrate(self) -> list[tuple[str, str]]:
        """Create or upgrade payhook's tables; ``(revision id, description)`` of each
        migration applied, oldest first."""
        if self.is_sqlite:
            database = make_url(self.database_url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        return await upgrade(self.engine)

    async def start(self) -> None:
        """Open what the intake path needs: on SQLite the writer thread; on PostgreSQL
        nothing of its own (the intake takes its connections from the engine's pool)."""
        self._audit.open()
        if self._intake is not None:
            return
        if self.is_sqlite:
            database = make_url(self.database_url).database
            if not database or database == ":memory:":
                raise StorageUnavailableError("SQLite needs a file, not :memory:")
            self._intake = SqliteIntake(database, busy_timeout_s=self._sqlite_busy_timeout_s)
        else:
            self._intake = PostgresIntake(self.engine)

    async def close(self) -> None:
        """Write the queued refused-callback audit records (``audit_flush_s`` at most), then
        close the intake (the SQLite writer thread) and the engine."""
        await self._audit.close(self.audit_flush_s)
        if self._intake is not None:
            intake, self._intake = self._intake, None
            await intake.close()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def record(self, record: IntakeRecord) -> IntakeResult:
        """Commit the intake transaction for one callback; returns after the commit is durable.

        Raises:
            StorageUnavailableError: the database cannot take the write.
        """
        now = self.clock.now()
        if self._intake is None:
            await self.start()
            assert self._intake is not None
        result = await self._intake.record(record, now)
        if result.deliveries:
            self.signal.notify()
        return result

    def audit_refused(self, channel: str, build: Callable[[], RefusedCallback]) -> None:
        """Queue the audit record of a callback refused on ``channel`` (``build`` makes it,
        called only when it is kept); it is written in the background, after any callback
        waiting to be recorded, or dropped and counted (never raises)."""
        self._audit.offer(channel, build)

    @property
    def audits_written(self) -> int:
        """Refused-callback audit records written since this store was created."""
        return self._audit.written

    async def _write_refused(self, records: Sequence[RefusedCallback]) -> None:
        if self._intake is None:
            await self.start()
            assert self._intake is not None
        await self._intake.write_refused(records)

    async def ping(self) -> bool:
        """Whether the database answers and, on SQLite, takes writes (another process may hold
        the write lock while reads still work)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            if self._intake is not None:
                await self._intake.ping()
        except (SQLAlchemyError, OSError, StorageUnavailableError) as exc:
            logger.warning("database not ready: %s", exc.__class__.__name__)
            return False
        return True
