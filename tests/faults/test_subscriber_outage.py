"""Subscriber outage, compressed by the dispatcher's injected clock (``payhook.testing.FakeClock``).

Real callbacks go through the real intake path into SQLite or PostgreSQL; a real dispatcher
sends to a real HTTP subscriber; only time is fake, so the default retry schedule (days) runs
in seconds. A subscriber that is down (connection refused) over a long weekend receives every
event once it is back. A subscriber that answers 500 for ever ends with every delivery
``dead``, and the admin API's bulk recovery (``POST /admin/subscriptions/{name}/recover``)
delivers them all once it is fixed.

Run: ``.venv/bin/pytest tests/faults/test_subscriber_outage.py -s``
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from payhook._hook import PayHook
from payhook.config import load_settings
from payhook.dispatch import DEFAULT_RETRY_SCHEDULE_S, Dispatcher, RetryPolicy
from payhook.storage._outbox import next_due_at
from payhook.storage._tables import deliveries, events
from payhook.testing import FakeClock
from tests._subscriber import Subscriber
from tests.faults._callbacks import Callbacks, Fact, is_success
from tests.faults._payhook import ADMIN_TOKEN, CHANNELS, SUBSCRIBER_SECRET, free_port, write_config

pytestmark = pytest.mark.e2e

# Friday 18:00 to Tuesday 09:00 is a long weekend with a Monday holiday (87 h); the house
# style asks the default schedule to outlast "about 3 days" of downtime.
LONG_WEEKEND = timedelta(hours=72)
START = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)  # a Friday
EVENTS = 30


@contextmanager
def serve_on(app: Any, port: int) -> Iterator[None]:
    """Serve ``app`` on 127.0.0.1:``port`` (the port a subscriber was unreachable on)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the subscriber crashed at start"
        assert time.monotonic() < deadline, "the subscriber did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


async def _feed(hook: PayHook, config: Path, count: int) -> None:
    """``count`` distinct paid callbacks through the real intake path (ASGI, in process)."""
    callbacks = Callbacks(config)
    transport = httpx.ASGITransport(app=hook.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payhook") as client:
        for n in range(count):
            channel = CHANNELS[n % len(CHANNELS)]
            fact = Fact(channel=channel, order_id=f"OUT-{n}", event="paid", amount=100 + n,
                        at=hook.clock.now())  # fmt: skip
            callback = callbacks.build(fact)
            reply = await client.post(
                f"/notify/{channel}", content=callback.body, headers=dict(callback.headers)
            )
            assert is_success(channel, reply.status_code, reply.content), reply.text


async def _run_schedule(
    dispatcher: Dispatcher, hook: PayHook, clock: FakeClock, until: datetime
) -> int:
    """Make every attempt due before ``until``, jumping the clock from one due time to the
    next; returns the attempts made."""
    attempts = 0
    while True:
        attempts += await dispatcher.run_until_idle()
        due = await next_due_at(hook.store.engine)
        if due is None or due > until:
            if clock.now() < until:
                clock.advance((until - clock.now()).total_seconds())
            return attempts
        clock.advance(max(0.0, (due - clock.now()).total_seconds()))


async def _statuses(hook: PayHook) -> dict[str, int]:
    async with hook.store.engine.connect() as conn:
        rows = await conn.execute(
            select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        )
        return {status: int(n) for status, n in rows}


async def _event_ids(hook: PayHook) -> set[str]:
    async with hook.store.engine.connect() as conn:
        return {json.loads(b)["id"] for b in (await conn.execute(select(events.c.body))).scalars()}


def _hook(
    tmp_path: Path, database_url: str, sub_url: str, clock: FakeClock
) -> tuple[PayHook, Path]:
    config = write_config(tmp_path, database_url=database_url, subscriber_url=sub_url)
    # The production schedule, not a test one: the point is what the default does.
    text = config.read_text().replace('retry_schedule  = ["1s", "4s", "16s"]\n', "")
    config.write_text(text)
    hook = PayHook(load_settings(config), clock=clock, run_dispatcher=False)
    return hook, config


def _dispatcher(hook: PayHook, clock: FakeClock) -> Dispatcher:
    settings = hook.settings.dispatcher
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE_S
    return Dispatcher(
        engine=hook.store.engine,
        policy=RetryPolicy(schedule_s=tuple(settings.retry_schedule)),
        clock=clock,
        request_timeout_s=2.0,
        poll_interval_s=settings.poll_interval,
        signal=hook.store.signal,
        listen=False,
    )


def test_default_schedule_outlasts_a_long_weekend_even_with_jitter() -> None:
    """The default retry schedule's shortest span (all jitter negative) exceeds LONG_WEEKEND."""
    policy = RetryPolicy(schedule_s=DEFAULT_RETRY_SCHEDULE_S)
    shortest = sum(policy.next_delay_s(n, rand=0.0) or 0.0 for n in range(1, policy.max_attempts))
    mean = sum(DEFAULT_RETRY_SCHEDULE_S)
    assert shortest >= LONG_WEEKEND.total_seconds(), (
        f"the last retry comes {mean / 3600:.1f} h after the first attempt on average and as "
        f"early as {shortest / 3600:.1f} h with jitter: a {LONG_WEEKEND} outage kills deliveries"
    )


@pytest.mark.anyio
async def test_subscriber_down_over_a_long_weekend_receives_everything(
    tmp_path: Path, database_url: str
) -> None:
    """Down (connection refused) for LONG_WEEKEND: every event arrives after it returns."""
    random.seed(7)  # the retry jitter: one fixed draw, so a failure reproduces
    port = free_port()  # nothing listens here until the subscriber "returns"
    sub = Subscriber(secret=SUBSCRIBER_SECRET)
    clock = FakeClock(START)
    hook, config = _hook(tmp_path, database_url, f"http://127.0.0.1:{port}/webhooks/payments",
                         clock)  # fmt: skip
    async with hook.lifespan():
        await _feed(hook, config, EVENTS)
        dispatcher = _dispatcher(hook, clock)
        down_attempts = await _run_schedule(dispatcher, hook, clock, START + LONG_WEEKEND)
        during = await _statuses(hook)
        with serve_on(sub.app(), port):
            up_attempts = await _run_schedule(
                dispatcher, hook, clock, START + LONG_WEEKEND + timedelta(days=7)
            )
            after = await _statuses(hook)
            stored = await _event_ids(hook)
    received = set(sub.event_ids())
    print(
        "FIGURES subscriber_down",
        json.dumps(
            {
                "outage_h": LONG_WEEKEND.total_seconds() / 3600,
                "events": EVENTS,
                "attempts_while_down": down_attempts,
                "attempts_after": up_attempts,
                "statuses_at_return": during,
                "statuses_at_end": after,
                "received": len(received),
            }
        ),
    )
    assert during.get("dead", 0) == 0, f"deliveries died during the outage: {during}"
    assert received == stored
    assert after == {"succeeded": EVENTS}


async def _recover(hook: PayHook, config: Path, via: str) -> int:
    """Bulk replay of the dead deliveries of ``orders``: admin API or ``payhook`` CLI."""
    if via == "admin-api":
        transport = httpx.ASGITransport(app=hook.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://payhook") as client:
            answer = await client.post(
                "/admin/subscriptions/orders/recover",
                headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                json={"since": START.isoformat()},
            )
        assert answer.status_code == 200, answer.text
        return int(answer.json()["count"])
    command = [
        sys.executable, "-m", "payhook", "deliveries", "recover", "--subscription", "orders",
        "--since", START.isoformat(), "--json", "--config", str(config),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["count"])


@pytest.mark.anyio
@pytest.mark.parametrize("via", ["admin-api", "cli"])
async def test_subscriber_failing_for_ever_ends_dead_and_bulk_recovery_delivers(
    tmp_path: Path, database_url: str, via: str
) -> None:
    """500 for ever: all deliveries dead; fixed, then one bulk recovery delivers them all."""
    sub = Subscriber(secret=SUBSCRIBER_SECRET, fail_next=10**9)
    port = free_port()
    clock = FakeClock(START)
    hook, config = _hook(tmp_path, database_url, f"http://127.0.0.1:{port}/webhooks/payments",
                         clock)  # fmt: skip
    with serve_on(sub.app(), port):
        async with hook.lifespan():
            await _feed(hook, config, EVENTS)
            dispatcher = _dispatcher(hook, clock)
            attempts = await _run_schedule(dispatcher, hook, clock, START + timedelta(days=14))
            dead = await _statuses(hook)
            failed_posts = len(sub.received)
            sub.fail_next = 0  # the subscriber is fixed
            recovered = await _recover(hook, config, via)
            await _run_schedule(dispatcher, hook, clock, clock.now() + timedelta(hours=1))
            after = await _statuses(hook)
            stored = await _event_ids(hook)
    delivered = {r.headers["webhook-id"] for r in sub.received[failed_posts:]}
    print(
        "FIGURES subscriber_500",
        json.dumps({"via": via, "events": EVENTS, "attempts_until_dead": attempts,
                    "statuses_dead": dead, "recovered": recovered, "statuses_after": after}),
    )  # fmt: skip
    assert dead == {"dead": EVENTS}
    assert attempts == EVENTS * (len(DEFAULT_RETRY_SCHEDULE_S) + 1)
    assert recovered == EVENTS
    assert delivered == stored
    assert after == {"succeeded": EVENTS}
