"""Operator verbs on the outbox: list and inspect deliveries, retry, replay, recover dead ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.errors import ConfigurationError, ConflictError, NotFoundError
from payhook.storage._outbox import claim_due
from payhook.storage._outbox_admin import (
    get_delivery,
    list_deliveries,
    recover_dead,
    replay_event,
    retry_delivery,
)
from payhook.storage._signal import OutboxSignal
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import add_subscription, delivery_rows, seed_events
from tests.integration.dispatch._subscriber import Behaviour, Subscriber

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy(schedule_s=(60.0,))


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


async def test_list_and_get_deliveries(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """Deliveries list newest first with their attempts, filter by status/subscription, page."""
    clock = FakeClock()
    _sub, event_ids, dead_ids = await _dead_deliveries(engine, subscriber, clock)
    ok = await add_subscription(engine, name="ok", url=subscriber.url("ok"), now=clock.now())
    await seed_events(engine, 2, subscription_ids=[ok], now=clock.now())

    page, cursor = await list_deliveries(engine, limit=3, clock=clock)
    assert len(page) == 3
    assert cursor == page[-1].id
    rest, last = await list_deliveries(engine, limit=3, cursor=cursor, clock=clock)
    assert last is None
    ids = [d.id for d in page + rest]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5

    dead, _ = await list_deliveries(engine, status="dead", clock=clock)
    assert sorted(d.id for d in dead) == sorted(dead_ids)
    assert all(len(d.attempts) == 2 for d in dead)
    assert dead[0].attempts[0].status_code == 500
    by_sub, _ = await list_deliveries(engine, subscription="ok", clock=clock)
    assert {d.subscription_name for d in by_sub} == {"ok"}
    by_event, _ = await list_deliveries(engine, event_id=event_ids[0], clock=clock)
    assert [d.event_id for d in by_event] == [event_ids[0]]

    one = await get_delivery(engine, dead_ids[0], clock=clock)
    view = one.public_dict()
    assert view["status"] == "dead"
    assert view["subscription"] == "down"
    assert view["next_attempt_at"] is None
    assert [a["status_code"] for a in view["attempts"]] == [500, 500]
    with pytest.raises(NotFoundError):
        await get_delivery(engine, "dlv_missing")
    with pytest.raises(ConfigurationError):
        await list_deliveries(engine, status="exploded")
    with pytest.raises(ConfigurationError):
        await list_deliveries(engine, limit=0)


async def test_retry_a_dead_delivery(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """Retrying a dead delivery re-queues it now with a fresh schedule and wakes the dispatcher."""
    clock = FakeClock()
    _sub, _events, dead_ids = await _dead_deliveries(engine, subscriber, clock, count=1)
    signal = OutboxSignal()
    retried = await retry_delivery(engine, dead_ids[0], clock=clock, signal=signal)
    assert retried.status == "pending"
    assert retried.attempt_count == 0
    assert await signal.wait(0.01)
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    assert await dispatcher.run_until_idle() == 1
    delivered = await get_delivery(engine, dead_ids[0])
    assert delivered.status == "succeeded"
    assert len(delivered.attempts) == 3  # the two failures stay on record
    with pytest.raises(NotFoundError):
        await retry_delivery(engine, "dlv_missing")


async def test_retry_refuses_a_delivery_in_flight(engine: AsyncEngine) -> None:
    """A delivery a worker holds right now cannot be re-queued under it."""
    clock = FakeClock()
    sub = await add_subscription(engine, name="x", url="http://127.0.0.1:9/x", now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    await claim_due(engine, now=clock.now(), limit=1, lease_s=30, per_subscription_cap=1)
    with pytest.raises(ConflictError):
        await retry_delivery(engine, seeded.delivery_ids[0], clock=clock)
    assert (await get_delivery(engine, seeded.delivery_ids[0], clock=clock)).in_flight
    clock.advance(31)
    retried = await retry_delivery(engine, seeded.delivery_ids[0], clock=clock)
    assert not retried.in_flight


async def test_replay_event(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """Replay creates new deliveries for matching enabled subscriptions, or for one by name."""
    clock = FakeClock()
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
    new_ids = await replay_event(engine, event_id, clock=clock)
    assert len(new_ids) == 1
    assert (await get_delivery(engine, new_ids[0])).subscription_name == "paid"
    forced = await replay_event(engine, event_id, "refunds", clock=clock)
    assert (await get_delivery(engine, forced[0])).subscription_name == "refunds"
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    assert await dispatcher.run_until_idle() == 3
    ids = {r.headers["webhook-id"] for r in subscriber.received}
    assert ids == {event_id}
    with pytest.raises(NotFoundError):
        await replay_event(engine, "evt_missing")
    with pytest.raises(NotFoundError):
        await replay_event(engine, event_id, "nobody")


async def test_recover_dead_since(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """recover_dead re-queues the dead deliveries since a time; dry_run only counts them."""
    clock = FakeClock()
    _sub, _events, dead_ids = await _dead_deliveries(engine, subscriber, clock)
    assert await recover_dead(engine, "down", clock.now() + timedelta(seconds=1), True) == 0
    since = clock.now() - timedelta(hours=1)
    assert await recover_dead(engine, "down", since, True, clock=clock) == 3
    assert {(await get_delivery(engine, d)).status for d in dead_ids} == {"dead"}
    assert await recover_dead(engine, "down", since, clock=clock) == 3
    assert {(await get_delivery(engine, d)).status for d in dead_ids} == {"pending"}
    dispatcher = Dispatcher(engine=engine, policy=NO_RETRY, clock=clock, listen=False)
    assert await dispatcher.run_until_idle() == 3
    assert {(await get_delivery(engine, d)).status for d in dead_ids} == {"succeeded"}
    with pytest.raises(NotFoundError):
        await recover_dead(engine, "nobody", since)
