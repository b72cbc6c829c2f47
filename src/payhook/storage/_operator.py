"""The operator's read model (admin API and CLI, through :mod:`payhook.operations`): events
and deliveries newest first, and the delivery gauges ``/metrics`` shows.

Pagination is keyset on the primary key. Event and delivery ids are time-sortable
(``evt_…``/``dlv_…`` ULIDs), so "newest first" is ``ORDER BY id DESC`` and the next page is
``WHERE id < <last id of this page>``: rows inserted while a client pages never shift,
repeat or hide the rows it has not seen yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Row, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook._types import DeliveryStatus
from payhook.errors import (
    ConfigurationError,
    DeliveryNotFoundError,
    EventNotFoundError,
    InvalidRequestError,
    PayhookError,
    StorageUnavailableError,
)
from payhook.storage._operator_views import (
    AttemptView,
    DeliveryGauges,
    DeliveryView,
    EventView,
    Page,
    encode_cursor,
)
from payhook.storage._tables import attempts, deliveries, events, subscriptions
from payhook.storage._txn import read_tx

__all__ = [
    "MAX_LIMIT",
    "connection_problem",
    "deliveries_of_events",
    "delivery_gauges",
    "get_delivery",
    "get_event",
    "is_leased",
    "list_deliveries",
    "list_events",
]

MAX_LIMIT = 500


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit: must be an integer from 1 to {MAX_LIMIT}")
    return limit


_MISSING_TABLE = re.compile(r"no such table|does not exist|UndefinedTable", re.IGNORECASE)


def connection_problem(database_url: str, exc: BaseException | None) -> PayhookError | None:
    """What to tell an operator whose command could not use ``database_url`` (None if
    ``exc`` is not a database problem). With ``exc=None``: whether the SQLite file is missing,
    checked before connecting so a command never creates an empty database by accident."""
    url = make_url(database_url)
    if exc is None:
        database = url.database
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        if Path(database).exists():
            return None
        return ConfigurationError(
            f"the database file {database} does not exist "
            "(run `payhook db upgrade` or start `payhook serve` first)"
        )
    if not isinstance(exc, StorageUnavailableError | SQLAlchemyError):
        return None
    if _MISSING_TABLE.search(f"{exc} {exc.__cause__ or ''}"):
        return ConfigurationError("the database has no payhook tables (run `payhook db upgrade`)")
    shown = url.render_as_string(hide_password=True)
    return StorageUnavailableError(f"the database {shown} is unavailable")


def is_leased(row: Any, now: datetime) -> bool:
    """Whether a worker holds the delivery right now (a live claim: its lease has not run
    out). ``row`` has ``claim_token`` and ``lease_until``."""
    return row.claim_token is not None and row.lease_until is not None and row.lease_until > now


# --------------------------------------------------------------------------------------------
# events


def _event_view(row: Row[Any]) -> EventView:
    return EventView(
        id=row.id,
        type=row.type,
        channel=row.channel,
        order_id=row.order_id,
        created_at=row.created_at,
        body=json.loads(row.body),
    )


def _event_columns() -> Select[Any]:
    return select(
        events.c.id,
        events.c.type,
        events.c.channel,
        events.c.order_id,
        events.c.created_at,
        events.c.body,
    )


async def list_events(
    engine: AsyncEngine,
    *,
    order_id: str | None = None,
    event_type: str | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    after_id: str | None = None,
) -> Page[EventView]:
    """Events, newest first.

    Args:
        order_id: only events of this merchant order (``out_trade_no``).
        event_type: an event filter: an exact type, ``prefix.*`` or ``*``.
        channel: only events received on this channel.
        since: only events created at or after this time.
        until: only events created before this time.
        limit: page size, 1 to :data:`MAX_LIMIT`.
        after_id: the id inside the cursor of the previous page.

    Raises:
        StorageUnavailableError: the database is unavailable.
    """
    _check_limit(limit)
    query = _event_columns()
    if order_id is not None:
        query = query.where(events.c.order_id == order_id)
    if event_type is not None and event_type != "*":
        if event_type.endswith(".*"):
            query = query.where(events.c.type.startswith(event_type[:-1], autoescape=True))
        else:
            query = query.where(events.c.type == event_type)
    if channel is not None:
        query = query.where(events.c.channel == channel)
    if since is not None:
        query = query.where(events.c.created_at >= since)
    if until is not None:
        query = query.where(events.c.created_at < until)
    if after_id is not None:
        query = query.where(events.c.id < after_id)
    query = query.order_by(events.c.id.desc()).limit(limit + 1)
    async with read_tx(engine) as conn:
        rows = (await conn.execute(query)).all()
    items = tuple(_event_view(row) for row in rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


async def get_event(engine: AsyncEngine, event_id: str) -> EventView:
    """One event.

    Raises:
        EventNotFoundError: no event has this id.
    """
    async with read_tx(engine) as conn:
        row = (await conn.execute(_event_columns().where(events.c.id == event_id))).first()
    if row is None:
        raise EventNotFoundError(f"no event with id {event_id!r}")
    return _event_view(row)


# --------------------------------------------------------------------------------------------
# deliveries


def _delivery_columns() -> Select[Any]:
    return select(
        deliveries.c.id,
        deliveries.c.event_id,
        events.c.type.label("event_type"),
        events.c.order_id,
        subscriptions.c.name.label("subscription"),
        deliveries.c.subscription_id,
        deliveries.c.status,
        deliveries.c.claim_token,
        deliveries.c.lease_until,
        deliveries.c.attempt_count,
        deliveries.c.next_attempt_at,
        deliveries.c.created_at,
        deliveries.c.updated_at,
        deliveries.c.last_attempt_at,
        deliveries.c.last_status_code,
        deliveries.c.last_error,
    ).select_from(
        deliveries.join(events, events.c.id == deliveries.c.event_id).join(
            subscriptions, subscriptions.c.id == deliveries.c.subscription_id
        )
    )


async def _attempts_of(
    conn: AsyncConnection, delivery_ids: Sequence[str]
) -> dict[str, list[AttemptView]]:
    found: dict[str, list[AttemptView]] = {}
    if not delivery_ids:
        return found
    rows = (
        await conn.execute(
            select(attempts)
            .where(attempts.c.delivery_id.in_(list(delivery_ids)))
            .order_by(attempts.c.attempted_at, attempts.c.id)
        )
    ).all()
    for row in rows:
        found.setdefault(row.delivery_id, []).append(
            AttemptView(
                attempted_at=row.attempted_at,
                status_code=row.status_code,
                latency_ms=row.latency_ms,
                error_class=row.error_class,
                error=row.error,
                response_body=row.response_body,
            )
        )
    return found


async def _views(
    conn: AsyncConnection, rows: Sequence[Row[Any]], with_attempts: bool, now: datetime
) -> tuple[DeliveryView, ...]:
    by_id = await _attempts_of(conn, [row.id for row in rows]) if with_attempts else {}
    return tuple(
        DeliveryView(
            id=row.id,
            event_id=row.event_id,
            event_type=row.event_type,
            order_id=row.order_id,
            subscription=row.subscription,
            subscription_id=row.subscription_id,
            status=DeliveryStatus(row.status),
            attempt_count=row.attempt_count,
            in_flight=is_leased(row, now),
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_attempt_at=row.last_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            attempts=tuple(by_id.get(row.id, ())),
        )
        for row in rows
    )


async def list_deliveries(
    engine: AsyncEngine,
    *,
    status: DeliveryStatus | None = None,
    subscription: str | None = None,
    event_id: str | None = None,
    order_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    after_id: str | None = None,
    with_attempts: bool = True,
    now: datetime,
) -> Page[DeliveryView]:
    """Deliveries, newest first, each with its attempts (oldest attempt first).

    Args:
        status: ``pending``, ``failed``, ``succeeded`` or ``dead``.
        subscription: only deliveries to this subscription (by name).
        event_id: only deliveries of this event.
        order_id: only deliveries of events of this merchant order.
        since: only deliveries created at or after this time.
        until: only deliveries created before this time.
        limit: page size, 1 to :data:`MAX_LIMIT`.
        after_id: the id inside the cursor of the previous page.
        with_attempts: load the attempts too.
        now: the current time (tells whether a claim is still live).

    Raises:
        StorageUnavailableError: the database is unavailable.
    """
    _check_limit(limit)
    query = _delivery_columns()
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if subscription is not None:
        query = query.where(subscriptions.c.name == subscription)
    if event_id is not None:
        query = query.where(deliveries.c.event_id == event_id)
    if order_id is not None:
        query = query.where(events.c.order_id == order_id)
    if since is not None:
        query = query.where(deliveries.c.created_at >= since)
    if until is not None:
        query = query.where(deliveries.c.created_at < until)
    if after_id is not None:
        query = query.where(deliveries.c.id < after_id)
    query = query.order_by(deliveries.c.id.desc()).limit(limit + 1)
    async with read_tx(engine) as conn:
        rows = (await conn.execute(query)).all()
        items = await _views(conn, rows[:limit], with_attempts, now)
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


async def get_delivery(engine: AsyncEngine, delivery_id: str, *, now: datetime) -> DeliveryView:
    """One delivery with its attempts.

    Raises:
        DeliveryNotFoundError: no delivery has this id.
    """
    async with read_tx(engine) as conn:
        rows = (await conn.execute(_delivery_columns().where(deliveries.c.id == delivery_id))).all()
        items = await _views(conn, rows, True, now)
    if not items:
        raise DeliveryNotFoundError(f"no delivery with id {delivery_id!r}")
    return items[0]


async def deliveries_of_events(
    engine: AsyncEngine,
    event_ids: Sequence[str],
    *,
    now: datetime,
    with_attempts: bool = True,
) -> dict[str, tuple[DeliveryView, ...]]:
    """The deliveries of each of ``event_ids`` (oldest first), keyed by event id."""
    found: dict[str, tuple[DeliveryView, ...]] = {event_id: () for event_id in event_ids}
    if not event_ids:
        return found
    query = (
        _delivery_columns()
        .where(deliveries.c.event_id.in_(list(event_ids)))
        .order_by(deliveries.c.id)
    )
    async with read_tx(engine) as conn:
        rows = (await conn.execute(query)).all()
        views = await _views(conn, rows, with_attempts, now)
    grouped: dict[str, list[DeliveryView]] = {}
    for view in views:
        grouped.setdefault(view.event_id, []).append(view)
    found.update({key: tuple(value) for key, value in grouped.items()})
    return found


async def delivery_gauges(engine: AsyncEngine, *, now: datetime) -> DeliveryGauges:
    """Per subscription: deliveries waiting (pending or failed) and the age of the oldest
    waiting one, for enabled subscriptions (``pending``) and disabled ones (``paused``)
    apart, and dead ones.

    Raises:
        StorageUnavailableError: the database is unavailable.
    """
    query = (
        select(
            subscriptions.c.name,
            subscriptions.c.enabled,
            deliveries.c.status,
            func.count(),
            func.min(deliveries.c.created_at),
        )
        .select_from(
            deliveries.join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        )
        .where(
            deliveries.c.status.in_(
                (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DEAD)
            )
        )
        .group_by(subscriptions.c.name, subscriptions.c.enabled, deliveries.c.status)
    )
    async with read_tx(engine) as conn:
        rows = (await conn.execute(query)).all()
    gauges = DeliveryGauges(pending={}, oldest_pending_age_s={}, dead={})
    for name, enabled, status, count, first in rows:
        if status == DeliveryStatus.DEAD:
            gauges.dead[name] = gauges.dead.get(name, 0) + count
            continue
        waiting, oldest = (
            (gauges.pending, gauges.oldest_pending_age_s)
            if enabled
            else (gauges.paused, gauges.oldest_paused_age_s)
        )
        waiting[name] = waiting.get(name, 0) + count
        if first is not None:
            age = max(0.0, (now - first).total_seconds())
            oldest[name] = max(oldest.get(name, 0.0), age)
    return gauges
