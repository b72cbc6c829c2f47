"""Fixtures for dispatcher tests: an engine on each backend and a real subscriber server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.storage._engine import create_engine
from tests.integration.dispatch._subscriber import Subscriber


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, migrated SQLite or PostgreSQL database."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    """A subscriber server on 127.0.0.1."""
    server = Subscriber()
    await server.start()
    yield server
    await server.stop()
