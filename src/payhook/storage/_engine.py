"""Engine creation: the one place that knows SQLite pragmas and pool settings, and the one
place that turns a failed connection attempt into the line an operator reads."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from payhook.errors import ConfigurationError, PayhookError, StorageUnavailableError

__all__ = [
    "SQLITE_PRAGMAS",
    "connect_error",
    "create_engine",
    "describe_database",
    "is_sqlite",
    "missing_sqlite_file",
    "probe",
]

# WAL + synchronous=FULL: a commit is on disk before payhook acknowledges anything.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)
_CONNECT_TIMEOUT_S = 5.0


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``)."""
    if is_sqlite(url):
        engine = create_async_engine(
            url, pool_size=4, max_overflow=4, hide_parameters=True, **kwargs
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

        return engine
    kwargs.setdefault("hide_parameters", True)  # secrets never reach error messages
    # The one pool of the process: the intake, the dispatcher and the admin API share it.
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # A server that does not answer a connection attempt within 5 s is down: the callback
    # gets the provider's "try again" answer in time (asyncpg would wait 60 s).
    kwargs["connect_args"] = {"timeout": _CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
    return create_async_engine(url, **kwargs)


def describe_database(url: str | URL) -> str:
    """``url`` for an operator: password masked, then host:port and database name."""
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        return shown
    port = parsed.port or (5432 if parsed.get_backend_name() == "postgresql" else None)
    where = f"{parsed.host or 'localhost'}:{port}" if port else parsed.host or "localhost"
    return f"{shown} (server {where}, database {parsed.database or '(default)'!r})"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, what it wraps (SQLAlchemy's ``orig``) and what caused it."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def connect_error(url: str | URL, exc: BaseException) -> PayhookError | None:
    """The one-line error for a failed attempt to connect to ``url`` (None when ``exc`` is not
    a connection problem). Every command reports a database it cannot open through this."""
    where = describe_database(url)
    for item in _chain(exc):
        name = type(item).__name__
        if isinstance(item, PayhookError):
            return item
        if name == "InvalidCatalogNameError":
            database = make_url(url).database
            return ConfigurationError(
                f"cannot connect to the database {where}: database {database!r} does not exist"
            )
        if name in {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
            return ConfigurationError(
                f"cannot connect to the database {where}: authentication failed"
            )
        if isinstance(item, socket.gaierror):
            return StorageUnavailableError(f"cannot connect to the database {where}: unknown host")
        if isinstance(item, ConnectionRefusedError):
            return StorageUnavailableError(
                f"cannot connect to the database {where}: connection refused "
                "(is the server running?)"
            )
        if isinstance(item, TimeoutError):
            return StorageUnavailableError(
                f"cannot connect to the database {where}: no answer (timed out)"
            )
        if isinstance(item, OSError):
            reason = item.strerror or str(item) or name
            return StorageUnavailableError(f"cannot connect to the database {where}: {reason}")
        if name == "OperationalError" and "unable to open database" in str(item):
            return ConfigurationError(f"cannot open the database {where}: {item}")
    if isinstance(exc, SQLAlchemyError):
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return StorageUnavailableError(f"cannot connect to the database {where}: {detail}")
    return None


def missing_sqlite_file(url: str | URL) -> str | None:
    """The path of the SQLite file ``url`` names when that file does not exist yet."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if Path(database).exists() else database


async def probe(url: str) -> None:
    """Open one connection to ``url`` and run ``SELECT 1``; a SQLite file that does not exist
    yet is not opened (``serve`` and ``db upgrade`` create it).

    Raises:
        ConfigurationError: the URL is invalid, or names a database or user that does not
            exist.
        StorageUnavailableError: the server cannot be reached.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("database_url: not a database URL") from None
    if missing_sqlite_file(parsed):
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        error = connect_error(url, exc)
        if error is None:
            raise
        raise error from None
    finally:
        await engine.dispose()
