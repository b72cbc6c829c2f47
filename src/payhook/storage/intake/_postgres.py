"""The intake flow on PostgreSQL: one transaction per callback, on the engine's own pool.

The intake is payhook's hottest path, so its steps run on the pooled connection's asyncpg
connection (prepared statements, no SQL compilation per call), taken from SQLAlchemy's pool
through ``raw_connection()`` (``_txn.pg_driver``): measured here, SQLAlchemy's execution
layer costs more CPU than PostgreSQL itself for these one-row statements
(shared/docs/performance-anchors.md §3-§4). Concurrent commits share WAL flushes
(PostgreSQL's own group commit); ``ON CONFLICT`` makes concurrent copies of one fact wait
for each other, so exactly one inserts it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, assert_never

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._stores import RefusedCallback
from payhook.storage._txn import pg_driver
from payhook.storage.intake._flow import IntakeRecord, IntakeResult, intake_flow
from payhook.storage.intake._steps import (
    FindEvent,
    InsertDeliveries,
    InsertEvent,
    InsertNotification,
    LockTrade,
    PreviousRefundTotal,
    ReadSubscriptions,
    Step,
    parse_subscriptions,
)

__all__ = ["PostgresIntake"]

# A statement that takes longer has lost its connection or its lock: the callback gets the
# provider's "try again" answer and the connection is dropped (WeChat Pay waits 5 s at most).
_STATEMENT_TIMEOUT_S = 10.0

_INSERT_EVENT = (
    "INSERT INTO payhook_events (id, event_key, type, channel, provider, merchant_id, order_id, "
    "transaction_id, refund_id, refunded_total, created_at, body) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
    "ON CONFLICT (event_key) DO NOTHING RETURNING id"
)
_FIND = "SELECT id FROM payhook_events WHERE event_key = $1"
_LOCK_TRADE = "SELECT pg_advisory_xact_lock(hashtext($1))"
# The largest cumulative total of the trade's refunds, read under the trade's advisory lock
# (LockTrade). The trade index (ix_payhook_events_trade) answers it; no key range needed.
_PREV_REFUND = (
    "SELECT MAX(refunded_total) FROM payhook_events WHERE provider = $1 AND merchant_id = $2 "
    "AND transaction_id = $3 AND type = 'payment.refund.succeeded'"
)
_SUBSCRIPTIONS = "SELECT id, events FROM payhook_subscriptions WHERE enabled"
_INSERT_DELIVERIES = (
    "INSERT INTO payhook_deliveries (id, event_id, subscription_id, status, attempt_count, "
    "next_attempt_at, created_at, updated_at) "
    "SELECT d.id, $2, d.sub, 'pending', 0, $3, $3, $3 "
    "FROM unnest($1::text[], $4::text[]) AS d(id, sub)"
)
_INSERT_NOTIFICATION = (
    "INSERT INTO payhook_notifications (channel, received_at, headers, body, verdict, "
    "notification_id, event_ids) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
# A batch of refused-callback audit records in one statement (one transaction, one flush).
_INSERT_REFUSED = (
    "INSERT INTO payhook_refused_callbacks (channel, received_at, reason, remote_addr, size, "
    "digest, excerpt) SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], "
    "$4::text[], $5::int[], $6::text[], $7::text[])"
)
# Sent at commit: wakes the dispatchers LISTENing in other processes.
_NOTIFY = "SELECT pg_notify('payhook_outbox', '')"


async def _execute(conn: Any, step: Step) -> Any:
    timeout = _STATEMENT_TIMEOUT_S
    match step:
        case InsertEvent(draft=d):
            inserted = await conn.fetchval(
                _INSERT_EVENT,
                step.event_id, d.key, str(d.type), step.channel, d.provider, d.merchant_id,
                d.order_id, d.transaction_id, d.refund_id, d.refunded_total, step.created_at,
                step.body, timeout=timeout,
            )  # fmt: skip
            return inserted is not None
        case InsertNotification():
            await conn.execute(
                _INSERT_NOTIFICATION,
                step.channel, step.received_at, step.headers, step.body, step.verdict,
                step.notification_id, step.event_ids, timeout=timeout,
            )  # fmt: skip
            return None
        case ReadSubscriptions():
            rows = await conn.fetch(_SUBSCRIPTIONS, timeout=timeout)
            return parse_subscriptions((row[0], row[1]) for row in rows)
        case InsertDeliveries():
            await conn.execute(
                _INSERT_DELIVERIES,
                step.delivery_ids, step.event_id, step.due_at, step.subscription_ids,
                timeout=timeout,
            )  # fmt: skip
            return None
        case FindEvent():
            return await conn.fetchval(_FIND, step.key, timeout=timeout)
        case LockTrade():
            await conn.execute(_LOCK_TRADE, step.key, timeout=timeout)
            return None
        case PreviousRefundTotal():
            return await conn.fetchval(
                _PREV_REFUND, step.provider, step.merchant_id, step.transaction_id,
                timeout=timeout,
            )  # fmt: skip
        case _:
            assert_never(step)


class PostgresIntake:
    """The intake on PostgreSQL, on a connection of ``engine``'s pool per callback.

    Connections that fail are dropped from the pool, and a failure that means "the database
    cannot answer now" is StorageUnavailableError (``_txn.pg_driver``).
    """

    # How often a refused-callback write waiting for a spare pool connection looks again.
    spare_poll_s = 0.01

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._engine = engine
        self._sleep = sleep

    async def record(self, record: IntakeRecord, now: datetime) -> IntakeResult:
        flow = intake_flow(record, now)
        timeout = _STATEMENT_TIMEOUT_S
        async with pg_driver(self._engine) as conn:
            await conn.execute("BEGIN", timeout=timeout)
            try:
                answer: Any = None
                try:
                    while True:
                        answer = await _execute(conn, flow.send(answer))
                except StopIteration as stop:
                    result: IntakeResult = stop.value
                if result.deliveries:
                    await conn.execute(_NOTIFY, timeout=timeout)
                await conn.execute("COMMIT", timeout=timeout)
            except BaseException:
                if conn.is_in_transaction():
                    # If even this fails, pg_driver drops the connection (still in a transaction).
                    with contextlib.suppress(
                        asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError
                    ):
                        await conn.execute("ROLLBACK", timeout=timeout)
                raise
        return result

    async def write_refused(self, records: Sequence[RefusedCallback]) -> None:
        """Insert refused-callback audit records in one statement, on a connection the pool
        can spare: never while callbacks hold every connection of its base size."""
        await self._spare_connection()
        async with pg_driver(self._engine) as conn:
            await conn.execute(
                _INSERT_REFUSED,
                [r.channel for r in records], [r.received_at for r in records],
                [r.reason for r in records], [r.remote_addr for r in records],
                [r.size for r in records], [r.digest for r in records],
                [r.excerpt for r in records], timeout=_STATEMENT_TIMEOUT_S,
            )  # fmt: skip

    async def _spare_connection(self) -> None:
        pool = self._engine.pool
        size = getattr(pool, "size", None)
        checkedout = getattr(pool, "checkedout", None)
        if not callable(size) or not callable(checkedout):
            return  # not a queue pool: nothing to share
        while checkedout() >= size():
            await self._sleep(self.spare_poll_s)

    async def ping(self) -> None:
        return None  # the engine's ping is the test: intake uses the same pool

    async def close(self) -> None:
        return None  # the pool is the engine's: the Store disposes of it
