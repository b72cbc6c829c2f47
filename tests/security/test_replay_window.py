"""An old but valid WeChat Pay v3 callback replayed after the window is refused (in-process,
with a fake clock, so the window's edges are exact)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from payhook._hook import PayHook
from payhook.config import load_settings
from payhook.storage._tables import events
from payhook.testing import FakeClock
from tests.faults._callbacks import Callbacks, Fact
from tests.faults._payhook import write_config

START = datetime(2026, 11, 28, 1, 0, 0, tzinfo=UTC)


async def _count(hook: PayHook) -> int:
    async with hook.store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(events)) or 0)


@pytest.mark.anyio
async def test_accepted_callback_replayed_after_the_window_is_refused(tmp_path: Path) -> None:
    """Accepted at t, acknowledged again at t+300 s, refused with 401 at t+301 s; one event."""
    config = write_config(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    clock = FakeClock(START)
    hook = PayHook(load_settings(config), clock=clock, run_dispatcher=False)
    callback = Callbacks(config).build(
        Fact(channel="wechat", order_id="REPLAY-1", event="paid", amount=8888), now=START
    )
    async with hook.lifespan():
        transport = httpx.ASGITransport(app=hook.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://payhook") as client:

            async def send() -> httpx.Response:
                return await client.post(
                    "/notify/wechat", content=callback.body, headers=dict(callback.headers)
                )

            assert (await send()).status_code == 204
            clock.advance(300)
            assert (await send()).status_code == 204  # a duplicate inside the window
            clock.advance(1)
            late = await send()
            assert late.status_code == 401, late.text
            assert "Wechatpay-Timestamp" in late.json()["message"]
            assert await _count(hook) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("offset_s", [-301, 301], ids=["301s-old", "301s-ahead"])
async def test_never_seen_callback_outside_the_window_is_refused(
    tmp_path: Path, offset_s: int
) -> None:
    """A correctly signed callback never seen before, 301 s off, stores nothing."""
    config = write_config(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    clock = FakeClock(START)
    hook = PayHook(load_settings(config), clock=clock, run_dispatcher=False)
    callback = Callbacks(config).build(
        Fact(channel="wechat", order_id="REPLAY-2", event="paid", amount=1),
        now=START.fromtimestamp(START.timestamp() + offset_s, UTC),
    )
    async with hook.lifespan():
        transport = httpx.ASGITransport(app=hook.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://payhook") as client:
            reply = await client.post(
                "/notify/wechat", content=callback.body, headers=dict(callback.headers)
            )
            assert reply.status_code == 401, reply.text
            assert await _count(hook) == 0
