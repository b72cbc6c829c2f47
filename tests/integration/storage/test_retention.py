"""Retention (contract §14) on real SQLite and PostgreSQL databases: what goes, what stays
(never an event with a delivery still to send), dry runs, batches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.storage import prune
from payhook.storage._engine import create_engine
from payhook.storage._tables import attempts, deliveries, events, notifications, refused_callbacks
from tests.integration.storage._retention_seed import NOW, TABLES, WINDOWS, Seeder, counts, ids

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_events_with_a_delivery_to_send_are_never_pruned(engine: AsyncEngine) -> None:
    """Very old events stay while any delivery is pending, failed or claimed; old events whose
    deliveries all finished go, with their deliveries and attempts."""
    seed = Seeder(engine)
    kept = [
        await seed.event(1000, ("pending",)),
        await seed.event(1000, ("failed",), attempt_ages=(999,)),
        await seed.event(1000, ("pending",), lease=True),  # claimed by a worker right now
        await seed.event(1000, ("succeeded", "failed"), attempt_ages=(999,)),
        await seed.event(1000, ("dead", "pending")),
        await seed.event(399, ("succeeded",), attempt_ages=(10,)),  # inside the window
    ]
    gone = [
        await seed.event(1000, ("succeeded",), attempt_ages=(999,)),
        await seed.event(401, ("dead", "succeeded"), attempt_ages=(400, 20)),
        await seed.event(500),  # no subscription matched it
    ]
    report = await prune(engine, WINDOWS, now=NOW)

    assert await ids(engine, events) == {event_id for event_id, _ in kept}
    assert await ids(engine, deliveries) == {d for _, ds in kept for d in ds}
    assert report.counts == {
        "payhook_refused_callbacks": 0,
        "payhook_notifications": 0,
        # 999-day-old attempts of finished deliveries (one of a kept event, one of a pruned
        # one) by age; the 400- and 20-day-old ones with their pruned event.
        "payhook_delivery_attempts": 1 + 1 + 4,
        "payhook_deliveries": 3,
        "payhook_events": len(gone),
    }
    assert report.complete
    assert not report.dry_run
    # The failed delivery's 999-day-old attempts are kept (it may still be sent).
    left = await counts(engine)
    assert left["payhook_delivery_attempts"] == 3


async def test_attempts_of_finished_deliveries_pruned_by_age(engine: AsyncEngine) -> None:
    """Attempts older than the window go when their delivery finished; a delivery that may
    still be sent keeps all of its attempts."""
    seed = Seeder(engine)
    _, [succeeded] = await seed.event(100, ("succeeded",), attempt_ages=(45, 31, 29, 1))
    _, [dead] = await seed.event(100, ("dead",), attempt_ages=(60, 2))
    _, [failed] = await seed.event(100, ("failed",), attempt_ages=(60, 50, 2))
    _, [pending] = await seed.event(100, ("pending",), attempt_ages=(90,))
    report = await prune(engine, WINDOWS, now=NOW)
    assert report.counts["payhook_delivery_attempts"] == 2 + 1
    assert report.counts["payhook_events"] == 0
    remaining = await _attempts_by_delivery(engine)
    assert remaining == {succeeded: 2, dead: 1, failed: 3, pending: 1}


async def _attempts_by_delivery(engine: AsyncEngine) -> dict[str, int]:
    from sqlalchemy import func, select

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(attempts.c.delivery_id, func.count()).group_by(attempts.c.delivery_id)
        )
        return {str(r[0]): int(r[1]) for r in rows}


async def test_refused_audit_and_callbacks_pruned_by_age(engine: AsyncEngine) -> None:
    """Refused-callback audit rows (and refused rows left in payhook_notifications from
    before migration 0004) go after 7 days; accepted and duplicate callbacks stay as long as
    events do."""
    seed = Seeder(engine)
    old_audit = [await seed.refused(8), await seed.refused(30)]
    new_audit = [await seed.refused(6.9), await seed.refused(0)]
    old_legacy = await seed.notification(8, "refused")
    new_legacy = await seed.notification(6, "refused")
    accepted_kept = [
        await seed.notification(8, "accepted"),
        await seed.notification(399, "duplicate"),
    ]
    accepted_gone = [
        await seed.notification(401, "accepted"),
        await seed.notification(900, "duplicate"),
    ]
    report = await prune(engine, WINDOWS, now=NOW)
    assert await ids(engine, refused_callbacks) == set(new_audit)
    assert await ids(engine, notifications) == {new_legacy, *accepted_kept}
    assert report.counts["payhook_refused_callbacks"] == len(old_audit)
    assert report.counts["payhook_notifications"] == 1 + len(accepted_gone)
    assert old_legacy not in await ids(engine, notifications)


async def _mixed(seed: Seeder) -> None:
    """A bit of everything, old and new, in interleaved order."""
    for i in range(6):
        await seed.event(1000 + i, ("pending",), attempt_ages=(900,))
        await seed.event(1000 + i, ("succeeded", "dead"), attempt_ages=(900, 35, 3))
        await seed.event(450 + i, ("failed", "succeeded"), attempt_ages=(440,))
        await seed.event(200 + i, ("succeeded",), attempt_ages=(190, 20))
        await seed.event(402 + i)
        await seed.refused(10 + i)
        await seed.refused(i)
        await seed.notification(8 + i, "refused")
        await seed.notification(500 + i, "accepted")
        await seed.notification(20 + i, "accepted")


async def test_dry_run_deletes_nothing_and_counts_what_prune_removes(
    engine: AsyncEngine,
) -> None:
    seed = Seeder(engine)
    await _mixed(seed)
    before = await counts(engine)
    dry = await prune(engine, WINDOWS, now=NOW, dry_run=True)
    assert dry.dry_run
    assert await counts(engine) == before
    assert dry.total > 0
    assert all(dry.counts[table] > 0 for table in TABLES), dry.counts

    done = await prune(engine, WINDOWS, now=NOW)
    assert done.counts == dry.counts
    after = await counts(engine)
    assert {t: before[t] - after[t] for t in TABLES} == done.counts

    again = await prune(engine, WINDOWS, now=NOW, dry_run=True)
    assert again.total == 0


async def test_small_batches_prune_the_same_rows(engine: AsyncEngine) -> None:
    """Batches of 2 rows walk past the rows that stay and remove exactly what one big batch
    would (the keyset continues after the last row read, kept or not)."""
    seed = Seeder(engine)
    await _mixed(seed)
    expected = await prune(engine, WINDOWS, now=NOW, dry_run=True)
    events_before = len(await ids(engine, events))
    report = await prune(engine, WINDOWS, now=NOW, batch_size=2, pause_s=0)
    assert report.counts == expected.counts
    assert len(await ids(engine, events)) == events_before - expected.counts["payhook_events"]
    assert (await prune(engine, WINDOWS, now=NOW, dry_run=True)).total == 0


async def test_stop_ends_a_prune_between_batches(engine: AsyncEngine) -> None:
    """Shutdown asks the prune to stop: it ends after the batch in progress, reports what it
    removed and says it is incomplete; the next prune removes the rest."""
    seed = Seeder(engine)
    for _ in range(5):
        await seed.refused(30)
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) >= 2

    report = await prune(engine, WINDOWS, now=NOW, batch_size=2, pause_s=0, stop=stop)
    assert not report.complete
    assert report.counts["payhook_refused_callbacks"] == 2
    rest = await prune(engine, WINDOWS, now=NOW, batch_size=2, pause_s=0)
    assert rest.complete
    assert rest.counts["payhook_refused_callbacks"] == 3
