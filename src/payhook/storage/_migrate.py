"""Schema migrations (Alembic), shipped inside the package and run programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "current_revision",
    "downgrade",
    "head_revision",
    "pending_revisions",
    "upgrade",
]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> list[tuple[str, str]]:
    """Apply migrations up to ``revision``; ``(revision id, description)`` of each one applied,
    oldest first (empty when the database was up to date)."""

    def _run(sync: Connection) -> list[tuple[str, str]]:
        before = _current(sync)
        command.upgrade(_config(sync), revision)
        after = _current(sync)
        if after == before:
            return []
        done = {rev for rev, _ in pending_revisions(after)}
        return [step for step in pending_revisions(before) if step[0] not in done]

    async with engine.begin() as conn:
        return await conn.run_sync(_run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``base`` removes every payhook table)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), revision))


def _scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str | None:
    """The newest revision shipped with this version of payhook."""
    return _scripts().get_current_head()


def pending_revisions(current: str | None) -> list[tuple[str, str]]:
    """``(revision id, description)`` of each migration after ``current``, oldest first."""
    scripts = _scripts()
    steps = list(scripts.iterate_revisions("heads", current or "base"))
    steps.reverse()
    return [(step.revision, (step.doc or "").strip()) for step in steps]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` when payhook's tables do not exist)."""

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _current(sync: Connection) -> str | None:
    ctx = MigrationContext.configure(sync, opts={"version_table": "payhook_alembic_version"})
    return ctx.get_current_revision()
