"""Crash test: SIGKILL a real ``payhook serve`` at random moments under a steady callback stream.

A driver plays the three providers (Alipay, WeChat Pay v3 and v2, through payhook's own
simulators): distinct signed callbacks, duplicates mixed in, and every callback not answered
with success is sent again, as a provider would. The server is killed with SIGKILL at least
``KILLS`` times (at random moments, while callbacks are being committed, and while deliveries
are at the subscriber) and restarted each time. At the end:

- every callback ever acknowledged has exactly one event, and no event exists that was never sent;
- every event reached the subscriber (a real HTTP server) at least once, signed;
- duplicate deliveries are counted and each one is explained by a kill: the delivery was
  claimed (in flight) by the process that was killed.

Run: ``.venv/bin/pytest tests/faults/test_crash.py -m slow -s``
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.storage._engine import create_engine
from payhook.storage._tables import deliveries, events
from tests._server import ServerThread
from tests._subscriber import Subscriber
from tests.faults._callbacks import Callbacks
from tests.faults._driver import Driver, InFlight, summary
from tests.faults._payhook import SUBSCRIBER_SECRET, PayhookServe, write_config

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

KILLS = 24
REQUEST_TIMEOUT = "2s"
# The dispatcher's lease is request_timeout + 30 s (contract §6): a delivery claimed by a
# killed process is sent again at most that long after its claim.
LEASE_S = 2 + 30
DRAIN_EXTRA_S = 60
SCHEDULE = ("100ms", "200ms", "500ms", "1s", "1s", "2s", "2s", "2s", "2s", "2s", "5s", "5s")


@dataclass
class Kill:
    """One SIGKILL and what was in flight at that moment."""

    mode: str
    at: float
    callbacks_in_flight: int
    deliveries_at_subscriber: int
    claimed: set[str] = field(default_factory=set)  # delivery ids leased by the dead process
    restart_s: float = 0.0


async def _claimed(engine: AsyncEngine) -> set[str]:
    """Deliveries leased to a worker and not finished: in flight when the process died."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(deliveries.c.id).where(
                deliveries.c.claim_token.is_not(None),
                deliveries.c.status.in_(("pending", "failed")),
            )
        )
        return {r.id for r in rows}


async def _unfinished(engine: AsyncEngine) -> int:
    """Deliveries not yet succeeded."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(deliveries.c.id).where(deliveries.c.status != "succeeded"))
        return len(rows.all())


async def _stored(engine: AsyncEngine) -> tuple[list[dict[str, Any]], dict[str, str]]:
    async with engine.connect() as conn:
        bodies = [json.loads(b) for b in (await conn.execute(select(events.c.body))).scalars()]
        rows = (await conn.execute(select(deliveries.c.id, deliveries.c.event_id))).all()
    return bodies, {r.event_id: r.id for r in rows}


async def _wait_for(mode: str, driver: Driver, at_subscriber: InFlight, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if mode == "delivery" and at_subscriber.count > 0:
            return
        if mode == "intake" and driver.in_flight() > 0:
            return
        await asyncio.sleep(0.002)


async def _crash_run(
    serve: PayhookServe, engine: AsyncEngine, sub: Subscriber, at_subscriber: InFlight
) -> dict[str, Any]:
    rng = random.Random(5)
    driver = Driver(Callbacks(serve.config), serve.url, concurrency=8, rate_per_s=60)
    runner = asyncio.create_task(driver.run())
    kills: list[Kill] = []
    started = time.monotonic()
    modes = ["random", "intake", "delivery"]
    for n in range(KILLS):
        mode = modes[n % len(modes)]
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        if mode != "random":
            await _wait_for(mode, driver, at_subscriber, 3.0)
        kill = Kill(
            mode=mode,
            at=time.monotonic(),
            callbacks_in_flight=driver.in_flight(),
            deliveries_at_subscriber=at_subscriber.count,
        )
        serve.kill(wait=False)
        await asyncio.to_thread(serve.wait_dead)
        kill.claimed = await _claimed(engine)
        restart = time.monotonic()
        await asyncio.to_thread(serve.start)
        kill.restart_s = time.monotonic() - restart
        kills.append(kill)
    driver.producing = False  # providers keep retrying what was not acknowledged
    await asyncio.wait_for(runner, timeout=120)
    stream_s = time.monotonic() - started

    # Wait until every delivery is finished (the leases of the last kill expire first, and
    # what they held is sent again), so that every duplicate has arrived when they are counted.
    bodies, delivery_of = await _stored(engine)
    deadline = time.monotonic() + LEASE_S + DRAIN_EXTRA_S
    while time.monotonic() < deadline:
        if await _unfinished(engine) == 0:
            break
        await asyncio.sleep(0.5)
    drain_s = time.monotonic() - started - stream_s
    await asyncio.sleep(1.0)  # late duplicates, if any, arrive now
    return {
        "driver": driver,
        "kills": kills,
        "bodies": bodies,
        "delivery_of": delivery_of,
        "stream_s": stream_s,
        "drain_s": drain_s,
    }


def _check_and_report(database: str, run: dict[str, Any], sub: Subscriber) -> None:
    driver: Driver = run["driver"]
    kills: list[Kill] = run["kills"]
    bodies: list[dict[str, Any]] = run["bodies"]
    delivery_of: dict[str, str] = run["delivery_of"]

    # 1. Every acknowledged callback has exactly one event; no event was never sent.
    per_fact = collections.Counter(
        (b["data"]["channel"], b["data"]["order_id"], b["type"]) for b in bodies
    )
    acked = {key for key, s in driver.states.items() if s.acked}
    sent = set(driver.states)
    assert acked == sent, f"{len(sent - acked)} facts were never acknowledged"
    missing = [k for k in acked if per_fact[k] == 0]
    doubled = {k: n for k, n in per_fact.items() if n > 1}
    unsent = [k for k in per_fact if k not in sent]
    assert missing == [], f"acknowledged but no event: {missing[:10]}"
    assert doubled == {}, f"more than one event for one fact: {list(doubled.items())[:10]}"
    assert unsent == [], f"events nobody sent: {unsent[:10]}"
    assert len(delivery_of) == len(bodies), "one delivery per event and subscription"

    # 2. Every event reached the subscriber, with a valid signature.
    received = collections.Counter(sub.event_ids())
    never = [b["id"] for b in bodies if received[b["id"]] == 0]
    assert never == [], f"{len(never)} events never reached the subscriber"
    assert all(r.verified for r in sub.received)

    # 3. Duplicate deliveries happen only to deliveries in flight in a killed process.
    duplicates = {eid: n - 1 for eid, n in received.items() if n > 1}
    claims = collections.Counter(d for k in kills for d in k.claimed)
    unexplained = {
        eid: extra for eid, extra in duplicates.items() if extra > claims[delivery_of.get(eid, "")]
    }
    figures = {
        "database": database,
        "kills": len(kills),
        "kill_modes": dict(collections.Counter(k.mode for k in kills)),
        "kills_with_callbacks_in_flight": sum(k.callbacks_in_flight > 0 for k in kills),
        "kills_with_deliveries_at_subscriber": sum(k.deliveries_at_subscriber > 0 for k in kills),
        "deliveries_in_flight_at_kills": sum(len(k.claimed) for k in kills),
        **summary(driver),
        "events": len(bodies),
        "deliveries_received": sum(received.values()),
        "duplicate_deliveries": sum(duplicates.values()),
        "stream_s": round(run["stream_s"], 1),
        "drain_s": round(run["drain_s"], 1),
        "mean_restart_s": round(sum(k.restart_s for k in kills) / len(kills), 2),
    }
    print("FIGURES crash", json.dumps(figures))
    assert len(kills) >= 20
    assert figures["kills_with_deliveries_at_subscriber"] > 0
    assert figures["kills_with_callbacks_in_flight"] > 0
    assert unexplained == {}, f"duplicates not explained by a kill: {unexplained}"
    assert figures["duplicate_deliveries"] <= figures["deliveries_in_flight_at_kills"]


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, InFlight, str]]:
    """A real subscriber that takes 20 ms per delivery, so kills catch deliveries in flight."""
    sub = Subscriber(secret=SUBSCRIBER_SECRET, hang_s=0.02)
    app = InFlight(sub.app())
    with ServerThread(app) as server:
        yield sub, app, f"{server.url}/webhooks/payments"


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_sigkill_loses_nothing_and_duplicates_only_what_was_in_flight(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    subscriber: tuple[Subscriber, InFlight, str],
    database: str,
) -> None:
    """>= 20 SIGKILLs under load: one event per ack, all delivered, duplicates bounded."""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}"
    else:
        url = str(request.getfixturevalue("postgres_database_url"))
    sub, at_subscriber, sub_url = subscriber
    config = write_config(
        tmp_path,
        database_url=url,
        subscriber_url=sub_url,
        retry_schedule=SCHEDULE,
        request_timeout=REQUEST_TIMEOUT,
        poll_interval="200ms",
        concurrency=32,
    )
    serve = PayhookServe(config, log=tmp_path / "serve.log")

    async def run() -> dict[str, Any]:
        engine = create_engine(url)
        try:
            await asyncio.to_thread(serve.start)
            return await _crash_run(serve, engine, sub, at_subscriber)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    finally:
        serve.stop()
    _check_and_report(database, result, sub)
