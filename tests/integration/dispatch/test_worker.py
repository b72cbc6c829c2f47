"""The running dispatcher: fairness, wake-ups, graceful stop, handlers, leases and fencing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import SystemClock
from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.events import Event
from payhook.storage._engine import create_engine
from payhook.storage._outbox import Completion, claim_due, complete, next_due_at, release
from payhook.storage._signal import OutboxSignal
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import (
    add_subscription,
    attempt_rows,
    delivery_rows,
    seed_events,
)
from tests.integration.dispatch._subscriber import Behaviour, Subscriber

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(schedule_s=(1.0, 4.0))
# Poll interval for the wake-up tests: only a wake-up can send anything within the test.
IDLE_POLL_S = 3600.0
# How long a woken dispatcher may take on a loaded machine: far below IDLE_POLL_S.
WAKE_TIMEOUT_S = 60.0


@asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``dispatcher`` in the background for the duration of the block."""
    task = asyncio.create_task(dispatcher.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(dispatcher.stop(grace_s=0.5), 10)
        await asyncio.wait_for(task, 10)


async def test_hanging_subscriber_does_not_delay_a_healthy_one(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """A subscriber that hangs holds only its own slots; a healthy one is served at once."""
    now = SystemClock().now()
    hang = await add_subscription(
        engine, name="hang", url=subscriber.url("hang", Behaviour(hang=True)), now=now
    )
    ok = await add_subscription(engine, name="ok", url=subscriber.url("ok"), now=now)
    # The hanging subscriber's deliveries are older, so a naive claim would take them first.
    await seed_events(engine, 30, subscription_ids=[hang], now=now - timedelta(seconds=60))
    await seed_events(engine, 30, subscription_ids=[ok], now=now)
    dispatcher = Dispatcher(
        engine=engine,
        policy=POLICY,
        request_timeout_s=30.0,
        concurrency=8,
        per_subscription_concurrency=2,
        poll_interval_s=5.0,
        listen=False,
    )
    async with running(dispatcher):
        # Served well within the 30 s the hanging requests are held (their request timeout).
        await subscriber.wait_for(30, path="ok", timeout=20)
        assert len(subscriber.on("hang")) == 2  # its cap, and no more
    rows = await delivery_rows(engine)
    assert sum(1 for r in rows.values() if r.status == "succeeded") == 30
    # The graceful stop released the two hanging claims without counting an attempt.
    hanging = [r for r in rows.values() if r.subscription_id == hang]
    assert all(r.claim_token is None and r.attempt_count == 0 for r in hanging)


async def test_in_process_signal_wakes_the_dispatcher(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """A new delivery is sent at once after signal.notify(), long before the poll interval."""
    now = SystemClock().now()
    sub = await add_subscription(engine, name="orders", url=subscriber.url("orders"), now=now)
    signal = OutboxSignal()
    dispatcher = Dispatcher(
        engine=engine, policy=POLICY, poll_interval_s=IDLE_POLL_S, signal=signal, listen=False
    )
    async with running(dispatcher):
        await asyncio.sleep(0.3)  # the dispatcher is idle and waiting
        await seed_events(engine, 1, subscription_ids=[sub], now=SystemClock().now())
        signal.notify()
        # Sent long before the hour-long poll interval: the notify woke the dispatcher.
        await subscriber.wait_for(1, timeout=WAKE_TIMEOUT_S)


@pytest.mark.postgres
async def test_postgres_notify_wakes_the_dispatcher(
    postgres_database_url: str, subscriber: Subscriber
) -> None:
    """On PostgreSQL, pg_notify from another connection wakes an idle dispatcher at once."""
    engine = create_engine(postgres_database_url)
    try:
        now = SystemClock().now()
        sub = await add_subscription(engine, name="orders", url=subscriber.url("orders"), now=now)
        dispatcher = Dispatcher(
            engine=engine, policy=POLICY, poll_interval_s=IDLE_POLL_S, listen=True
        )
        async with running(dispatcher):
            await asyncio.sleep(0.2)
            assert dispatcher.listener is not None
            await asyncio.wait_for(dispatcher.listener.connected.wait(), 30)
            await seed_events(engine, 1, subscription_ids=[sub], now=SystemClock().now())
            async with engine.begin() as conn:
                await conn.execute(text("SELECT pg_notify('payhook_outbox', '')"))
            await subscriber.wait_for(1, timeout=WAKE_TIMEOUT_S)  # woken, not polled
            # Losing the LISTEN connection is survived: it reconnects by itself.
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() "
                        "AND datname = current_database()"
                    )
                )
            async with asyncio.timeout(30):
                while dispatcher.listener.connected.is_set():
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(dispatcher.listener.connected.wait(), 30)
            await seed_events(engine, 1, subscription_ids=[sub], now=SystemClock().now())
            async with engine.begin() as conn:
                await conn.execute(text("SELECT pg_notify('payhook_outbox', '')"))
            await subscriber.wait_for(2, timeout=WAKE_TIMEOUT_S)  # woken, not polled
    finally:
        await engine.dispose()


async def test_in_process_handlers(engine: AsyncEngine) -> None:
    """Handler deliveries call the handler with the Event; a raise is a failed 'handler' attempt."""
    clock = FakeClock()
    good = await add_subscription(engine, name="good", kind="handler", now=clock.now())
    bad = await add_subscription(engine, name="bad", kind="handler", now=clock.now())
    other = await add_subscription(engine, name="elsewhere", kind="handler", now=clock.now())
    seeded = await seed_events(engine, 2, subscription_ids=[good, bad, other], now=clock.now())
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    async def explode(event: Event) -> None:
        raise RuntimeError(f"cannot handle {event.type}")

    dispatcher = Dispatcher(
        engine=engine,
        policy=POLICY,
        clock=clock,
        handlers={"good": record, "bad": explode},
        listen=False,
    )
    assert await dispatcher.run_until_idle() == 4
    assert sorted(e.id for e in seen) == sorted(seeded.event_ids)
    assert all(e.data.amount == 8888 for e in seen)
    rows = await delivery_rows(engine)
    by_sub: dict[str, set[str]] = {}
    for row in rows.values():
        by_sub.setdefault(row.subscription_id, set()).add(row.status)
    # A worker without the "elsewhere" handler leaves those deliveries for another process.
    assert by_sub == {good: {"succeeded"}, bad: {"failed"}, other: {"pending"}}
    failed = next(r for r in rows.values() if r.subscription_id == bad)
    [attempt] = await attempt_rows(engine, failed.id)
    assert attempt.error_class == "handler"
    assert attempt.error == "RuntimeError: cannot handle payment.order.paid"
    assert not any(r.claim_token for r in rows.values())


async def test_burst_mode_delivers_past_the_per_subscription_share(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """run_until_idle() delivers every due row even when one subscription holds far more
    than its share: a claim that skipped the subscription as full, while its deliveries
    finished, does not end the burst."""
    now = SystemClock().now()
    sub = await add_subscription(engine, name="orders", url=subscriber.url("orders"), now=now)
    seeded = await seed_events(engine, 300, subscription_ids=[sub], now=now)
    dispatcher = Dispatcher(
        engine=engine, policy=POLICY, per_subscription_concurrency=2, listen=False
    )
    assert await dispatcher.run_until_idle() == 300
    rows = await delivery_rows(engine)
    assert {rows[d].status for d in seeded.delivery_ids} == {"succeeded"}


async def test_expired_lease_is_claimed_again(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """A claim whose worker vanished falls due at the lease expiry and is delivered then."""
    clock = FakeClock()
    sub = await add_subscription(
        engine, name="orders", url=subscriber.url("orders"), now=clock.now()
    )
    seeded = await seed_events(engine, 3, subscription_ids=[sub], now=clock.now())
    lost = await claim_due(engine, now=clock.now(), limit=10, lease_s=40.0, per_subscription_cap=10)
    assert len(lost) == 3  # a worker took them and died
    dispatcher = Dispatcher(
        engine=engine, policy=POLICY, clock=clock, request_timeout_s=10.0, listen=False
    )
    assert await dispatcher.run_until_idle() == 0
    clock.advance(39.0)
    assert await dispatcher.run_until_idle() == 0
    clock.advance(1.5)
    assert await dispatcher.run_until_idle() == 3
    rows = await delivery_rows(engine)
    assert {rows[d].status for d in seeded.delivery_ids} == {"succeeded"}


async def test_a_live_lease_sets_when_the_row_is_next_due(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """An idle worker waits for a claimed row's lease, not for its (past) due time."""
    clock = FakeClock()
    sub = await add_subscription(
        engine, name="orders", url=subscriber.url("orders"), now=clock.now()
    )
    await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    assert await next_due_at(engine) == clock.now()
    [claimed] = await claim_due(
        engine, now=clock.now(), limit=1, lease_s=40.0, per_subscription_cap=1
    )
    assert await next_due_at(engine) == claimed.lease_until == clock.now() + timedelta(seconds=40)
    assert await release(engine, [(claimed.id, claimed.claim_token)], now=clock.now()) == 1
    assert await next_due_at(engine) == clock.now()


async def test_claim_token_fences_a_worker_that_lost_its_lease(engine: AsyncEngine) -> None:
    """After a re-claim, the first worker's late result cannot overwrite the newer claim."""
    clock = FakeClock()
    sub = await add_subscription(engine, name="orders", url="http://127.0.0.1:9/x", now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    [first] = await claim_due(engine, now=clock.now(), limit=1, lease_s=5, per_subscription_cap=1)
    assert (
        await claim_due(engine, now=clock.now(), limit=1, lease_s=5, per_subscription_cap=1) == []
    )
    clock.advance(6)
    [second] = await claim_due(engine, now=clock.now(), limit=1, lease_s=5, per_subscription_cap=1)
    assert second.id == first.id
    assert second.claim_token != first.claim_token

    def done(claim_token: str, status: str) -> Completion:
        return Completion(
            delivery_id=first.id,
            claim_token=claim_token,
            subscription_id=sub,
            status=status,
            next_attempt_at=clock.now(),
            attempted_at=clock.now(),
            status_code=204 if status == "succeeded" else 500,
            latency_ms=1,
        )

    assert await complete(engine, [done(first.claim_token, "dead")], now=clock.now()) == set()
    row = (await delivery_rows(engine))[seeded.delivery_ids[0]]
    assert row.status == "pending"
    assert row.claim_token == second.claim_token
    assert await complete(engine, [done(second.claim_token, "succeeded")], now=clock.now()) == {
        first.id
    }
    row = (await delivery_rows(engine))[seeded.delivery_ids[0]]
    assert row.status == "succeeded"
    assert row.attempt_count == 1
    # Both attempts happened, so both are on record.
    assert [a.status_code for a in await attempt_rows(engine, first.id)] == [500, 204]


async def test_stop_releases_claims_of_unfinished_deliveries(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """A graceful stop gives back in-flight claims (due now, no attempt counted)."""
    now = SystemClock().now()
    sub = await add_subscription(
        engine, name="hang", url=subscriber.url("hang", Behaviour(hang=True)), now=now
    )
    seeded = await seed_events(engine, 2, subscription_ids=[sub], now=now)
    dispatcher = Dispatcher(engine=engine, policy=POLICY, request_timeout_s=20.0, listen=False)
    task = asyncio.create_task(dispatcher.run())
    await subscriber.wait_for(2, timeout=30)
    started = time.monotonic()
    await dispatcher.stop(grace_s=0.2)
    await asyncio.wait_for(task, 15)
    # Well before the hanging requests' 20 s timeout: the stop did not wait for them.
    assert time.monotonic() - started < 10
    rows = await delivery_rows(engine)
    for delivery_id in seeded.delivery_ids:
        assert rows[delivery_id].claim_token is None
        assert rows[delivery_id].attempt_count == 0
        assert rows[delivery_id].next_attempt_at <= SystemClock().now()
