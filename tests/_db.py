"""Test databases: SQLite files in tmp_path and per-test PostgreSQL databases from a template."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
from sqlalchemy.engine import make_url

from payhook.storage._engine import create_engine
from payhook.storage._migrate import upgrade

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str | None:
    """The PostgreSQL server to test against, or None when there is none."""
    url = os.environ.get("PAYHOOK_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        return DEFAULT_PG_URL
    # A developer machine: use the local server when it answers.
    try:
        asyncio.run(_ping(DEFAULT_PG_URL))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    return DEFAULT_PG_URL


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url)
    if database is not None:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=3)
    await conn.close()


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def create_template(server_url: str) -> str:
    """Create a migrated template database; returns its name."""
    name = f"payhook_tmpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate(with_database(server_url, name)))
    return name


def create_from_template(server_url: str, template: str | None) -> str:
    """A fresh database (a copy of ``template`` when given); returns its name."""
    name = f"payhook_t_{uuid.uuid4().hex[:12]}"
    suffix = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"{suffix}'))
    return name


def drop_database(server_url: str, name: str) -> None:
    """Drop a test database, whoever is still connected."""
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
