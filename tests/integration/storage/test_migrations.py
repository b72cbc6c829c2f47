"""Migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from payhook.storage._engine import create_engine
from payhook.storage._migrate import current_revision, downgrade, head_revision, upgrade
from payhook.storage._tables import metadata

pytestmark = pytest.mark.anyio


def _declared_for(dialect: str) -> Callable[..., bool]:
    """Alembic's include_object: leave out what the code declares for other dialects only
    (``Index.ddl_if(dialect=...)``), which autogenerate does not read by itself."""

    def include(obj: Any, _name: Any, _type: Any, reflected: bool, _compare_to: Any) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        if reflected or ddl_if is None or ddl_if.dialect is None:
            return True
        names = (ddl_if.dialect,) if isinstance(ddl_if.dialect, str) else ddl_if.dialect
        return dialect in names

    return include


async def test_upgrade_matches_metadata(database_url: str) -> None:
    """After `upgrade head` the database has no difference from the declared tables."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "compare_type": False,
                            "include_object": _declared_for(sync.dialect.name),
                        },
                    ),
                    metadata,
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
