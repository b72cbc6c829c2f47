"""Dispatcher against a real subscriber: signing, retries, dead letters, 410, Retry-After."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks
import svix.webhooks
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.storage._operator import get_delivery
from payhook.storage._requeue import replay_event
from payhook.storage._subscriptions import get_subscription, update_subscription
from payhook.storage._tables import subscriptions
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import (
    SECRET,
    SECRET_2,
    add_subscription,
    attempt_rows,
    delivery_rows,
    seed_events,
)
from tests.integration.dispatch._subscriber import Behaviour, Subscriber

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(schedule_s=(1.0, 4.0, 16.0), jitter=0.2)


def _dispatcher(engine: AsyncEngine, clock: FakeClock, **kwargs: object) -> Dispatcher:
    options: dict[str, object] = {
        "engine": engine,
        "policy": POLICY,
        "clock": clock,
        "request_timeout_s": 5.0,
        "concurrency": 8,
        "per_subscription_concurrency": 4,
        "listen": False,
    }
    options.update(kwargs)
    return Dispatcher(**options)  # type: ignore[arg-type]


async def test_delivers_a_signed_event(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """One due delivery is POSTed once, verifiable by standardwebhooks and svix, and recorded."""
    clock = FakeClock()
    url = subscriber.url("orders")
    sub = await add_subscription(engine, name="orders", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())

    assert await _dispatcher(engine, clock).run_until_idle() == 1

    [got] = subscriber.on("orders")
    event_id = seeded.event_ids[0]
    assert got.headers["webhook-id"] == event_id
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"].startswith("payhook/")
    assert standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)["id"] == event_id
    svix.webhooks.Webhook(SECRET).verify(got.body, got.headers)
    row = (await delivery_rows(engine))[seeded.delivery_ids[0]]
    assert row.status == "succeeded"
    assert row.attempt_count == 1
    assert row.claim_token is None
    assert row.last_status_code == 204
    [attempt] = await attempt_rows(engine, row.id)
    assert attempt.status_code == 204
    assert attempt.error_class is None
    assert attempt.latency_ms is not None
    assert attempt.latency_ms >= 0


async def test_retry_then_succeed(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """Two failures are retried on the schedule; the third attempt succeeds."""
    clock = FakeClock()
    url = subscriber.url("flaky", Behaviour(fail_first=2, body=b"try later"))
    sub = await add_subscription(engine, name="flaky", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    dispatcher = _dispatcher(engine, clock)
    delivery_id = seeded.delivery_ids[0]

    assert await dispatcher.run_until_idle() == 1
    row = (await delivery_rows(engine))[delivery_id]
    assert row.status == "failed"
    wait = (row.next_attempt_at - clock.now()).total_seconds()
    assert 0.8 - 0.01 <= wait <= 1.2 + 0.01
    assert await dispatcher.run_until_idle() == 0  # not due yet

    clock.advance(1.3)
    assert await dispatcher.run_until_idle() == 1
    row = (await delivery_rows(engine))[delivery_id]
    wait = (row.next_attempt_at - clock.now()).total_seconds()
    assert 3.2 - 0.01 <= wait <= 4.8 + 0.01

    clock.advance(5.0)
    assert await dispatcher.run_until_idle() == 1
    row = (await delivery_rows(engine))[delivery_id]
    assert row.status == "succeeded"
    assert row.attempt_count == 3
    attempts = await attempt_rows(engine, delivery_id)
    assert [a.status_code for a in attempts] == [500, 500, 204]
    assert [a.error_class for a in attempts] == ["http", "http", None]
    assert attempts[0].response_body == "try later"
    received = subscriber.on("flaky")
    assert len({r.headers["webhook-id"] for r in received}) == 1
    assert len({r.headers["webhook-timestamp"] for r in received}) == 3


async def test_dead_after_the_last_attempt(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """A delivery that keeps failing is dead after 1 + len(schedule) attempts, and kept."""
    clock = FakeClock()
    url = subscriber.url("down", Behaviour(status=500))
    sub = await add_subscription(engine, name="down", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    dispatcher = _dispatcher(engine, clock, policy=RetryPolicy(schedule_s=(60.0, 3600.0)))

    for _ in range(3):
        assert await dispatcher.run_until_idle() == 1
        clock.advance(2 * 3600)
    assert await dispatcher.run_until_idle() == 0
    row = (await delivery_rows(engine))[seeded.delivery_ids[0]]
    assert row.status == "dead"
    assert row.attempt_count == 3
    assert len(subscriber.on("down")) == 3
    assert len(await attempt_rows(engine, row.id)) == 3


async def test_zero_delay_retries_run_in_one_burst(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """With a zero schedule, run_until_idle keeps going until the delivery is settled."""
    clock = FakeClock()
    url = subscriber.url("flaky", Behaviour(fail_first=2))
    sub = await add_subscription(engine, name="flaky", url=url, now=clock.now())
    await seed_events(engine, 3, subscription_ids=[sub], now=clock.now())
    dispatcher = _dispatcher(engine, clock, policy=RetryPolicy(schedule_s=(0.0, 0.0, 0.0)))
    assert await dispatcher.run_until_idle() == 5
    assert {r.status for r in (await delivery_rows(engine)).values()} == {"succeeded"}


async def test_gone_disables_the_subscription(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """A 410 disables the subscription (with a visible reason); re-enabling resumes delivery."""
    clock = FakeClock()
    url = subscriber.url("gone", Behaviour(fail_first=1, fail_status=410))
    sub = await add_subscription(engine, name="gone", url=url, now=clock.now())
    seeded = await seed_events(engine, 2, subscription_ids=[sub], now=clock.now())
    dispatcher = _dispatcher(engine, clock, concurrency=1)

    await dispatcher.run_until_idle()
    subscription = await get_subscription(engine, "gone")
    assert subscription.enabled is False
    assert subscription.disabled_reason is not None
    assert "410" in subscription.disabled_reason
    assert len(subscriber.on("gone")) == 1
    clock.advance(3600)
    assert await dispatcher.run_until_idle() == 0  # nothing goes to a disabled subscription

    await update_subscription(engine, "gone", enabled=True, clock=clock)
    assert await dispatcher.run_until_idle() == 2
    rows = await delivery_rows(engine)
    assert {rows[d].status for d in seeded.delivery_ids} == {"succeeded"}
    async with engine.connect() as conn:
        reason = await conn.scalar(select(subscriptions.c.disabled_reason))
    assert reason is None


@pytest.mark.parametrize(
    "retry_after",
    ["120", "date"],
    ids=["seconds", "http-date"],
)
async def test_retry_after_is_honoured(
    engine: AsyncEngine, subscriber: Subscriber, retry_after: str
) -> None:
    """A 429 with Retry-After longer than the schedule moves the next attempt to the hint."""
    clock = FakeClock()
    if retry_after == "date":
        when = clock.now() + timedelta(seconds=121)
        retry_after = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    behaviour = Behaviour(fail_first=1, fail_status=429, headers={"Retry-After": retry_after})
    url = subscriber.url("busy", behaviour)
    sub = await add_subscription(engine, name="busy", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    dispatcher = _dispatcher(engine, clock)

    await dispatcher.run_until_idle()
    row = (await delivery_rows(engine))[seeded.delivery_ids[0]]
    wait = (row.next_attempt_at - clock.now()).total_seconds()
    assert 119 <= wait <= 121.5
    clock.advance(30)
    assert await dispatcher.run_until_idle() == 0
    clock.advance(95)
    assert await dispatcher.run_until_idle() == 1
    assert (await delivery_rows(engine))[row.id].status == "succeeded"


async def test_redirects_are_not_followed(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """A 302 is a failed attempt; the Location is never requested."""
    clock = FakeClock()
    target = subscriber.url("target")
    redirect = Behaviour(status=302, headers={"Location": target}, fail_first=1, fail_status=302)
    url = subscriber.url("moved", redirect)
    sub = await add_subscription(engine, name="moved", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    await _dispatcher(engine, clock).run_until_idle()
    assert subscriber.on("target") == []
    row = (await delivery_rows(engine))[seeded.delivery_ids[0]]
    assert row.status == "failed"
    assert row.last_status_code == 302


async def test_transport_errors_are_classified(engine: AsyncEngine, subscriber: Subscriber) -> None:
    """A refused connection is 'connect' and a subscriber slower than the timeout is 'timeout'."""
    clock = FakeClock()
    refused = await add_subscription(
        engine, name="refused", url="http://127.0.0.1:9/x", now=clock.now()
    )
    slow = await add_subscription(
        engine, name="slow", url=subscriber.url("slow", Behaviour(delay_s=2)), now=clock.now()
    )
    seeded = await seed_events(engine, 1, subscription_ids=[refused, slow], now=clock.now())
    await _dispatcher(engine, clock, request_timeout_s=0.3).run_until_idle()
    rows = await delivery_rows(engine)
    classes = {}
    for delivery_id in seeded.delivery_ids:
        [attempt] = await attempt_rows(engine, delivery_id)
        classes[rows[delivery_id].subscription_id] = attempt.error_class
        assert rows[delivery_id].status == "failed"
        assert attempt.status_code is None
        assert attempt.error
    assert classes == {refused: "connect", slow: "timeout"}


async def test_webhook_id_is_stable_across_replay(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """A replayed event reaches the subscriber with the same webhook-id and a new timestamp."""
    clock = FakeClock()
    sub = await add_subscription(
        engine, name="orders", url=subscriber.url("orders"), now=clock.now()
    )
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    dispatcher = _dispatcher(engine, clock)
    await dispatcher.run_until_idle()
    clock.advance(10)
    [new_delivery] = await replay_event(engine, seeded.event_ids[0], "orders", now=clock.now())
    assert new_delivery != seeded.delivery_ids[0]
    assert await dispatcher.run_until_idle() == 1
    first, second = subscriber.on("orders")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == seeded.event_ids[0]
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"]) + 10
    assert first.body == second.body
    assert (await get_delivery(engine, new_delivery, now=clock.now())).status == "succeeded"


async def test_rotation_sends_one_signature_per_active_secret(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """While an old secret is still active, both it and the new one verify the delivery."""
    clock = FakeClock()
    later = (clock.now() + timedelta(hours=1)).isoformat()
    expired = (clock.now() - timedelta(seconds=1)).isoformat()
    secrets: list[dict[str, Any]] = [
        {"secret": SECRET, "expires_at": None},
        {"secret": SECRET_2, "expires_at": later},
        {"secret": "whsec_" + "A" * 32, "expires_at": expired},
    ]
    sub = await add_subscription(
        engine, name="orders", url=subscriber.url("orders"), now=clock.now(), secrets=secrets
    )
    await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    await _dispatcher(engine, clock).run_until_idle()
    [got] = subscriber.on("orders")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, SECRET_2):
        standardwebhooks.Webhook(secret).verify(got.body, got.headers)
        svix.webhooks.Webhook(secret).verify(got.body, got.headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 32).verify(got.body, got.headers)
