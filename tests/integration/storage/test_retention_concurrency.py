"""Retention running beside other writers: two prunes at once, and (PostgreSQL, where writers
do not queue for one lock) an operator re-queueing or replaying an old event while the prune
works on it: the event and its new pending delivery must survive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.errors import EventNotFoundError
from payhook.events import new_id
from payhook.storage import PruneReport, prune, requeue
from payhook.storage._engine import create_engine
from payhook.storage._tables import deliveries, events
from tests.integration.storage._retention_seed import (
    NOW,
    TABLES,
    WINDOWS,
    Seeder,
    counts,
    delivery_status,
    ids,
)

pytestmark = pytest.mark.anyio

_DEADLINE_S = 60.0  # only a guard against a hang; the tests wait for positive signals


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_two_prunes_at_once_remove_each_row_once(
    engine: AsyncEngine, database_url: str
) -> None:
    """Two processes' prunes running together (their hourly runs met) remove everything due
    exactly once between them, keep what must stay, and neither fails."""
    seed = Seeder(engine)
    for i in range(12):
        await seed.event(1000 + i, ("succeeded", "dead"), attempt_ages=(900, 20))
        await seed.event(1000 + i, ("pending",), attempt_ages=(900,))
        await seed.event(100, ("succeeded",), attempt_ages=(40,))
        await seed.refused(10 + i)
        await seed.notification(8 + i, "refused")
        await seed.notification(500 + i, "accepted")
    expected = await prune(engine, WINDOWS, now=NOW, dry_run=True)
    before = await counts(engine)
    other = create_engine(database_url)
    try:
        reports: list[PruneReport] = await asyncio.gather(
            prune(engine, WINDOWS, now=NOW, batch_size=3, pause_s=0),
            prune(other, WINDOWS, now=NOW, batch_size=3, pause_s=0),
        )
    finally:
        await other.dispose()
    removed = {t: sum(r.counts[t] for r in reports) for t in TABLES}
    assert removed == expected.counts
    after = await counts(engine)
    assert {t: before[t] - after[t] for t in TABLES} == expected.counts
    assert set((await delivery_status(engine)).values()) == {"pending", "succeeded"}


async def _wait_until_blocked(engine: AsyncEngine, task: asyncio.Task[Any]) -> None:
    """Until ``task`` waits for a row lock in this database (or is done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DEADLINE_S
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while not task.done():
        async with engine.connect() as conn:
            if await conn.scalar(query):
                return
        if loop.time() > deadline:
            raise AssertionError("the prune neither finished nor waited for the lock")
        await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_a_delivery_requeued_during_the_prune_keeps_its_event(
    postgres_database_url: str,
) -> None:
    """`deliveries retry` re-queues a dead delivery of a 1000-day-old event while the prune
    works on that event: the prune waits for the retry, sees the delivery pending, and keeps
    the event and the delivery."""
    engine = create_engine(postgres_database_url)
    pruner = create_engine(postgres_database_url)
    try:
        seed = Seeder(engine)
        event_id, [dead] = await seed.event(1000, ("dead",))
        finished, _ = await seed.event(1000, ("succeeded",))
        async with engine.connect() as retry:
            await retry.begin()
            await retry.execute(
                update(deliveries).where(deliveries.c.id == dead).values(status="pending")
            )
            task = asyncio.create_task(prune(pruner, WINDOWS, now=NOW))
            await _wait_until_blocked(engine, task)
            await retry.commit()
        report = await task
        assert await ids(engine, events) == {event_id}
        assert (await delivery_status(engine)) == {dead: "pending"}
        assert report.counts["payhook_events"] == 1
        assert finished not in await ids(engine, events)
    finally:
        await pruner.dispose()
        await engine.dispose()


@pytest.mark.postgres
async def test_an_event_replayed_during_the_prune_is_kept(postgres_database_url: str) -> None:
    """`events replay` adds a pending delivery to a 1000-day-old finished event while the
    prune runs: the event and the new delivery stay."""
    engine = create_engine(postgres_database_url)
    pruner = create_engine(postgres_database_url)
    try:
        seed = Seeder(engine)
        event_id, [old] = await seed.event(1000, ("succeeded",))
        replayed = new_id("dlv")
        async with engine.connect() as replay:
            await replay.begin()
            await replay.execute(
                insert(deliveries).values(
                    id=replayed,
                    event_id=event_id,
                    subscription_id=seed.subscription_id,
                    status="pending",
                    attempt_count=0,
                    next_attempt_at=NOW,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            task = asyncio.create_task(prune(pruner, WINDOWS, now=NOW))
            await _wait_until_blocked(engine, task)
            await replay.commit()
        await task
        assert await ids(engine, events) == {event_id}
        assert (await delivery_status(engine)) == {old: "succeeded", replayed: "pending"}
    finally:
        await pruner.dispose()
        await engine.dispose()


@pytest.mark.postgres
async def test_a_replay_that_meets_a_prune_waits_and_finds_no_event(
    postgres_database_url: str,
) -> None:
    """A replay of an event the prune is removing right now waits for the prune's lock and
    answers "no event", not a database error."""
    engine = create_engine(postgres_database_url)
    try:
        seed = Seeder(engine)
        event_id, _ = await seed.event(1000, ("succeeded",))
        async with engine.connect() as pruning:
            await pruning.begin()
            # What the prune's events batch does: lock, then delete.
            await pruning.execute(
                text("SELECT id FROM payhook_events WHERE id = :id FOR UPDATE"), {"id": event_id}
            )
            await pruning.execute(
                text("DELETE FROM payhook_deliveries WHERE event_id = :id"), {"id": event_id}
            )
            await pruning.execute(
                text("DELETE FROM payhook_events WHERE id = :id"), {"id": event_id}
            )
            task = asyncio.create_task(requeue.replay_event(engine, event_id, None, now=NOW))
            await _wait_until_blocked(engine, task)
            await pruning.commit()
        with pytest.raises(EventNotFoundError):
            await task
    finally:
        await engine.dispose()
