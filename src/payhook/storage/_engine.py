"""Engine creation: the one place that knows SQLite pragmas and pool settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["SQLITE_PRAGMAS", "create_engine", "is_sqlite"]

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
