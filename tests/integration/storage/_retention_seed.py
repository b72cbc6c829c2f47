"""Rows of every age and state for the retention tests, inserted as the code stores them."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.events import new_id
from payhook.storage import RetentionWindows
from payhook.storage._tables import (
    attempts,
    deliveries,
    events,
    notifications,
    refused_callbacks,
    subscriptions,
)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
WINDOWS = RetentionWindows(
    refused_callbacks=timedelta(days=7), attempts=timedelta(days=30), events=timedelta(days=400)
)
TABLES = (
    "payhook_refused_callbacks",
    "payhook_notifications",
    "payhook_delivery_attempts",
    "payhook_deliveries",
    "payhook_events",
)
_SEQ = itertools.count(1)


@dataclass
class Seeder:
    """Inserts rows; remembers the subscription every delivery goes to."""

    engine: AsyncEngine
    now: datetime = NOW
    subscription_id: str = ""

    def days_ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    async def subscription(self) -> str:
        sub_id = new_id("sub")
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(subscriptions).values(
                    id=sub_id,
                    name=f"orders-{sub_id[-6:]}",
                    kind="http",
                    url="http://127.0.0.1:9/hook",
                    events='["*"]',
                    secrets="[]",
                    enabled=True,
                    source="api",
                    created_at=self.now,
                    updated_at=self.now,
                )
            )
        self.subscription_id = sub_id
        return sub_id

    async def event(
        self,
        age_days: float,
        statuses: tuple[str, ...] = (),
        *,
        attempt_ages: tuple[float, ...] = (),
        lease: bool = False,
    ) -> tuple[str, list[str]]:
        """An event ``age_days`` old with one delivery per status (each with an attempt per
        ``attempt_ages``); returns its id and its deliveries' ids."""
        if not self.subscription_id:
            await self.subscription()
        created = self.days_ago(age_days)
        ms = int(created.timestamp() * 1000)
        event_id = new_id("evt", now_ms=ms)
        delivery_ids = [new_id("dlv", now_ms=ms) for _ in statuses]
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(events).values(
                    id=event_id,
                    event_key=f"test:{event_id}:{next(_SEQ)}",
                    type="payment.order.paid",
                    channel="alipay",
                    provider="alipay",
                    merchant_id="2021000000000001",
                    order_id=f"O-{next(_SEQ)}",
                    transaction_id=None,
                    refund_id=None,
                    refunded_total=None,
                    created_at=created,
                    body=b"{}",
                )
            )
            for delivery_id, status in zip(delivery_ids, statuses, strict=True):
                await conn.execute(
                    insert(deliveries).values(
                        id=delivery_id,
                        event_id=event_id,
                        subscription_id=self.subscription_id,
                        status=status,
                        attempt_count=len(attempt_ages),
                        next_attempt_at=created,
                        claim_token="tok" if lease else None,
                        claimed_at=self.now if lease else None,
                        lease_until=self.now + timedelta(minutes=5) if lease else None,
                        created_at=created,
                        updated_at=created,
                    )
                )
                for age in attempt_ages:
                    await conn.execute(
                        insert(attempts).values(
                            delivery_id=delivery_id,
                            attempted_at=self.days_ago(age),
                            status_code=500,
                            latency_ms=3,
                        )
                    )
        return event_id, delivery_ids

    async def refused(self, age_days: float) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(refused_callbacks).values(
                    channel="alipay",
                    received_at=self.days_ago(age_days),
                    reason="signature",
                    remote_addr="127.0.0.1",
                    size=3,
                    digest="0" * 64,
                    excerpt="a=1",
                )
            )
            return int(result.inserted_primary_key[0])

    async def notification(self, age_days: float, verdict: str) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(notifications).values(
                    channel="alipay",
                    received_at=self.days_ago(age_days),
                    headers="{}",
                    body=b"a=1",
                    verdict=verdict,
                    reason="signature" if verdict == "refused" else None,
                    notification_id=None,
                    event_ids=None if verdict == "refused" else json.dumps(["evt_x"]),
                )
            )
            return int(result.inserted_primary_key[0])


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per retention table."""
    found: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in (refused_callbacks, notifications, attempts, deliveries, events):
            found[table.name] = int(await conn.scalar(select(func.count()).select_from(table)))
    return found


async def ids(engine: AsyncEngine, table: Any) -> set[Any]:
    async with engine.connect() as conn:
        return {row[0] for row in await conn.execute(select(table.c.id))}


async def delivery_status(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(deliveries.c.id, deliveries.c.status))
        return {str(r.id): str(r.status) for r in rows}
