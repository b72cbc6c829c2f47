"""Migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from payhook.storage._engine import create_engine
from payhook.storage._migrate import current_revision, downgrade, head_revision, upgrade
from payhook.storage._tables import metadata

pytestmark = pytest.mark.anyio


async def test_upgrade_matches_metadata(database_url: str) -> None:
    """After `upgrade head` the database has no difference from the declared tables."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": False}), metadata
                )
            )
        # The version table is Alembic's, not ours.
        diff = [d for d in diff if "payhook_alembic_version" not in repr(d)]
        assert diff == []
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_downgrade_then_upgrade(database_url: str) -> None:
    """Every migration can be undone and applied again."""
    engine = create_engine(database_url)
    try:
        await downgrade(engine, "base")
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert [n for n in names if n.startswith("payhook_") and "alembic" not in n] == []
        await upgrade(engine)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= set(names)
    finally:
        await engine.dispose()
