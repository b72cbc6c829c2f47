"""Fixtures for the admin API tests: a PayHook on a fresh database and an authenticated client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from payhook._hook import PayHook
from tests.integration.admin._helpers import TOKEN, make_hook


@pytest.fixture
async def hook(database_url: str) -> AsyncIterator[PayHook]:
    """A started PayHook (no dispatcher) with the admin API on, on SQLite and PostgreSQL."""
    h = make_hook(database_url)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def client(hook: PayHook) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``hook.app`` that sends the admin token."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hook.app),
        base_url="http://payhook.test",
        headers={"authorization": f"Bearer {TOKEN}"},
    ) as c:
        yield c
