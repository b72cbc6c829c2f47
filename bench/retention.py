"""Retention's first prune of a large SQLite database, and what it costs the intake meanwhile.

Command (from the repository root)::

    .venv/bin/python bench/retention.py                  # 50k old finished events
    .venv/bin/python bench/retention.py --events 200000

The database holds ``--events`` events older than the ``events`` window, each with one
succeeded delivery and two attempts, plus as many refused-callback audit rows older than
their window (about 5 rows per event in all), and 1 % of the old events keep a pending
delivery (they must stay). Then, twice over the same stream of callbacks (one every 20 ms
through the real SQLite intake writer):

- baseline: callbacks alone;
- pruning: the same callbacks while ``payhook db prune``'s code removes everything due.

Reported: the prune's duration and rows per second, and the intake latency (median, p99,
max) of both phases with their ratio. Goals: no callback fails (the intake waits at most 3 s
for the write lock), the slowest callback during the prune takes under 1 s, and the p99
latency during the prune stays within 10x the baseline of the same run: a callback waits at
most for the one batch (a few tens of ms) that holds the write lock, never for the prune.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from payhook.events import EventDraft, EventType, new_id
from payhook.storage import IntakeRecord, RetentionWindows, Store, prune
from payhook.storage._tables import (
    attempts,
    deliveries,
    events,
    refused_callbacks,
    subscriptions,
)

WINDOWS = RetentionWindows(
    refused_callbacks=timedelta(days=7), attempts=timedelta(days=30), events=timedelta(days=400)
)
CALLBACK_EVERY_S = 0.02
CHUNK = 5000


async def seed(store: Store, count: int, now: datetime) -> None:
    old = now - timedelta(days=500)
    sub_id = new_id("sub")
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(subscriptions).values(
                id=sub_id,
                name="orders",
                kind="http",
                url="http://127.0.0.1:9/hook",
                events='["*"]',
                secrets="[]",
                enabled=True,
                source="api",
                created_at=now,
                updated_at=now,
            )
        )
    for start in range(0, count, CHUNK):
        ev: list[dict[str, Any]] = []
        dl: list[dict[str, Any]] = []
        at: list[dict[str, Any]] = []
        rc: list[dict[str, Any]] = []
        for i in range(start, min(count, start + CHUNK)):
            created = old + timedelta(seconds=i)
            event_id = f"evt_{i:026d}"
            delivery_id = f"dlv_{i:026d}"
            ev.append(
                {
                    "id": event_id,
                    "event_key": f"bench:{i}",
                    "type": "payment.order.paid",
                    "channel": "alipay",
                    "provider": "alipay",
                    "merchant_id": "2021000000000001",
                    "order_id": f"O-{i}",
                    "created_at": created,
                    "body": b"{" + b"x" * 600 + b"}",
                }
            )
            dl.append(
                {
                    "id": delivery_id,
                    "event_id": event_id,
                    "subscription_id": sub_id,
                    "status": "pending" if i % 100 == 0 else "succeeded",
                    "attempt_count": 2,
                    "next_attempt_at": created,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            at += [
                {"delivery_id": delivery_id, "attempted_at": created, "status_code": 500},
                {"delivery_id": delivery_id, "attempted_at": created, "status_code": 204},
            ]
            rc.append(
                {
                    "channel": "alipay",
                    "received_at": created,
                    "reason": "signature",
                    "size": 3,
                    "digest": "0" * 64,
                    "excerpt": "a=1",
                }
            )
        async with store.engine.begin() as conn:
            await conn.execute(insert(events), ev)
            await conn.execute(insert(deliveries), dl)
            await conn.execute(insert(attempts), at)
            await conn.execute(insert(refused_callbacks), rc)


def _record(now: datetime, n: int) -> IntakeRecord:
    txn = f"2026120222001{n:08d}"
    return IntakeRecord(
        channel="alipay",
        received_at=now,
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"a=1",
        notification_id=f"bench-{n}",
        drafts=(
            EventDraft(
                type=EventType.ORDER_PAID,
                key=f"alipay:2021000000000001:{txn}:payment.order.paid",
                provider="alipay",
                merchant_id="2021000000000001",
                order_id=f"B-{n}",
                transaction_id=txn,
                amount=8888,
                raw={"trade_no": txn},
            ),
        ),
    )


async def callbacks(store: Store, first: int, stop: asyncio.Event, limit: int) -> list[float]:
    """Record a callback every CALLBACK_EVERY_S until ``stop`` (or ``limit`` callbacks);
    returns each one's latency in seconds."""
    latencies: list[float] = []
    n = first
    while not stop.is_set() and len(latencies) < limit:
        started = time.perf_counter()
        await store.record(_record(datetime.now(UTC), n))
        latencies.append(time.perf_counter() - started)
        n += 1
        await asyncio.sleep(CALLBACK_EVERY_S)
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def main(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        store = Store(url)
        await store.migrate()
        await store.start()
        now = datetime.now(UTC)
        started = time.perf_counter()
        await seed(store, count, now)
        seeded_s = time.perf_counter() - started
        try:
            never = asyncio.Event()
            limit = 0
            # Baseline: as many callbacks as the prune phase will take (measured after it).
            stop = asyncio.Event()
            pruning = asyncio.create_task(callbacks(store, 1_000_000, stop, 10**9))
            started = time.perf_counter()
            report = await prune(store.engine, WINDOWS, now=datetime.now(UTC))
            prune_s = time.perf_counter() - started
            stop.set()
            during = await pruning
            limit = len(during)
            baseline = await callbacks(store, 2_000_000, never, limit)
        finally:
            await store.close()
    base, under = summary(baseline), summary(during)
    return {
        "events": count,
        "seed_s": round(seeded_s, 1),
        "prune_s": round(prune_s, 2),
        "rows_removed": report.total,
        "rows_per_s": round(report.total / prune_s),
        "counts": report.counts,
        "intake_baseline": base,
        "intake_during_prune": under,
        "p99_ratio": round(under["p99_ms"] / base["p99_ms"], 2),
        "goal_p99_ratio_max": 10.0,
        "goal_max_ms": 1000.0,
        "goals_met": under["p99_ms"] <= 10 * base["p99_ms"] and under["max_ms"] < 1000,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events)), indent=2))
