"""Operator verbs on the outbox (admin API and CLI): list, inspect, retry, replay, recover."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook._clock import Clock, SystemClock
from payhook.errors import ConfigurationError, ConflictError, NotFoundError
from payhook.events import filter_matches, new_id, to_rfc3339
from payhook.storage._signal import OutboxSignal
from payhook.storage._subscription_model import from_row
from payhook.storage._tables import attempts, deliveries, events, subscriptions
from payhook.storage._txn import read_tx, write_tx

__all__ = [
    "DELIVERY_STATUSES",
    "Attempt",
    "Delivery",
    "dead_since",
    "get_delivery",
    "is_leased",
    "list_deliveries",
    "recover_dead",
    "replay_event",
    "retry_delivery",
]

DELIVERY_STATUSES = ("pending", "failed", "succeeded", "dead")
MAX_PAGE = 500


def _ts(value: datetime | None) -> str | None:
    return to_rfc3339(value) if value is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One recorded attempt of a delivery."""

    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    error_class: str | None
    error: str | None
    response_body: str | None = field(repr=False)

    def public_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "attempted_at": _ts(self.attempted_at),
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error_class": self.error_class,
            "error": self.error,
            "response_body": self.response_body,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A delivery (one event to one subscription) with its attempts, newest last.

    ``in_flight`` is true while a worker holds a live claim on it.
    """

    id: str
    event_id: str
    subscription_id: str
    subscription_name: str
    status: str
    attempt_count: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    in_flight: bool
    attempts: tuple[Attempt, ...] = ()

    def public_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        waiting = self.status in ("pending", "failed") and not self.in_flight
        return {
            "id": self.id,
            "event_id": self.event_id,
            "subscription": self.subscription_name,
            "subscription_id": self.subscription_id,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "in_flight": self.in_flight,
            "next_attempt_at": _ts(self.next_attempt_at) if waiting else None,
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at),
            "last_attempt_at": _ts(self.last_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "attempts": [a.public_dict() for a in self.attempts],
        }


def is_leased(row: Any, now: datetime) -> bool:
    """Whether a worker holds the delivery right now (a live claim: its lease has not run
    out). ``row`` has ``claim_token`` and ``lease_until``."""
    return row.claim_token is not None and row.lease_until is not None and row.lease_until > now


def _query() -> Select[Any]:
    return select(deliveries, subscriptions.c.name.label("subscription_name")).join(
        subscriptions, subscriptions.c.id == deliveries.c.subscription_id
    )


async def _attempts(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, list[Attempt]]:
    found: dict[str, list[Attempt]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = await conn.execute(
        select(attempts).where(attempts.c.delivery_id.in_(ids)).order_by(attempts.c.id)
    )
    for row in rows:
        found[row.delivery_id].append(
            Attempt(
                attempted_at=row.attempted_at,
                status_code=row.status_code,
                latency_ms=row.latency_ms,
                error_class=row.error_class,
                error=row.error,
                response_body=row.response_body,
            )
        )
    return found


def _delivery(row: Any, now: datetime, found: dict[str, list[Attempt]]) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        subscription_id=row.subscription_id,
        subscription_name=row.subscription_name,
        status=row.status,
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        in_flight=is_leased(row, now),
        attempts=tuple(found.get(row.id, ())),
    )


async def list_deliveries(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    subscription: str | None = None,
    event_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    clock: Clock | None = None,
) -> tuple[list[Delivery], str | None]:
    """Deliveries with their attempts, newest first, one page at a time.

    Args:
        status: ``pending``, ``failed``, ``succeeded`` or ``dead``.
        subscription: a subscription name.
        event_id: only the deliveries of this event.
        limit: page size, 1 to 500.
        cursor: the ``next_cursor`` of the previous page.

    Returns:
        The page and the cursor of the next one (``None`` on the last page).

    Raises:
        ConfigurationError: an unknown status or a bad limit.
    """
    if status is not None and status not in DELIVERY_STATUSES:
        raise ConfigurationError(
            f"status must be one of {', '.join(DELIVERY_STATUSES)}", reason="bad_query"
        )
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigurationError(f"limit must be between 1 and {MAX_PAGE}", reason="bad_query")
    query = _query()
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if subscription is not None:
        query = query.where(subscriptions.c.name == subscription)
    if event_id is not None:
        query = query.where(deliveries.c.event_id == event_id)
    if cursor:
        query = query.where(deliveries.c.id < cursor)
    query = query.order_by(deliveries.c.id.desc()).limit(limit + 1)
    now = (clock or SystemClock()).now()
    async with read_tx(engine) as conn:
        rows = (await conn.execute(query)).all()
        page = rows[:limit]
        found = await _attempts(conn, [r.id for r in page])
    items = [_delivery(r, now, found) for r in page]
    next_cursor = items[-1].id if len(rows) > limit and items else None
    return items, next_cursor


async def get_delivery(
    engine: AsyncEngine, delivery_id: str, *, clock: Clock | None = None
) -> Delivery:
    """One delivery with all its attempts.

    Raises:
        NotFoundError: no such delivery.
    """
    now = (clock or SystemClock()).now()
    async with read_tx(engine) as conn:
        row = (await conn.execute(_query().where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id!r}")
        found = await _attempts(conn, [row.id])
    return _delivery(row, now, found)


async def _notify(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify('payhook_outbox', '')"))


async def retry_delivery(
    engine: AsyncEngine,
    delivery_id: str,
    *,
    clock: Clock | None = None,
    signal: OutboxSignal | None = None,
) -> Delivery:
    """Re-queue one delivery now, whatever its state (also ``dead`` or ``succeeded``).

    A dead or succeeded delivery starts a fresh retry schedule; its earlier attempts stay
    recorded. The subscriber sees the same ``webhook-id`` again.

    Raises:
        NotFoundError: no such delivery.
        ConflictError: a worker is sending it right now.
    """
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        now = clock.now()
        row = (await conn.execute(_query().where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id!r}")
        if is_leased(row, now):
            raise ConflictError("the delivery is being sent right now", reason="in_flight")
        values: dict[str, Any] = {
            "next_attempt_at": now,
            "claim_token": None,
            "claimed_at": None,
            "lease_until": None,
            "updated_at": now,
        }
        if row.status in ("dead", "succeeded"):
            values.update(status="pending", attempt_count=0)
        await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(values))
        await _notify(conn)
    if signal is not None:
        signal.notify()
    return await get_delivery(engine, delivery_id, clock=clock)


async def replay_event(
    engine: AsyncEngine,
    event_id: str,
    subscription_name: str | None = None,
    *,
    clock: Clock | None = None,
    signal: OutboxSignal | None = None,
) -> list[str]:
    """Send an event again as new deliveries, with the same event id (``webhook-id``).

    Args:
        subscription_name: only to this subscription (even if its filters no longer match
            the event); by default to every enabled subscription whose filters match.

    Returns:
        The ids of the new deliveries.

    Raises:
        NotFoundError: no such event or subscription.
    """
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        now = clock.now()
        event_type = await conn.scalar(select(events.c.type).where(events.c.id == event_id))
        if event_type is None:
            raise NotFoundError(f"no event {event_id!r}")
        if subscription_name is not None:
            row = (
                await conn.execute(
                    select(subscriptions).where(subscriptions.c.name == subscription_name)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no subscription named {subscription_name!r}")
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
                "status": "pending",
                "attempt_count": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for sub in targets
        ]
        if new_rows:
            await conn.execute(insert(deliveries), new_rows)
            await _notify(conn)
    if new_rows and signal is not None:
        signal.notify()
    return [str(r["id"]) for r in new_rows]


def dead_since(subscription_id: str, since: datetime) -> ColumnElement[bool]:
    """The dead deliveries of a subscription whose last attempt was at or after ``since``:
    what :func:`recover_dead` re-queues (and what the CLI lists to show progress)."""
    return and_(
        deliveries.c.subscription_id == subscription_id,
        deliveries.c.status == "dead",
        or_(
            deliveries.c.last_attempt_at >= since,
            and_(deliveries.c.last_attempt_at.is_(None), deliveries.c.updated_at >= since),
        ),
    )


async def recover_dead(
    engine: AsyncEngine,
    subscription_name: str,
    since: datetime,
    dry_run: bool = False,
    *,
    clock: Clock | None = None,
    signal: OutboxSignal | None = None,
) -> int:
    """Re-queue every dead delivery of a subscription whose last attempt was at or after
    ``since`` (e.g. after fixing a subscriber that was down over a weekend).

    Returns:
        How many deliveries were (or, with ``dry_run``, would be) re-queued.

    Raises:
        NotFoundError: no such subscription.
    """
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        now = clock.now()
        sub_id = await conn.scalar(
            select(subscriptions.c.id).where(subscriptions.c.name == subscription_name)
        )
        if sub_id is None:
            raise NotFoundError(f"no subscription named {subscription_name!r}")
        where = dead_since(sub_id, since)
        if dry_run:
            count = await conn.scalar(select(func.count()).select_from(deliveries).where(where))
            return int(count or 0)
        result = await conn.execute(
            update(deliveries)
            .where(where)
            .values(
                status="pending",
                attempt_count=0,
                next_attempt_at=now,
                claim_token=None,
                claimed_at=None,
                lease_until=None,
                updated_at=now,
            )
        )
        count = result.rowcount or 0
        if count:
            await _notify(conn)
    if count and signal is not None:
        signal.notify()
    return int(count)
