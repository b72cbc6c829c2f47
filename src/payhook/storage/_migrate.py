"""Schema migrations (Alembic), shipped inside the package and run programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["current_revision", "downgrade", "head_revision", "upgrade"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``base`` removes every payhook table)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), revision))


def head_revision() -> str | None:
    """The newest revision shipped with this version of payhook."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return ScriptDirectory.from_config(cfg).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` when payhook's tables do not exist)."""

    def _read(sync: Connection) -> str | None:
        ctx = MigrationContext.configure(sync, opts={"version_table": "payhook_alembic_version"})
        return ctx.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_read)
