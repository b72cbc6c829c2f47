"""Worker processes: a SIGKILL loses nothing, and two workers on PostgreSQL never double-send."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import SystemClock
from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.storage._engine import create_engine
from tests.integration.dispatch._seed import add_subscription, delivery_rows, seed_events
from tests.integration.dispatch._subscriber import Behaviour, Subscriber

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


def _spawn(database_url: str, *options: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.dispatch._worker_main", database_url, *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _all_succeeded(engine: AsyncEngine, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            rows = await delivery_rows(engine)
            if sum(1 for r in rows.values() if r.status == "succeeded") == count:
                return
            await asyncio.sleep(0.1)


async def test_sigkill_mid_delivery_loses_nothing(
    database_url: str, subscriber: Subscriber
) -> None:
    """Deliveries held by a worker killed with SIGKILL are sent by another after the lease."""
    engine = create_engine(database_url)
    worker = None
    try:
        now = SystemClock().now()
        url = subscriber.url("orders", Behaviour(hang=True, hang_first=5))
        sub = await add_subscription(engine, name="orders", url=url, now=now)
        seeded = await seed_events(engine, 5, subscription_ids=[sub], now=now)
        worker = _spawn(
            database_url, "--request-timeout", "2", "--lease-margin", "1", "--poll-interval", "0.2"
        )
        await subscriber.wait_for(5, timeout=20)  # all five are in flight in the worker
        claimed_at = time.monotonic()
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL

        survivor = Dispatcher(
            engine=engine,
            policy=RetryPolicy(schedule_s=(1.0,)),
            request_timeout_s=2.0,
            lease_margin_s=1.0,
            poll_interval_s=0.2,
            listen=False,
        )
        task = asyncio.create_task(survivor.run())
        try:
            await _all_succeeded(engine, 5, timeout=15)
        finally:
            await survivor.stop(grace_s=1)
            await task
        by_event = Counter(r.headers["webhook-id"] for r in subscriber.on("orders"))
        assert set(by_event) == set(seeded.event_ids)
        assert all(n == 2 for n in by_event.values())  # the lost attempt, then the real one
        resent = [r.at for r in subscriber.on("orders")[5:]]
        # The lease (timeout 2 s + margin 1 s) had to run out before anyone sent them again.
        assert min(resent) - claimed_at >= 2.0
        rows = await delivery_rows(engine)
        assert {rows[d].attempt_count for d in seeded.delivery_ids} == {1}
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(5)
        await engine.dispose()


@pytest.mark.postgres
async def test_two_workers_share_deliveries_exactly_once(
    postgres_database_url: str, subscriber: Subscriber
) -> None:
    """Two worker processes on one PostgreSQL send each of 2,000 deliveries exactly once."""
    engine = create_engine(postgres_database_url)
    workers: list[subprocess.Popen[str]] = []
    try:
        now = SystemClock().now()
        slow = Behaviour(delay_s=0.002)
        subs = [
            await add_subscription(engine, name=name, url=subscriber.url(name, slow), now=now)
            for name in ("orders", "ledger")
        ]
        workers = [
            _spawn(postgres_database_url, "--poll-interval", "0.1", "--concurrency", "32")
            for _ in range(2)
        ]
        for worker in workers:  # both are up before the work arrives
            assert worker.stdout is not None
            line = await asyncio.to_thread(worker.stdout.readline)
            assert line.strip() == "ready"
        seeded = await seed_events(engine, 1000, subscription_ids=subs, now=now)
        await _all_succeeded(engine, 2000, timeout=40)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=20)[0] for worker in workers]
        sent = Counter((r.path, r.headers["webhook-id"]) for r in subscriber.received)
        assert len(sent) == 2000
        assert set(sent.values()) == {1}
        assert {event_id for _, event_id in sent} == set(seeded.event_ids)
        counts = [int(out.strip().splitlines()[-1].removeprefix("attempts=")) for out in outputs]
        assert sum(counts) == 2000
        assert all(n > 0 for n in counts), counts  # both workers took part
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(5)
        await engine.dispose()
