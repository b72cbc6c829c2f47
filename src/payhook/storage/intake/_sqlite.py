"""The intake flow on SQLite, run by the writer thread inside its group transactions.

Each callback is one job of :class:`SqliteWriter`: the job drives :func:`intake_flow` with
the writer's stdlib ``sqlite3`` connection, so many callbacks share one ``COMMIT`` and
fsync; the group holds the write lock from ``BEGIN IMMEDIATE``, so refunds of one trade
need no lock of their own and subscriptions are read once per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, assert_never

from payhook._stores import RefusedCallback
from payhook.storage._tables import sqlite_timestamp
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
    SubscriptionFilters,
    parse_subscriptions,
)
from payhook.storage.intake._writer import GroupConnection, SqliteWriter

__all__ = ["SQLITE_PREV_REFUND", "SqliteIntake", "key_range", "run_intake"]

_SUBSCRIPTIONS = "SELECT id, events FROM payhook_subscriptions WHERE enabled = 1"
_FIND = "SELECT id FROM payhook_events WHERE event_key = ?"
# The largest cumulative total among the trade's refunds (all of them, whatever their
# arrival order), by a range of the unique event_key index (SQLite compares
# text bytewise): every key that starts with the scope lies in [scope, scope + 1 char).
# SQLite has no index on (provider, merchant_id, transaction_id): see migration 0003.
# "+type" keeps the planner off ix_payhook_events_type (every refund of every trade).
SQLITE_PREV_REFUND = (
    "SELECT MAX(refunded_total) FROM payhook_events WHERE event_key >= ? AND event_key < ? "
    "AND provider = ? AND merchant_id = ? AND transaction_id = ? "
    "AND +type = 'payment.refund.succeeded'"
)
# A draft without a scope (no adapter makes one today) is still answered, by a scan.
_PREV_REFUND_SCAN = (
    "SELECT MAX(refunded_total) FROM payhook_events WHERE provider = ? AND merchant_id = ? "
    "AND transaction_id = ? AND type = 'payment.refund.succeeded'"
)
_INSERT_EVENT = (
    "INSERT INTO payhook_events (id, event_key, type, channel, provider, merchant_id, order_id, "
    "transaction_id, refund_id, refunded_total, created_at, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING"
)
_INSERT_DELIVERY = (
    "INSERT INTO payhook_deliveries (id, event_id, subscription_id, status, attempt_count, "
    "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)"
)
_INSERT_NOTIFICATION = (
    "INSERT INTO payhook_notifications (channel, received_at, headers, body, verdict, "
    "notification_id, event_ids) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_REFUSED = (
    "INSERT INTO payhook_refused_callbacks (channel, received_at, reason, remote_addr, size, "
    "digest, excerpt) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def key_range(scope: str) -> tuple[str, str]:
    """The half-open range of keys that start with ``scope`` (bytewise order)."""
    return scope, scope[:-1] + chr(ord(scope[-1]) + 1)


def _subscriptions(conn: GroupConnection) -> list[SubscriptionFilters]:
    # Read once per group transaction (GroupConnection.group), not once per callback.
    cached: list[SubscriptionFilters] | None = conn.group.get("subscriptions")
    if cached is None:
        cached = conn.group["subscriptions"] = parse_subscriptions(conn.execute(_SUBSCRIPTIONS))
    return cached


class _Steps:
    """One callback's steps on the writer's connection."""

    __slots__ = ("_conn", "_now", "_now_text")

    def __init__(self, conn: GroupConnection, now: datetime) -> None:
        self._conn = conn
        self._now = now
        self._now_text = sqlite_timestamp(now)

    def _text(self, value: datetime) -> str:
        # The flow stamps every row of a callback with the same ``now``: converted once.
        return self._now_text if value is self._now else sqlite_timestamp(value)

    def execute(self, step: Step) -> Any:
        conn = self._conn
        match step:
            case InsertEvent(draft=d):
                cursor = conn.execute(
                    _INSERT_EVENT,
                    (
                        step.event_id, d.key, str(d.type), step.channel, d.provider,
                        d.merchant_id, d.order_id, d.transaction_id, d.refund_id,
                        d.refunded_total, self._text(step.created_at), step.body,
                    ),
                )  # fmt: skip
                return cursor.rowcount > 0
            case InsertNotification():
                conn.execute(
                    _INSERT_NOTIFICATION,
                    (
                        step.channel, sqlite_timestamp(step.received_at), step.headers,
                        step.body, step.verdict, step.notification_id, step.event_ids,
                    ),
                )  # fmt: skip
                return None
            case ReadSubscriptions():
                return _subscriptions(conn)
            case InsertDeliveries(event_id=event_id):
                due = self._text(step.due_at)
                for delivery_id, sub_id in zip(
                    step.delivery_ids, step.subscription_ids, strict=True
                ):
                    conn.execute(_INSERT_DELIVERY, (delivery_id, event_id, sub_id, due, due, due))
                return None
            case FindEvent():
                found = conn.execute(_FIND, (step.key,)).fetchone()
                return None if found is None else found[0]
            case LockTrade():
                return None  # the group transaction holds the database write lock
            case PreviousRefundTotal():
                trade = (step.provider, step.merchant_id, step.transaction_id)
                if step.scope:
                    row = conn.execute(SQLITE_PREV_REFUND, (*key_range(step.scope), *trade))
                else:
                    row = conn.execute(_PREV_REFUND_SCAN, trade)
                return row.fetchone()[0]
            case _:
                assert_never(step)


def run_intake(conn: GroupConnection, record: IntakeRecord, now: datetime) -> IntakeResult:
    """The intake transaction's work for one callback, on the writer's open transaction."""
    execute = _Steps(conn, now).execute
    flow = intake_flow(record, now)
    answer: Any = None
    try:
        while True:
            answer = execute(flow.send(answer))
    except StopIteration as stop:
        result: IntakeResult = stop.value
        return result


def _nothing(_conn: GroupConnection) -> None:
    return None


def _refused_rows(records: Sequence[RefusedCallback]) -> list[tuple[Any, ...]]:
    return [
        (
            r.channel, sqlite_timestamp(r.received_at), r.reason, r.remote_addr, r.size,
            r.digest, r.excerpt,
        )
        for r in records
    ]  # fmt: skip


class SqliteIntake:
    """The intake on SQLite: one writer thread (started here) owning the only write connection.

    Args:
        path: the database file.
        busy_timeout_s: how long a write waits for a lock held by another process.
        commit_delay_s: see :class:`SqliteWriter`.
    """

    def __init__(self, path: str, *, busy_timeout_s: float, commit_delay_s: float = 0.001) -> None:
        self._writer = SqliteWriter(
            path, busy_timeout_s=busy_timeout_s, commit_delay_s=commit_delay_s
        )
        self._writer.start()

    async def record(self, record: IntakeRecord, now: datetime) -> IntakeResult:
        return await self._writer.run(lambda conn: run_intake(conn, record, now))

    async def write_refused(self, records: Sequence[RefusedCallback]) -> None:
        rows = _refused_rows(records)

        def insert(conn: GroupConnection) -> None:
            conn.executemany(_INSERT_REFUSED, rows)

        await self._writer.run_background(insert)

    async def ping(self) -> None:
        # Another process may hold the write lock while reads still work.
        await self._writer.run(_nothing)

    async def close(self) -> None:
        self._writer.close()
