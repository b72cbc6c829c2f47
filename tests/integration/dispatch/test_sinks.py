"""Pluggable sinks: a new kind needs only its sink module and a line in the mapping.

The toy sinks below stand for a next sink (AMQP, NATS, Redis): the dispatcher is built with
``SINKS`` plus one entry for the test-only kind ``"toy"``, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.dispatch import (
    SINKS,
    Dispatcher,
    ErrorClass,
    Outcome,
    RetryPolicy,
    SinkContext,
    SinkFactory,
)
from payhook.dispatch.sinks._signing import SecretKeys, webhook_headers
from payhook.storage._outbox import ClaimedDelivery, claim_due
from payhook.storage._tables import subscriptions
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import (
    SECRET,
    add_subscription,
    attempt_rows,
    delivery_rows,
    seed_events,
)
from tests.integration.dispatch._subscriber import Subscriber

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(schedule_s=(1.0, 4.0))
SECRETS = [{"secret": SECRET, "expires_at": None}]


class ToySink:
    """A signed sink that "publishes" to a list, the way an AMQP or Redis sink would."""

    names: Collection[str] | None = None
    built: list[ToySink] = []  # noqa: RUF012 - the test reads the instances the dispatcher built

    def __init__(self, context: SinkContext) -> None:
        self._clock = context.clock
        self._keys = SecretKeys()
        self.published: list[tuple[str, dict[str, str], bytes]] = []
        self.opened = self.closed = 0
        ToySink.built.append(self)

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1

    async def send(self, delivery: ClaimedDelivery) -> Outcome:
        if delivery.url == "toy://gone":
            return Outcome(
                ok=False,
                latency_ms=1,
                error_class=ErrorClass.CONNECT,
                error="the queue was deleted",
                disable_reason="toy queue deleted",
            )
        now = self._clock.now()
        keys = self._keys.active(delivery.secrets_json, now)
        if not keys:
            return Outcome(ok=False, latency_ms=0, error="no active signing secret")
        headers = webhook_headers(
            event_id=delivery.event_id,
            body=delivery.body,
            timestamp=int(now.timestamp()),
            secret_keys=keys,
        )
        self.published.append((delivery.subscription_name, headers, delivery.body))
        return Outcome(ok=True, latency_ms=1)


class LocalToySink(ToySink):
    """A process-local variant: serves only the subscription names it lists."""

    names = frozenset({"mine"})


@pytest.fixture(autouse=True)
def _forget_built() -> None:
    ToySink.built.clear()


def _dispatcher(
    engine: AsyncEngine, clock: FakeClock, sinks: Mapping[str, SinkFactory] | None = None
) -> Dispatcher:
    return Dispatcher(
        engine=engine,
        policy=POLICY,
        clock=clock,
        request_timeout_s=5.0,
        listen=False,
        sinks=sinks,
    )


async def test_a_new_kind_is_one_sink_and_one_mapping_line(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """Deliveries of a new kind go through its sink (signed, recorded like any attempt),
    next to HTTP ones; the sink is opened and closed with the dispatcher."""
    clock = FakeClock()
    toy = await add_subscription(
        engine, name="queue", kind="toy", url="toy://q", secrets=SECRETS, now=clock.now()
    )
    web = await add_subscription(engine, name="web", url=subscriber.url("web"), now=clock.now())
    seeded = await seed_events(engine, 3, subscription_ids=[toy, web], now=clock.now())

    dispatcher = _dispatcher(engine, clock, sinks={**SINKS, "toy": ToySink})
    assert await dispatcher.run_until_idle() == 6

    [sink] = ToySink.built
    assert (sink.opened, sink.closed) == (1, 1)
    assert sorted(h["webhook-id"] for _n, h, _b in sink.published) == sorted(seeded.event_ids)
    assert all(h["webhook-signature"].startswith("v1,") for _n, h, _b in sink.published)
    assert len(subscriber.on("web")) == 3
    rows = await delivery_rows(engine)
    assert {r.status for r in rows.values()} == {"succeeded"}
    toy_row = next(r for r in rows.values() if r.subscription_id == toy)
    [attempt] = await attempt_rows(engine, toy_row.id)
    assert (attempt.status_code, attempt.latency_ms, attempt.error) == (None, 1, None)


async def test_a_sink_can_ask_to_disable_its_subscription(engine: AsyncEngine) -> None:
    """An outcome with a disable reason disables the subscription, whatever the sink."""
    clock = FakeClock()
    gone = await add_subscription(
        engine, name="gone", kind="toy", url="toy://gone", now=clock.now()
    )
    await seed_events(engine, 1, subscription_ids=[gone], now=clock.now())

    assert await _dispatcher(engine, clock, sinks={"toy": ToySink}).run_until_idle() == 1

    async with engine.connect() as conn:
        enabled, reason = (
            await conn.execute(select(subscriptions.c.enabled, subscriptions.c.disabled_reason))
        ).one()
    assert not enabled
    assert reason.startswith("toy queue deleted at ")
    [row] = (await delivery_rows(engine)).values()
    assert row.status == "failed"
    [attempt] = await attempt_rows(engine, row.id)
    assert (attempt.error_class, attempt.error) == ("connect", "the queue was deleted")


async def test_kinds_without_a_sink_are_left_alone(engine: AsyncEngine) -> None:
    """A worker with no sink for a kind (an older version, a missing extra) never claims it."""
    clock = FakeClock()
    toy = await add_subscription(engine, name="queue", kind="toy", url="toy://q", now=clock.now())
    seeded = await seed_events(engine, 2, subscription_ids=[toy], now=clock.now())

    assert await _dispatcher(engine, clock).run_until_idle() == 0

    rows = await delivery_rows(engine)
    assert {rows[d].status for d in seeded.delivery_ids} == {"pending"}
    assert not any(r.claim_token for r in rows.values())


async def test_a_process_local_sink_claims_only_its_names(engine: AsyncEngine) -> None:
    """A sink listing names (like in-process handlers) leaves other subscriptions of its kind
    to the process that serves them."""
    clock = FakeClock()
    mine = await add_subscription(
        engine, name="mine", kind="toy", url="toy://a", secrets=SECRETS, now=clock.now()
    )
    other = await add_subscription(
        engine, name="other", kind="toy", url="toy://b", secrets=SECRETS, now=clock.now()
    )
    await seed_events(engine, 2, subscription_ids=[mine, other], now=clock.now())

    assert await _dispatcher(engine, clock, sinks={"toy": LocalToySink}).run_until_idle() == 2

    rows = await delivery_rows(engine)
    by_sub = {
        sid: {r.status for r in rows.values() if r.subscription_id == sid} for sid in (mine, other)
    }
    assert by_sub == {mine: {"succeeded"}, other: {"pending"}}


async def test_claim_serves_by_kind_and_name(engine: AsyncEngine) -> None:
    """claim_due takes only what ``serves`` covers: whole kinds, or named subscriptions."""
    clock = FakeClock()
    web = await add_subscription(engine, name="web", url="http://127.0.0.1:9/x", now=clock.now())
    a = await add_subscription(engine, name="a", kind="handler", now=clock.now())
    b = await add_subscription(engine, name="b", kind="handler", now=clock.now())
    await seed_events(engine, 1, subscription_ids=[web, a, b], now=clock.now())

    async def claim(serves: dict[str, Collection[str] | None] | None) -> set[str]:
        rows = await claim_due(
            engine,
            now=clock.now(),
            limit=10,
            lease_s=1.0,
            per_subscription_cap=10,
            serves=serves,
        )
        clock.advance(2.0)  # let the leases run out for the next claim
        return {r.subscription_name for r in rows}

    assert await claim({"handler": ["b"]}) == {"b"}
    assert await claim({"http": None, "handler": []}) == {"web"}
    assert await claim({"http": None, "handler": ["a", "zzz"]}) == {"web", "a"}
    assert await claim({"toy": None}) == set()
    assert await claim(None) == {"web", "a", "b"}  # the default: every kind, every name
