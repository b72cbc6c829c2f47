"""The outbox as the dispatcher sees it: claim due deliveries, finish them, release them.

A claim is one short transaction: it picks due rows (``status`` pending/failed and
``next_attempt_at <= now``), gives them a fresh random ``claim_token`` and pushes
``next_attempt_at`` to the lease expiry, so a crashed worker's rows become due again by
themselves. PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` so concurrent workers never take
the same row; SQLite runs the claim as one ``UPDATE … WHERE id IN (SELECT …) RETURNING``,
atomic under the database write lock. Finishing (batched) only touches rows whose token
still matches, so a worker that lost its lease cannot overwrite a newer claim.
No connection is held between a claim and its completion.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, LiteralString

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook.storage._tables import (
    UTCDateTime,
    deliveries,
    sqlite_timestamp,
    subscriptions,
)
from payhook.storage._txn import read_tx, write_tx

__all__ = [
    "ClaimedDelivery",
    "Completion",
    "claim_due",
    "complete",
    "next_due_at",
    "release",
]

_DUE = "d.status IN ('pending', 'failed') AND d.next_attempt_at <= :now"

_PG_CLAIM: LiteralString = f"""
WITH cand AS (
    SELECT d.id, d.subscription_id, d.next_attempt_at
    FROM payhook_deliveries AS d
    JOIN payhook_subscriptions AS s ON s.id = d.subscription_id
    WHERE {_DUE}
      AND s.enabled
      AND (s.kind = 'http' OR (s.kind = 'handler'
           AND s.name IN (SELECT value FROM json_array_elements_text(CAST(:handlers AS json)))))
      AND d.subscription_id NOT IN
          (SELECT value FROM json_array_elements_text(CAST(:full AS json)))
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
), ranked AS (
    SELECT id, subscription_id,
           row_number() OVER (PARTITION BY subscription_id ORDER BY next_attempt_at, id) AS rn
    FROM cand
), caps AS (
    SELECT key AS sid, CAST(value AS integer) AS rem FROM json_each_text(CAST(:caps AS json))
), picked AS (
    SELECT r.id FROM ranked AS r LEFT JOIN caps AS c ON c.sid = r.subscription_id
    WHERE r.rn <= COALESCE(c.rem, :cap)
)
UPDATE payhook_deliveries AS d
SET claim_token = :token, claimed_at = :now, next_attempt_at = :lease_until
FROM picked AS p, payhook_events AS e, payhook_subscriptions AS s
WHERE d.id = p.id AND e.id = d.event_id AND s.id = d.subscription_id
RETURNING d.id, d.event_id, d.subscription_id, d.attempt_count,
          e.body, s.name, s.kind, s.url, s.secrets
"""  # noqa: S608 - built from module constants only

_SQLITE_CLAIM: LiteralString = f"""
UPDATE payhook_deliveries
SET claim_token = :token, claimed_at = :now, next_attempt_at = :lease_until
WHERE id IN (
    SELECT r.id FROM (
        SELECT c.id, c.subscription_id,
               row_number() OVER (PARTITION BY c.subscription_id
                                  ORDER BY c.next_attempt_at, c.id) AS rn
        FROM (
            SELECT d.id, d.subscription_id, d.next_attempt_at
            FROM payhook_deliveries AS d
            JOIN payhook_subscriptions AS s ON s.id = d.subscription_id
            WHERE {_DUE}
              AND s.enabled
              AND (s.kind = 'http' OR (s.kind = 'handler'
                   AND s.name IN (SELECT value FROM json_each(:handlers))))
              AND d.subscription_id NOT IN (SELECT value FROM json_each(:full))
            ORDER BY d.next_attempt_at
            LIMIT :limit
        ) AS c
    ) AS r
    LEFT JOIN (SELECT key AS sid, value AS rem FROM json_each(:caps)) AS k
        ON k.sid = r.subscription_id
    WHERE r.rn <= COALESCE(k.rem, :cap)
)
RETURNING id, event_id, subscription_id, attempt_count
"""  # noqa: S608 - built from module constants only

_SQLITE_CLAIMED_DETAILS: LiteralString = """
SELECT d.id, e.body, s.name, s.kind, s.url, s.secrets
FROM payhook_deliveries AS d
JOIN payhook_events AS e ON e.id = d.event_id
JOIN payhook_subscriptions AS s ON s.id = d.subscription_id
WHERE d.id IN (SELECT value FROM json_each(:ids))
"""

_PG_ROWS: LiteralString = (
    "json_to_recordset(CAST(:rows AS json)) AS v(id text, token text, status text, "
    "next_attempt_at timestamptz, attempted_at timestamptz, status_code integer, "
    "latency_ms integer, error_class text, error text, response_body text)"
)
_SQLITE_ROWS: LiteralString = (
    "(SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token, "
    "json_extract(value, '$.status') AS status, "
    "json_extract(value, '$.next_attempt_at') AS next_attempt_at, "
    "json_extract(value, '$.attempted_at') AS attempted_at, "
    "json_extract(value, '$.status_code') AS status_code, "
    "json_extract(value, '$.latency_ms') AS latency_ms, "
    "json_extract(value, '$.error_class') AS error_class, "
    "json_extract(value, '$.error') AS error, "
    "json_extract(value, '$.response_body') AS response_body "
    "FROM json_each(:rows)) AS v"
)

_PG_FINISH: LiteralString = f"""
UPDATE payhook_deliveries AS d
SET status = v.status, attempt_count = d.attempt_count + 1,
    next_attempt_at = v.next_attempt_at, last_attempt_at = v.attempted_at,
    last_status_code = v.status_code, last_error = v.error, updated_at = :now,
    claim_token = NULL, claimed_at = NULL
FROM {_PG_ROWS}
WHERE d.id = v.id AND d.claim_token = v.token
RETURNING d.id
"""  # noqa: S608 - built from module constants only

_SQLITE_FINISH: LiteralString = f"""
UPDATE payhook_deliveries
SET status = v.status, attempt_count = payhook_deliveries.attempt_count + 1,
    next_attempt_at = v.next_attempt_at, last_attempt_at = v.attempted_at,
    last_status_code = v.status_code, last_error = v.error, updated_at = :now,
    claim_token = NULL, claimed_at = NULL
FROM {_SQLITE_ROWS}
WHERE payhook_deliveries.id = v.id AND payhook_deliveries.claim_token = v.token
RETURNING payhook_deliveries.id
"""  # noqa: S608 - built from module constants only

_ATTEMPTS: LiteralString = """
INSERT INTO payhook_delivery_attempts
    (delivery_id, attempted_at, status_code, latency_ms, error_class, error, response_body)
SELECT v.id, v.attempted_at, v.status_code, v.latency_ms, v.error_class, v.error,
       v.response_body
FROM {rows}
WHERE EXISTS (SELECT 1 FROM payhook_deliveries AS d WHERE d.id = v.id)
"""
_PG_ATTEMPTS: LiteralString = _ATTEMPTS.replace("{rows}", _PG_ROWS)
_SQLITE_ATTEMPTS: LiteralString = _ATTEMPTS.replace("{rows}", _SQLITE_ROWS)

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
    kind: str  # http | handler
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
    ``disable_reason`` is set when the subscriber answered 410: the subscription is disabled.
    """

    delivery_id: str
    claim_token: str = field(repr=False)
    subscription_id: str
    status: str
    next_attempt_at: datetime
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    error_class: str | None = None
    error: str | None = None
    response_body: str | None = field(default=None, repr=False)
    disable_reason: str | None = None


def _is_pg(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def claim_due(
    engine: AsyncEngine,
    *,
    now: datetime,
    limit: int,
    lease_s: float,
    per_subscription_cap: int,
    remaining: Mapping[str, int] | None = None,
    handlers: Collection[str] = (),
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due deliveries, oldest due first.

    Args:
        now: the current time (from the dispatcher's clock).
        limit: at most this many rows.
        lease_s: the claim holds until ``now + lease_s``; then the rows are due again.
        per_subscription_cap: at most this many rows per subscription in one claim.
        remaining: per subscription id, how many more rows this worker may take now
            (its cap minus what it has in flight); subscriptions at 0 are skipped.
        handlers: names of the in-process handler subscriptions this worker can run;
            other handler deliveries are left for the process that has them.

    Raises:
        StorageUnavailableError: the database is unavailable.
    """
    remaining = remaining or {}
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
        "handlers": json.dumps(sorted(handlers)),
        "full": json.dumps(full),
        "caps": json.dumps(caps),
    }
    async with write_tx(engine) as conn:
        if _is_pg(conn):
            result = await conn.execute(text(_PG_CLAIM).bindparams(*_TS_PARAMS), params)
            rows: list[dict[str, Any]] = [dict(r._mapping) for r in result]
        else:
            result = await conn.execute(text(_SQLITE_CLAIM).bindparams(*_TS_PARAMS), params)
            claimed = [r._mapping for r in result]
            details: dict[str, Any] = {}
            if claimed:
                found = await conn.execute(
                    text(_SQLITE_CLAIMED_DETAILS), {"ids": json.dumps([r["id"] for r in claimed])}
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


def _row_json(c: Completion, pg: bool) -> dict[str, Any]:
    def ts(value: datetime) -> str:
        return value.isoformat() if pg else sqlite_timestamp(value)

    return {
        "id": c.delivery_id,
        "token": c.claim_token,
        "status": c.status,
        "next_attempt_at": ts(c.next_attempt_at),
        "attempted_at": ts(c.attempted_at),
        "status_code": c.status_code,
        "latency_ms": c.latency_ms,
        "error_class": c.error_class,
        "error": c.error,
        "response_body": c.response_body,
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
    async with write_tx(engine) as conn:
        pg = _is_pg(conn)
        payload = json.dumps([_row_json(c, pg) for c in completions])
        finish = text(_PG_FINISH if pg else _SQLITE_FINISH).bindparams(
            bindparam("now", type_=UTCDateTime())
        )
        updated = {r[0] for r in await conn.execute(finish, {"rows": payload, "now": now})}
        await conn.execute(text(_PG_ATTEMPTS if pg else _SQLITE_ATTEMPTS), {"rows": payload})
        gone = {c.subscription_id: c.disable_reason for c in completions if c.disable_reason}
        for subscription_id, reason in gone.items():
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id, subscriptions.c.enabled.is_(True))
                .values(enabled=False, disabled_reason=reason, updated_at=now)
            )
    return updated


async def release(engine: AsyncEngine, claims: Sequence[tuple[str, str]], *, now: datetime) -> int:
    """Give back claimed rows without an attempt (graceful stop): they are due at ``now``.

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
        .values(claim_token=None, claimed_at=None, next_attempt_at=now)
    )
    count = 0
    async with write_tx(engine) as conn:
        for delivery_id, token in claims:
            result = await conn.execute(statement, {"b_id": delivery_id, "b_token": token})
            count += result.rowcount or 0
    return count


async def next_due_at(engine: AsyncEngine) -> datetime | None:
    """When the earliest pending or failed delivery (or lease) falls due, if any."""
    async with read_tx(engine) as conn:
        value = await conn.scalar(
            select(func.min(deliveries.c.next_attempt_at)).where(
                deliveries.c.status.in_(("pending", "failed"))
            )
        )
    if value is None:
        return None
    if isinstance(value, datetime):
        return UTCDateTime().process_result_value(value, engine.dialect)
    return UTCDateTime().process_result_value(datetime.fromisoformat(str(value)), engine.dialect)
