"""Schema migrations (Alembic), shipped inside the package and run programmatically.

Alembic's own log lines (``Context impl …``, ``Running upgrade …``) are left to the caller's
logging set-up; the payhook commands keep them quiet below DEBUG and print what was applied.
A schema from a newer payhook, or a migration that fails, is one :class:`PayhookError`
(never an alembic traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.errors import ConfigurationError, PayhookError, StorageError

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
    oldest first (empty when the database was up to date).

    Raises:
        ConfigurationError: the schema is from a newer payhook (a revision this one does not
            ship).
        StorageError: a migration failed (one line naming it and the database's answer).
    """

    def _run(sync: Connection) -> list[tuple[str, str]]:
        before = _current(sync)
        pending = pending_revisions(before)
        applied: list[str] = []

        def _applied(*, step: Any, **_kw: Any) -> None:
            applied.extend(step.up_revision_ids)

        cfg = _config(sync)
        cfg.attributes["on_version_apply"] = _applied
        try:
            command.upgrade(cfg, revision)
        except PayhookError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is reported as one line
            failed = next(((r, d) for r, d in pending if r not in applied), None)
            raise _migration_failed(failed, exc) from None
        done = set(applied)
        return [step for step in pending if step[0] in done]

    async with engine.begin() as conn:
        return await conn.run_sync(_run)


def _migration_failed(step: tuple[str, str] | None, exc: Exception) -> StorageError:
    """One line for a failed migration: which one, and the database's own first line."""
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    detail = (str(cause).strip().splitlines() or [""])[0][:200]
    what = f"migration {step[0]} ({step[1]})" if step else "the schema upgrade"
    return StorageError(
        f"{what} failed: {cause.__class__.__name__}: {detail}; fix the cause and run "
        "`payhook db upgrade` again (`payhook check-config --connect` shows the schema version)",
        reason="migration_failed",
    )


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
    """``(revision id, description)`` of each migration after ``current``, oldest first.

    Raises:
        ConfigurationError: ``current`` is a revision this payhook does not ship (the schema
            was upgraded by a newer payhook).
    """
    scripts = _scripts()
    known = {script.revision for script in scripts.walk_revisions()}
    if current is not None and current not in known:
        raise ConfigurationError(
            f"the database schema is at revision {current}, which this payhook does not know "
            f"(its newest is {scripts.get_current_head()}): a newer payhook upgraded it; run "
            "that version (or a newer one) against this database",
            reason="schema_too_new",
        )
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
