"""Seeding helpers for dispatcher tests: plain SQLAlchemy inserts of events and deliveries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.events import new_id
from payhook.storage._tables import attempts, deliveries, events, subscriptions

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@dataclass(frozen=True, slots=True, kw_only=True)
class Seeded:
    """Ids created by :func:`seed_events`."""

    event_ids: tuple[str, ...]
    delivery_ids: tuple[str, ...]


async def add_subscription(
    engine: AsyncEngine,
    *,
    name: str,
    now: datetime,
    url: str | None = None,
    kind: str = "http",
    events_filter: Sequence[str] = ("*",),
    secrets: Sequence[dict[str, Any]] | None = None,
    enabled: bool = True,
) -> str:
    """Insert a subscription row; returns its id."""
    sub_id = new_id("sub")
    if secrets is None:
        secrets = [{"secret": SECRET, "expires_at": None}] if kind == "http" else []
    async with engine.begin() as conn:
        await conn.execute(
            subscriptions.insert().values(
                id=sub_id,
                name=name,
                kind=kind,
                url=url,
                events=json.dumps(list(events_filter)),
                secrets=json.dumps(list(secrets)),
                enabled=enabled,
                source="api",
                created_at=now,
                updated_at=now,
            )
        )
    return sub_id


def event_body(event_id: str, *, event_type: str = "payment.order.paid", pad: int = 0) -> bytes:
    """A canonical-looking event body (``pad`` adds bytes to ``raw`` for size tests)."""
    body = {
        "id": event_id,
        "type": event_type,
        "created_at": "2026-11-28T01:02:03.456Z",
        "data": {
            "provider": "alipay",
            "channel": "alipay",
            "merchant_id": "2021000000000001",
            "order_id": f"ORDER-{event_id[-8:]}",
            "transaction_id": "2026112822001",
            "amount": 8888,
            "currency": "CNY",
            "paid_at": "2026-11-28T09:00:00+08:00",
            "payer_id": None,
            "refund_id": None,
            "refund_amount": None,
            "refunded_total": None,
            "status": None,
            "raw": {"pad": "x" * pad},
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def seed_events(
    engine: AsyncEngine,
    count: int,
    *,
    subscription_ids: Sequence[str],
    now: datetime,
    due: datetime | None = None,
    pad: int = 0,
    chunk: int = 5000,
) -> Seeded:
    """Insert ``count`` events, each with one pending delivery per subscription."""
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    ms = int(now.timestamp() * 1000)
    for i in range(count):
        event_id = new_id("evt", now_ms=ms)
        event_rows.append(
            {
                "id": event_id,
                "event_key": f"test:{event_id}",
                "type": "payment.order.paid",
                "channel": "alipay",
                "provider": "alipay",
                "merchant_id": "2021000000000001",
                "order_id": f"ORDER-{i}",
                "transaction_id": None,
                "refund_id": None,
                "refunded_total": None,
                "created_at": now,
                "body": event_body(event_id, pad=pad),
            }
        )
        for sub_id in subscription_ids:
            delivery_rows.append(
                {
                    "id": new_id("dlv", now_ms=ms),
                    "event_id": event_id,
                    "subscription_id": sub_id,
                    "status": "pending",
                    "attempt_count": 0,
                    "next_attempt_at": due or now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    for start in range(0, len(event_rows), chunk):
        async with engine.begin() as conn:
            await conn.execute(events.insert(), event_rows[start : start + chunk])
    for start in range(0, len(delivery_rows), chunk):
        async with engine.begin() as conn:
            await conn.execute(deliveries.insert(), delivery_rows[start : start + chunk])
    return Seeded(
        event_ids=tuple(r["id"] for r in event_rows),
        delivery_ids=tuple(r["id"] for r in delivery_rows),
    )


async def delivery_rows(engine: AsyncEngine) -> dict[str, Any]:
    """Every delivery row by id."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(deliveries))).all()
    return {row.id: row for row in rows}


async def attempt_rows(engine: AsyncEngine, delivery_id: str) -> list[Any]:
    """The attempts of one delivery, oldest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(attempts)
                .where(attempts.c.delivery_id == delivery_id)
                .order_by(attempts.c.id)
            )
        ).all()
    return list(rows)
