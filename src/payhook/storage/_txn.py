"""Transactions for the dispatcher's storage code: write locks up front, errors mapped once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook.errors import StorageUnavailableError

__all__ = ["is_transient", "read_tx", "write_tx"]


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot answer right now" (retry later)."""
    if isinstance(exc, StorageUnavailableError):
        return True
    if isinstance(exc, IntegrityError | DataError | ProgrammingError):
        return False
    return isinstance(exc, DBAPIError | OSError | TimeoutError | ConnectionError)


@asynccontextmanager
async def write_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write.

    On SQLite it starts with ``BEGIN IMMEDIATE``: the write lock is taken (waiting up to
    ``busy_timeout``) before anything is read, so no other writer can invalidate what this
    transaction reads (a deferred transaction would fail with SQLITE_BUSY_SNAPSHOT instead).

    Raises:
        StorageUnavailableError: the database cannot be reached or is locked.
    """
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
    except BaseException as exc:
        if is_transient(exc) and not isinstance(exc, StorageUnavailableError):
            raise StorageUnavailableError("the database is unavailable") from exc
        raise


@asynccontextmanager
async def read_tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection; unavailable databases raise StorageUnavailableError."""
    try:
        async with engine.connect() as conn:
            yield conn
    except BaseException as exc:
        if is_transient(exc) and not isinstance(exc, StorageUnavailableError):
            raise StorageUnavailableError("the database is unavailable") from exc
        raise
