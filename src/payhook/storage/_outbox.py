"""The outbox as the dispatcher sees it: claim due deliveries, finish them, release them.

A claim is one short transaction: it picks due rows (``status`` pending/failed,
``next_attempt_at <= now`` and no live lease), gives them a fresh random ``claim_token``
and sets ``lease_until``, so a crashed worker's rows become due again by themselves. The
claim changes no indexed column (a HOT update on PostgreSQL). PostgreSQL uses
``FOR UPDATE SKIP LOCKED`` so concurrent workers never take the same row; SQLite runs the
claim as one ``UPDATE … WHERE id IN (SELECT …) RETURNING``, atomic under the database write
lock. Finishing (batched) only touches rows whose token still matches, so a worker that lost
its lease cannot overwrite a newer claim.
No connection is held between a claim and its completion.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._types import DeliveryStatus, SubscriptionKind
from payhook.storage._outbox_sql import (
    PG_CLAIM,
    PG_CLAIM_ARGS,
    PG_COMPLETE,
    SQLITE_ATTEMPTS,
    SQLITE_CLAIM,
    SQLITE_CLAIMED_DETAILS,
    SQLITE_DISABLE,
    SQLITE_FINISH,
)
from payhook.storage._tables import UTCDateTime, deliveries, sqlite_timestamp
from payhook.storage._txn import pg_driver, read_tx, write_tx

__all__ = [
    "ClaimedDelivery",
    "Completion",
    "claim_due",
    "complete",
    "next_due_at",
    "release",
]

_EVERY_KIND: Mapping[str, Collection[str] | None] = {kind: None for kind in SubscriptionKind}

_TS_PARAMS = (
    bindparam("now", type_=UTCDateTime()),
    bindparam("lease_until", type_=UTCDateTime()),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedDelivery:
    """A delivery this worker holds until ``lease_until``, with what it needs to send it."""

    id: str
    event_id: str
    subscription_id: str
    subscription_name: str
    kind: str  # a SubscriptionKind value: which sink sends it
    url: str | None
    secrets_json: str = field(repr=False)
    body: bytes = field(repr=False)
    attempt: int  # the number of the attempt about to be made, from 1
    claim_token: str = field(repr=False)
    claimed_at: datetime
    lease_until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """The result of one attempt, written back by :func:`complete`.

    ``status`` is ``succeeded``, ``failed`` (due again at ``next_attempt_at``) or ``dead``.
    ``disable_reason`` is set when the subscriber asked to be disabled (HTTP 410): the
    subscription is disabled.
    """

    delivery_id: str
    claim_token: str = field(repr=False)
    subscription_id: str
    status: DeliveryStatus
    next_attempt_at: datetime
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    error_class: str | None = None  # the dispatcher's ErrorClass
    error: str | None = None
    response_body: str | None = field(default=None, repr=False)
    disable_reason: str | None = None


async def claim_due(
    engine: AsyncEngine,
    *,
    now: datetime,
    limit: int,
    lease_s: float,
    per_subscription_cap: int,
    remaining: Mapping[str, int] | None = None,
    serves: Mapping[str, Collection[str] | None] | None = None,
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due deliveries, oldest due first.

    Args:
        now: the current time (from the dispatcher's clock).
        limit: at most this many rows.
        lease_s: the claim holds until ``now + lease_s``; then the rows are due again.
        per_subscription_cap: at most this many rows per subscription in one claim.
        remaining: per subscription id, how many more rows this worker may take now
            (its cap minus what it has in flight); subscriptions at 0 are skipped.
        serves: the subscriptions this worker can send to: by kind, ``None`` for every
            subscription of that kind, or the names of those it can serve (a process-local
            sink such as in-process handlers); deliveries of other kinds and names are left
            for a worker that can send them. Default: every kind payhook knows, every name.

    Raises:
        StorageUnavailableError: the database is unavailable.
    """
    remaining = remaining or {}
    if serves is None:
        serves = _EVERY_KIND
    full = [sid for sid, n in remaining.items() if n <= 0]
    caps = {sid: n for sid, n in remaining.items() if n > 0}
    token = uuid.uuid4().hex
    lease_until = now + timedelta(seconds=lease_s)
    params: dict[str, Any] = {
        "now": now,
        "lease_until": lease_until,
        "token": token,
        "limit": limit,
        "cap": per_subscription_cap,
        "kinds": json.dumps(sorted(kind for kind, names in serves.items() if names is None)),
        "named": json.dumps(
            {kind: sorted(names) for kind, names in serves.items() if names is not None}
        ),
        "full": json.dumps(full),
        "caps": json.dumps(caps),
    }
    if engine.dialect.name == "postgresql":
        async with pg_driver(engine) as pg:
            records = await pg.fetch(PG_CLAIM, *(params[name] for name in PG_CLAIM_ARGS))
        rows: list[Mapping[str, Any]] = list(records)
    else:
        async with write_tx(engine) as conn:
            result = await conn.execute(text(SQLITE_CLAIM).bindparams(*_TS_PARAMS), params)
            claimed = [r._mapping for r in result]
            details: dict[str, Any] = {}
            if claimed:
                found = await conn.execute(
                    text(SQLITE_CLAIMED_DETAILS), {"ids": json.dumps([r["id"] for r in claimed])}
                )
                details = {r.id: r._mapping for r in found}
            rows = [{**r, **details[r["id"]]} for r in claimed if r["id"] in details]
    return [
        ClaimedDelivery(
            id=r["id"],
            event_id=r["event_id"],
            subscription_id=r["subscription_id"],
            subscription_name=r["name"],
            kind=r["kind"],
            url=r["url"],
            secrets_json=r["secrets"],
            body=bytes(r["body"]),
            attempt=int(r["attempt_count"]) + 1,
            claim_token=token,
            claimed_at=now,
            lease_until=lease_until,
        )
        for r in sorted(rows, key=lambda r: str(r["id"]))
    ]


def _row(c: Completion) -> tuple[Any, ...]:
    """One completion in PG_COMPLETE's column order."""
    return (
        c.delivery_id, c.claim_token, c.status, c.next_attempt_at, c.attempted_at,
        c.status_code, c.latency_ms, c.error_class, c.error, c.response_body,
        c.subscription_id, c.disable_reason,
    )  # fmt: skip


def _row_json(c: Completion) -> dict[str, Any]:
    """One completion as the JSON object SQLITE_FINISH and SQLITE_ATTEMPTS read by key."""
    return {
        "id": c.delivery_id,
        "token": c.claim_token,
        "status": c.status,
        "next_attempt_at": sqlite_timestamp(c.next_attempt_at),
        "attempted_at": sqlite_timestamp(c.attempted_at),
        "status_code": c.status_code,
        "latency_ms": c.latency_ms,
        "error_class": c.error_class,
        "error": c.error,
        "response_body": c.response_body,
        "subscription_id": c.subscription_id,
        "disable_reason": c.disable_reason,
    }


async def complete(
    engine: AsyncEngine, completions: Sequence[Completion], *, now: datetime
) -> set[str]:
    """Write back a batch of attempt results in one transaction.

    Each delivery row is updated only if its ``claim_token`` still matches; every attempt
    is recorded (even a fenced-out one: it did happen) unless its delivery was deleted.
    410 answers disable their subscription.

    Returns:
        The ids of the deliveries whose row was updated (the fenced-out ones are missing).

    Raises:
        StorageUnavailableError: the database is unavailable (nothing was written).
    """
    if not completions:
        return set()
    if engine.dialect.name == "postgresql":
        columns = list(zip(*(_row(c) for c in completions), strict=True))
        async with pg_driver(engine) as pg:
            return {r[0] for r in await pg.fetch(PG_COMPLETE, *columns, now)}
    payload = json.dumps([_row_json(c) for c in completions])
    async with write_tx(engine) as conn:
        finish = text(SQLITE_FINISH).bindparams(bindparam("now", type_=UTCDateTime()))
        updated = {r[0] for r in await conn.execute(finish, {"rows": payload, "now": now})}
        await conn.execute(text(SQLITE_ATTEMPTS), {"rows": payload})
        gone = {c.subscription_id: c.disable_reason for c in completions if c.disable_reason}
        disable = text(SQLITE_DISABLE).bindparams(bindparam("now", type_=UTCDateTime()))
        for subscription_id, reason in gone.items():
            await conn.execute(disable, {"sid": subscription_id, "reason": reason, "now": now})
    return updated


async def release(engine: AsyncEngine, claims: Sequence[tuple[str, str]], *, now: datetime) -> int:
    """Give back claimed rows without an attempt (graceful stop): they are due again at once
    (their ``next_attempt_at`` had come when they were claimed).

    Args:
        claims: ``(delivery_id, claim_token)`` pairs; rows claimed since by someone
            else are left alone.

    Returns:
        How many rows were released.
    """
    if not claims:
        return 0
    statement = (
        update(deliveries)
        .where(
            deliveries.c.id == bindparam("b_id"),
            deliveries.c.claim_token == bindparam("b_token"),
        )
        .values(claim_token=None, claimed_at=None, lease_until=None, updated_at=now)
    )
    count = 0
    async with write_tx(engine) as conn:
        for delivery_id, token in claims:
            result = await conn.execute(statement, {"b_id": delivery_id, "b_token": token})
            count += result.rowcount or 0
    return count


async def next_due_at(engine: AsyncEngine) -> datetime | None:
    """When the earliest pending or failed delivery (or lease) falls due, if any."""
    due = deliveries.c.next_attempt_at
    lease = func.coalesce(deliveries.c.lease_until, due)
    # A claimed row falls due when its lease runs out, if that is later.
    later = (
        func.greatest(due, lease) if engine.dialect.name == "postgresql" else func.max(due, lease)
    )
    async with read_tx(engine) as conn:
        value = await conn.scalar(
            select(func.min(later)).where(
                deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.FAILED))
            )
        )
    if value is None:
        return None
    if isinstance(value, datetime):
        return UTCDateTime().process_result_value(value, engine.dialect)
    return UTCDateTime().process_result_value(datetime.fromisoformat(str(value)), engine.dialect)
