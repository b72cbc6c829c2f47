"""Operator writes on the outbox (through :mod:`payhook.operations`): re-queue one delivery,
re-queue dead ones, replay an event as new deliveries.

A re-queued delivery keeps its id and its recorded attempts; the subscriber sees the same
``webhook-id`` (the event id) again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook._types import DeliveryStatus
from payhook.errors import (
    DeliveryInFlightError,
    DeliveryNotFoundError,
    EventNotFoundError,
    SubscriptionNotFoundError,
)
from payhook.events import filter_matches, new_id
from payhook.storage._operator import is_leased
from payhook.storage._subscription_model import from_row
from payhook.storage._tables import deliveries, events, subscriptions
from payhook.storage._txn import read_tx, write_tx

__all__ = [
    "dead_delivery_ids",
    "dead_since",
    "replay_event",
    "requeue_dead",
    "retry_delivery",
]


def _fresh(now: datetime) -> dict[str, Any]:
    """The columns of a delivery due now with a fresh retry schedule and no claim."""
    return {
        "status": DeliveryStatus.PENDING,
        "attempt_count": 0,
        "next_attempt_at": now,
        "claim_token": None,
        "claimed_at": None,
        "lease_until": None,
        "updated_at": now,
    }


async def _notify(conn: AsyncConnection) -> None:
    # Wakes dispatchers in other processes (they LISTEN on PostgreSQL).
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify('payhook_outbox', '')"))


async def retry_delivery(engine: AsyncEngine, delivery_id: str, *, now: datetime) -> None:
    """Re-queue one delivery now, whatever its state (also ``dead`` or ``succeeded``).

    A dead or succeeded delivery starts a fresh retry schedule; a pending or failed one only
    becomes due now.

    Raises:
        DeliveryNotFoundError: no such delivery.
        DeliveryInFlightError: a worker is sending it right now.
    """
    async with write_tx(engine) as conn:
        row = (
            await conn.execute(
                select(
                    deliveries.c.status, deliveries.c.claim_token, deliveries.c.lease_until
                ).where(deliveries.c.id == delivery_id)
            )
        ).first()
        if row is None:
            raise DeliveryNotFoundError(f"no delivery with id {delivery_id!r}")
        if is_leased(row, now):
            raise DeliveryInFlightError("the delivery is being sent right now")
        values = _fresh(now)
        if not DeliveryStatus(row.status).finished:
            del values["status"], values["attempt_count"]
        await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(values))
        await _notify(conn)


async def replay_event(
    engine: AsyncEngine, event_id: str, subscription: str | None, *, now: datetime
) -> list[str]:
    """Send an event again as new deliveries, with the same event id (``webhook-id``).

    Args:
        subscription: only to this subscription (even if its filters no longer match the
            event); by default to every enabled subscription whose filters match.

    Returns:
        The ids of the new deliveries.

    Raises:
        EventNotFoundError: no such event.
        SubscriptionNotFoundError: no such subscription.
    """
    async with write_tx(engine) as conn:
        # FOR KEY SHARE (PostgreSQL): retention, which locks an event FOR UPDATE before it
        # removes it, skips this event; one being removed right now is waited for and then
        # not found, rather than failing the new deliveries' foreign key.
        event_type = await conn.scalar(
            select(events.c.type)
            .where(events.c.id == event_id)
            .with_for_update(read=True, key_share=True)
        )
        if event_type is None:
            raise EventNotFoundError(f"no event with id {event_id!r}")
        if subscription is not None:
            query = select(subscriptions).where(subscriptions.c.name == subscription)
            row = (await conn.execute(query)).first()
            if row is None:
                raise SubscriptionNotFoundError(f"no subscription named {subscription!r}")
            targets = [from_row(row)]
        else:
            rows = await conn.execute(select(subscriptions).where(subscriptions.c.enabled))
            targets = [s for s in map(from_row, rows) if filter_matches(s.events, event_type)]
        now_ms = int(now.timestamp() * 1000)
        new_rows = [
            {
                "id": new_id("dlv", now_ms=now_ms),
                "event_id": event_id,
                "subscription_id": sub.id,
                "created_at": now,
                **_fresh(now),
            }
            for sub in targets
        ]
        if new_rows:
            await conn.execute(insert(deliveries), new_rows)
            await _notify(conn)
    return [str(r["id"]) for r in new_rows]


def dead_since(subscription_id: str, since: datetime) -> ColumnElement[bool]:
    """The dead deliveries of a subscription whose last attempt was at or after ``since``."""
    return and_(
        deliveries.c.subscription_id == subscription_id,
        deliveries.c.status == DeliveryStatus.DEAD,
        or_(
            deliveries.c.last_attempt_at >= since,
            and_(deliveries.c.last_attempt_at.is_(None), deliveries.c.updated_at >= since),
        ),
    )


async def dead_delivery_ids(
    engine: AsyncEngine, subscription: str, since: datetime
) -> tuple[str, list[str]]:
    """The subscription's id and the ids of its dead deliveries since ``since``, oldest first.

    Raises:
        SubscriptionNotFoundError: no subscription has this name.
    """
    async with read_tx(engine) as conn:
        sub_id = await conn.scalar(
            select(subscriptions.c.id).where(subscriptions.c.name == subscription)
        )
        if sub_id is None:
            raise SubscriptionNotFoundError(f"no subscription named {subscription!r}")
        rows = await conn.execute(
            select(deliveries.c.id).where(dead_since(sub_id, since)).order_by(deliveries.c.id)
        )
        return str(sub_id), [str(row.id) for row in rows]


async def requeue_dead(
    engine: AsyncEngine,
    subscription_id: str,
    since: datetime,
    delivery_ids: Sequence[str],
    *,
    now: datetime,
) -> int:
    """Re-queue those of ``delivery_ids`` that are still dead since ``since`` (one batch of a
    recovery); returns how many were re-queued."""
    if not delivery_ids:
        return 0
    async with write_tx(engine) as conn:
        result = await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(delivery_ids)),
                dead_since(subscription_id, since),
            )
            .values(_fresh(now))
        )
        count = int(result.rowcount or 0)
        if count:
            await _notify(conn)
    return count
