"""The PostgreSQL intake on the engine's pool: one pool per process, clean connections."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from payhook._clock import SystemClock
from payhook.events import EventDraft, EventType
from payhook.storage import IntakeRecord, Store
from payhook.storage._txn import pg_driver

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)


def record(n: int) -> IntakeRecord:
    draft = EventDraft(
        type=EventType.ORDER_PAID,
        key=f"alipay:app:T{n}:payment.order.paid",
        provider="alipay",
        merchant_id="app",
        order_id=f"ORDER-{n}",
        transaction_id=f"T{n}",
        amount=100,
    )
    return IntakeRecord(
        channel="alipay",
        received_at=NOW,
        headers={},
        body=b"a=1",
        notification_id=f"n{n}",
        drafts=(draft,),
    )


@pytest.fixture
async def store(postgres_database_url: str):  # type: ignore[no-untyped-def]
    s = Store(postgres_database_url, clock=SystemClock())
    await s.start()
    yield s
    await s.close()


async def test_intake_uses_the_engine_pool_only(store: Store) -> None:
    """Concurrent callbacks take their connections from the engine's pool: every session
    open on the database is one of that pool's connections (no second pool beside it)."""
    results = await asyncio.gather(*(store.record(record(n)) for n in range(12)))
    assert all(len(r.new_event_ids) == 1 for r in results)
    pool = store.engine.pool
    async with store.engine.connect() as conn:
        sessions = await conn.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        )
        in_pool = pool.checkedin() + pool.checkedout()  # type: ignore[attr-defined]
    assert in_pool >= 2  # the callbacks ran concurrently, on the pool's connections
    assert sessions == in_pool


async def test_connection_left_in_a_transaction_is_not_reused(store: Store) -> None:
    """A pooled connection given back inside a transaction is dropped, not handed out to
    the next caller with that transaction still open."""
    async with pg_driver(store.engine) as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMPORARY TABLE left_open (x int)")
        first = conn
    async with pg_driver(store.engine) as conn:
        assert conn is not first
        assert not conn.is_in_transaction()
    result = await store.record(record(1))
    assert len(result.new_event_ids) == 1
