"""Seeding helpers for the admin API tests: events through the real intake path, and the
delivery outcomes a dispatcher would record."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from payhook._hook import PayHook
from payhook.config import PayhookSettings, SubscriptionSettings
from payhook.events import EventDraft, EventType
from payhook.storage import IntakeRecord, IntakeResult
from payhook.storage._tables import attempts, deliveries

TOKEN = "admin-token-for-tests-0123456789"
ORDERS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
_SEQ = itertools.count(1)


def make_hook(database_url: str, *, admin_token: str | None = TOKEN, **settings: Any) -> PayHook:
    """A PayHook with one config subscription ``orders`` (everything) and no dispatcher."""
    settings.setdefault(
        "subscriptions",
        (
            SubscriptionSettings(
                name="orders",
                url="http://127.0.0.1:9/webhooks/payments",
                events=("*",),
                secret=ORDERS_SECRET,
            ),
        ),
    )
    return PayHook(
        PayhookSettings(database_url=database_url, admin_token=admin_token, **settings),
        run_dispatcher=False,
    )


def draft(
    order_id: str,
    *,
    event_type: EventType = EventType.ORDER_PAID,
    amount: int = 8888,
    transaction_id: str | None = None,
) -> EventDraft:
    """A canonical event as an Alipay adapter would produce it."""
    txn = transaction_id or f"2026112822001{next(_SEQ):06d}"
    return EventDraft(
        type=event_type,
        key=f"alipay:2021000000000001:{txn}:{event_type}",
        provider="alipay",
        merchant_id="2021000000000001",
        order_id=order_id,
        transaction_id=txn,
        amount=amount,
        raw={"out_trade_no": order_id, "trade_no": txn},
    )


async def record(hook: PayHook, *drafts: EventDraft) -> IntakeResult:
    """Store one callback carrying ``drafts`` through the real intake transaction."""
    return await hook.store.record(
        IntakeRecord(
            channel="alipay",
            received_at=hook.clock.now(),
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=b"a=1",
            notification_id=f"n{next(_SEQ)}",
            drafts=drafts,
        )
    )


async def paid(hook: PayHook, order_id: str, amount: int = 8888) -> str:
    """Store a payment.order.paid for ``order_id``; returns the event id."""
    result = await record(hook, draft(order_id, amount=amount))
    return result.event_ids[0]


async def delivery_ids(hook: PayHook, event_id: str) -> list[str]:
    """The ids of ``event_id``'s deliveries, oldest first."""
    async with hook.store.engine.connect() as conn:
        rows = await conn.execute(
            select(deliveries.c.id)
            .where(deliveries.c.event_id == event_id)
            .order_by(deliveries.c.id)
        )
        return [str(r.id) for r in rows]


async def fail(
    hook: PayHook,
    delivery_id: str,
    *,
    dead: bool,
    status_code: int = 500,
    at: datetime | None = None,
) -> None:
    """Record a failed attempt of ``delivery_id`` the way the dispatcher does."""
    when = at or hook.clock.now()
    async with hook.store.engine.begin() as conn:
        await conn.execute(
            insert(attempts).values(
                delivery_id=delivery_id,
                attempted_at=when,
                status_code=status_code,
                latency_ms=12,
                error_class="http",
                error=f"HTTP {status_code}",
                response_body="boom",
            )
        )
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(
                status="dead" if dead else "failed",
                attempt_count=deliveries.c.attempt_count + 1,
                last_attempt_at=when,
                last_status_code=status_code,
                last_error=f"HTTP {status_code}",
                next_attempt_at=when + timedelta(seconds=60),
                updated_at=when,
            )
        )


async def succeed(hook: PayHook, delivery_id: str) -> None:
    """Record a successful attempt of ``delivery_id``."""
    when = hook.clock.now()
    async with hook.store.engine.begin() as conn:
        await conn.execute(
            insert(attempts).values(
                delivery_id=delivery_id, attempted_at=when, status_code=204, latency_ms=3
            )
        )
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(
                status="succeeded",
                attempt_count=deliveries.c.attempt_count + 1,
                last_attempt_at=when,
                last_status_code=204,
                updated_at=when,
            )
        )


def ago(**delta: float) -> datetime:
    """The wall-clock time ``delta`` ago (aware UTC)."""
    return datetime.now(UTC) - timedelta(**delta)
