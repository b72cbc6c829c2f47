"""The Store: owns the engine (one pool for everything) and picks the intake driver."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import Clock, SystemClock
from payhook.errors import StorageUnavailableError
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
    """

    def __init__(
        self,
        database_url: str,
        *,
        clock: Clock | None = None,
        signal: OutboxSignal | None = None,
        sqlite_busy_timeout_s: float = 3.0,
    ) -> None:
        self.database_url = database_url
        self._sqlite_busy_timeout_s = sqlite_busy_timeout_s
        self.clock = clock or SystemClock()
        self.signal = signal or OutboxSignal()
        self.is_sqlite = is_sqlite(database_url)
        self._engine: AsyncEngine | None = None
        self._intake: Intake | None = None
        self._audits: set[asyncio.Task[None]] = set()

    # Refused callbacks are audited in the background; under a flood the excess is dropped
    # (and counted by the caller's metrics) rather than queued without bound.
    max_pending_audits = 256

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
        """Close the intake (the SQLite writer thread) and the engine."""
        if self._audits:
            await asyncio.gather(*self._audits, return_exceptions=True)
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

    def audit_refused(self, record: IntakeRecord) -> bool:
        """Store the audit row of a refused callback in the background; False if dropped."""
        if len(self._audits) >= self.max_pending_audits:
            return False
        task = asyncio.get_running_loop().create_task(self._audit(record))
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)
        return True

    async def _audit(self, record: IntakeRecord) -> None:
        try:
            await self.record(record)
        except Exception:  # noqa: BLE001 - auditing a refused callback is best effort
            logger.warning("could not audit a refused callback", extra={"action": "audit_failed"})

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
