"""Operator verbs on the outbox through the operator service: list and inspect deliveries,
retry, replay, recover dead ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.errors import (
    DeliveryInFlightError,
    DeliveryNotFoundError,
    EventNotFoundError,
    InvalidRequestError,
    SubscriptionNotFoundError,
)
from payhook.operations import Operations
from payhook.storage import Store
from payhook.storage._outbox import claim_due
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import add_subscription, delivery_rows, seed_events
from tests.integration.dispatch._subscriber import Behaviour, Subscriber

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy(schedule_s=(60.0,))


@pytest.fixture
def clock() -> FakeClock:
    """The time of the store, the service and the dispatcher."""
    return FakeClock()


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """A Store on the test database, on ``clock``."""
    s = Store(database_url, clock=clock)
    yield s
    await s.close()


@pytest.fixture
def ops(store: Store) -> Operations:
    """The operator service on ``store``."""
    return Operations(store)


async def _dead_deliveries(
    engine: AsyncEngine, subscriber: Subscriber, clock: FakeClock, count: int = 3
) -> tuple[str, list[str], list[str]]:
    """A subscription whose ``count`` deliveries are dead after two failed attempts."""
    url = subscriber.url("down", Behaviour(fail_first=2 * count))
    sub = await add_subscription(engine, name="down", url=url, now=clock.now())
    seeded = await seed_events(engine, count, subscription_ids=[sub], now=clock.now())
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    await dispatcher.run_until_idle()
    clock.advance(100)
    await dispatcher.run_until_idle()
    rows = await delivery_rows(engine)
    assert {rows[d].status for d in seeded.delivery_ids} == {"dead"}
    return sub, list(seeded.event_ids), list(seeded.delivery_ids)


async def test_list_and_get_deliveries(
    engine: AsyncEngine, subscriber: Subscriber, clock: FakeClock, ops: Operations
) -> None:
    """Deliveries list newest first with their attempts, filter by status/subscription, page."""
    _sub, event_ids, dead_ids = await _dead_deliveries(engine, subscriber, clock)
    ok = await add_subscription(engine, name="ok", url=subscriber.url("ok"), now=clock.now())
    await seed_events(engine, 2, subscription_ids=[ok], now=clock.now())

    page = await ops.list_deliveries(limit=3)
    assert len(page.items) == 3
    assert page.next_cursor is not None
    rest = await ops.list_deliveries(limit=3, cursor=page.next_cursor)
    assert rest.next_cursor is None
    ids = [d.id for d in page.items + rest.items]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5

    dead = (await ops.list_deliveries(status="dead")).items
    assert sorted(d.id for d in dead) == sorted(dead_ids)
    assert all(len(d.attempts) == 2 for d in dead)
    assert dead[0].attempts[0].status_code == 500
    by_sub = (await ops.list_deliveries(subscription="ok")).items
    assert {d.subscription for d in by_sub} == {"ok"}
    by_event = (await ops.list_deliveries(event_id=event_ids[0])).items
    assert [d.event_id for d in by_event] == [event_ids[0]]

    view = (await ops.delivery(dead_ids[0])).to_json()
    assert view["status"] == "dead"
    assert view["subscription"] == "down"
    assert view["next_attempt_at"] is None
    assert [a["status_code"] for a in view["attempts"]] == [500, 500]
    with pytest.raises(DeliveryNotFoundError):
        await ops.delivery("dlv_missing")
    with pytest.raises(DeliveryNotFoundError):
        await ops.delivery("dlv_00000000000000000000000000")
    with pytest.raises(InvalidRequestError):
        await ops.list_deliveries(status="exploded")
    with pytest.raises(InvalidRequestError):
        await ops.list_deliveries(limit=0)
    with pytest.raises(InvalidRequestError):
        await ops.list_deliveries(cursor="bogus")


async def test_retry_a_dead_delivery(
    engine: AsyncEngine, subscriber: Subscriber, clock: FakeClock, store: Store, ops: Operations
) -> None:
    """Retrying a dead delivery re-queues it now with a fresh schedule and wakes the dispatcher."""
    _sub, _events, dead_ids = await _dead_deliveries(engine, subscriber, clock, count=1)
    retried = await ops.retry(dead_ids[0])
    assert retried.status == "pending"
    assert retried.attempt_count == 0
    assert await store.signal.wait(0.01)
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    assert await dispatcher.run_until_idle() == 1
    delivered = await ops.delivery(dead_ids[0])
    assert delivered.status == "succeeded"
    assert len(delivered.attempts) == 3  # the two failures stay on record
    with pytest.raises(DeliveryNotFoundError):
        await ops.retry("dlv_00000000000000000000000000")


async def test_retry_refuses_a_delivery_in_flight(
    engine: AsyncEngine, clock: FakeClock, ops: Operations
) -> None:
    """A delivery a worker holds right now cannot be re-queued under it."""
    sub = await add_subscription(engine, name="x", url="http://127.0.0.1:9/x", now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    await claim_due(engine, now=clock.now(), limit=1, lease_s=30, per_subscription_cap=1)
    with pytest.raises(DeliveryInFlightError):
        await ops.retry(seeded.delivery_ids[0])
    assert (await ops.delivery(seeded.delivery_ids[0])).in_flight
    clock.advance(31)
    retried = await ops.retry(seeded.delivery_ids[0])
    assert not retried.in_flight


async def test_replay_event(
    engine: AsyncEngine, subscriber: Subscriber, clock: FakeClock, ops: Operations
) -> None:
    """Replay creates new deliveries for matching enabled subscriptions, or for one by name."""
    paid = await add_subscription(
        engine, name="paid", url=subscriber.url("paid"), now=clock.now(),
        events_filter=("payment.order.*",),
    )  # fmt: skip
    await add_subscription(
        engine, name="refunds", url=subscriber.url("refunds"), now=clock.now(),
        events_filter=("payment.refund.*",),
    )  # fmt: skip
    await add_subscription(
        engine, name="off", url=subscriber.url("off"), now=clock.now(), enabled=False
    )
    seeded = await seed_events(engine, 1, subscription_ids=[paid], now=clock.now())
    event_id = seeded.event_ids[0]
    [new] = await ops.replay(event_id)
    assert new.subscription == "paid"
    assert new.status == "pending"
    [forced] = await ops.replay(event_id, "refunds")
    assert forced.subscription == "refunds"
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    assert await dispatcher.run_until_idle() == 3
    ids = {r.headers["webhook-id"] for r in subscriber.received}
    assert ids == {event_id}
    with pytest.raises(EventNotFoundError):
        await ops.replay("evt_missing")
    with pytest.raises(EventNotFoundError):
        await ops.replay("evt_00000000000000000000000000")
    with pytest.raises(SubscriptionNotFoundError):
        await ops.replay(event_id, "nobody")


async def test_recover_dead_since(
    engine: AsyncEngine, subscriber: Subscriber, clock: FakeClock, ops: Operations
) -> None:
    """recover re-queues the dead deliveries since a time, reporting progress; a dry run only
    counts them."""
    _sub, _events, dead_ids = await _dead_deliveries(engine, subscriber, clock)
    later = clock.now() + timedelta(seconds=1)
    assert (await ops.recover("down", later, dry_run=True)).found == 0
    since = clock.now() - timedelta(hours=1)
    dry = await ops.recover("down", since, dry_run=True)
    assert (dry.found, dry.requeued, dry.skipped) == (3, 0, 0)
    assert {(await ops.delivery(d)).status for d in dead_ids} == {"dead"}
    seen: list[tuple[int, int]] = []
    done = await ops.recover("down", since, progress=lambda n, total: seen.append((n, total)))
    assert (done.found, done.requeued, done.skipped) == (3, 3, 0)
    assert seen == [(0, 3), (3, 3)]
    assert {(await ops.delivery(d)).status for d in dead_ids} == {"pending"}
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    assert await dispatcher.run_until_idle() == 3
    assert {(await ops.delivery(d)).status for d in dead_ids} == {"succeeded"}
    with pytest.raises(SubscriptionNotFoundError):
        await ops.recover("nobody", since)


async def test_recover_in_batches_skips_what_changed(
    engine: AsyncEngine,
    subscriber: Subscriber,
    clock: FakeClock,
    ops: Operations,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recovery re-queues batch by batch; a delivery retried meanwhile is counted as skipped."""
    import payhook.operations

    _sub, _events, dead_ids = await _dead_deliveries(engine, subscriber, clock)
    monkeypatch.setattr(payhook.operations, "RECOVERY_BATCH", 2)
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))

    # The first delivery is retried by someone else once the recovery has listed it.
    original = payhook.operations.writes.requeue_dead

    async def racing(*args: object, **kwargs: object) -> int:
        if not seen[1:]:
            await ops.retry(dead_ids[0])
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(payhook.operations.writes, "requeue_dead", racing)
    result = await ops.recover("down", clock.now() - timedelta(hours=1), progress=progress)
    assert (result.found, result.requeued, result.skipped) == (3, 2, 1)
    assert seen == [(0, 3), (2, 3), (3, 3)]
