"""The database goes away under a running dispatcher: it backs off, logs once, and recovers."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from payhook._clock import SystemClock
from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.storage._engine import create_engine
from tests.integration.dispatch._seed import add_subscription, delivery_rows, seed_events
from tests.integration.dispatch._subscriber import Subscriber

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def _admin(url: str, *statements: str) -> None:
    dsn = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_database_outage_is_survived(
    postgres_database_url: str, subscriber: Subscriber, caplog: pytest.LogCaptureFixture
) -> None:
    """During an outage the dispatcher logs one warning, does not spin, and delivers afterwards."""
    name = make_url(postgres_database_url).database
    engine = create_engine(postgres_database_url)
    caplog.set_level(logging.INFO, logger="payhook.dispatch")
    try:
        now = SystemClock().now()
        sub = await add_subscription(engine, name="orders", url=subscriber.url("orders"), now=now)
        await seed_events(engine, 3, subscription_ids=[sub], now=now)
        await engine.dispose()
        await _admin(
            postgres_database_url,
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",  # noqa: S608
        )
        dispatcher = Dispatcher(
            engine=engine, policy=RetryPolicy(schedule_s=(1.0,)), poll_interval_s=0.1
        )
        task = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(2.0)
        assert not task.done()
        assert subscriber.received == []
        warnings = [r for r in caplog.records if getattr(r, "action", "") == "database_unavailable"]
        assert len(warnings) == 1
        # Back-off, not a busy loop: a handful of tries in two seconds.
        assert dispatcher._health.failures <= 8

        await _admin(postgres_database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await subscriber.wait_for(3, timeout=15)
        await dispatcher.stop(grace_s=1)
        await task
        rows = await delivery_rows(engine)
        assert {r.status for r in rows.values()} == {"succeeded"}
        assert any(getattr(r, "action", "") == "database_available" for r in caplog.records)
    finally:
        await _admin(postgres_database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await engine.dispose()
