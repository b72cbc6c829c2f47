"""The intake transaction: audit row, events (one per key) and their outbox rows, all or nothing.

Two implementations of the same steps:

- SQLite: one dedicated writer thread with its own stdlib ``sqlite3`` connection. Concurrent
  callbacks queue up and are committed together (group commit): each gets a SAVEPOINT, the batch
  gets one ``COMMIT`` (one fsync with ``synchronous=FULL``), and only then is any of them answered.
  Nothing is acknowledged before its commit is durable.
- PostgreSQL: one transaction per callback on a raw asyncpg pool; concurrent commits share
  WAL flushes (PostgreSQL group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from payhook.errors import StorageUnavailableError
from payhook.events import EventDraft, EventType, filter_matches, new_id, render_event
from payhook.storage._engine import SQLITE_PRAGMAS
from payhook.storage._tables import (
    sqlite_timestamp,
)

__all__ = ["IntakeRecord", "IntakeResult", "PostgresIntake", "SqliteWriter"]

logger = logging.getLogger("payhook.storage")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeRecord:
    """Everything the intake transaction writes for one callback."""

    channel: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    notification_id: str | None
    drafts: tuple[EventDraft, ...]
    verdict: str = "accepted"  # accepted | refused
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeResult:
    """What the intake transaction did."""

    event_ids: tuple[str, ...]
    new_event_ids: tuple[str, ...]
    new_event_types: tuple[str, ...]
    deliveries: int

    @property
    def is_duplicate(self) -> bool:
        """True when every event already existed (the callback was seen before)."""
        return bool(self.event_ids) and not self.new_event_ids


def _needs_refund_share(draft: EventDraft) -> bool:
    return (
        draft.type is EventType.REFUND_SUCCEEDED
        and draft.refund_amount is None
        and draft.refunded_total is not None
    )


def _with_share(draft: EventDraft, previous_total: int | None) -> EventDraft:
    # Alipay reports the cumulative refunded amount: this refund is the increase over the
    # largest cumulative amount already recorded for the trade.
    assert draft.refunded_total is not None
    return replace(draft, refund_amount=draft.refunded_total - (previous_total or 0))


# --------------------------------------------------------------------------------------------
# SQLite: the writer thread


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _GroupConnection(sqlite3.Connection):
    """The writer's connection; ``group`` holds what the jobs of one group transaction may
    share (read inside it, so no other connection can change it meanwhile: the group holds
    the write lock from BEGIN IMMEDIATE to COMMIT)."""

    group: dict[str, Any]


class SqliteWriter:
    """A thread that owns the only SQLite write connection and commits jobs in groups.

    ``commit_delay_s``: when the previous group held more than one job (callbacks are
    arriving concurrently), the writer waits this long before taking the next group, so
    more jobs share its COMMIT and fsync; an isolated callback is never delayed. The idea
    is PostgreSQL's ``commit_delay`` with ``commit_siblings``. ``sleep`` is injectable for
    tests.
    """

    max_batch = 256

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_s: float = 3.0,
        on_commit: Callable[[], None] | None = None,
        commit_delay_s: float = 0.001,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = path
        self._commit_delay_s = commit_delay_s
        self._sleep = sleep
        # How long a write waits for a lock held elsewhere before the callback gets the
        # provider's "try again" answer (WeChat Pay wants an answer within 5 s).
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._on_commit = on_commit

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="payhook-sqlite-writer", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group transaction; returns once it is durably committed."""
        if self._thread is None:
            raise StorageUnavailableError("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, future))
        return await future

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, factory=_GroupConnection
        )
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        return conn

    def _take(self, batch: list[_Job]) -> bool:
        """Move queued jobs into ``batch`` without waiting; True when asked to stop."""
        while len(batch) < self.max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                return True
            batch.append(more)
        return False

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        previous = 1
        while True:
            job = self._queue.get()
            if job is None:
                break
            batch = [job]
            stop = self._take(batch)
            if (
                not stop
                and previous > 1
                and len(batch) < self.max_batch
                and self._commit_delay_s > 0
            ):
                self._sleep(self._commit_delay_s)
                stop = self._take(batch)
            previous = len(batch)
            try:
                if conn is None:
                    conn = self._connect()
                self._commit_batch(conn, batch)
            except sqlite3.Error as exc:
                logger.error(
                    "SQLite write failed: %s", exc, extra={"action": "storage_unavailable"}
                )
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                    conn = None
                self._fail(batch, StorageUnavailableError("the SQLite database cannot be written"))
            if stop:
                break
        if conn is not None:
            conn.close()

    def _fail(self, batch: list[_Job], error: Exception) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append((job.future, False, error))
        for loop, results in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, results)

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[tuple[_Job, bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        if isinstance(conn, _GroupConnection):
            conn.group = {}
        try:
            for job in batch:
                results.append((job, True, job.fn(conn)))
            conn.execute("COMMIT")
        except sqlite3.OperationalError:
            # The database itself is in trouble (locked, read-only, I/O): fail the batch.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        except Exception as exc:  # noqa: BLE001 - one job's own failure must not sink the others
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) > 1:
                for job in batch:  # isolate the culprit: each job in its own transaction
                    self._commit_batch(conn, [job])
                return
            results = [(batch[0], False, exc)]
        if self._on_commit is not None and any(ok for _j, ok, _v in results):
            self._on_commit()
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in results:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, settled in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, settled)


_SQLITE_SUBS = "SELECT id, events FROM payhook_subscriptions WHERE enabled = 1"
_SQLITE_FIND = "SELECT id FROM payhook_events WHERE event_key = ?"
# The trade's earlier refunds by a range of the unique event_key index (SQLite compares
# text bytewise): every key that starts with the scope lies in [scope, scope + 1 char).
# SQLite has no index on (provider, merchant_id, transaction_id): see migration 0003.
# "+type" keeps the planner off ix_payhook_events_type (every refund of every trade).
_SQLITE_PREV_REFUND = (
    "SELECT MAX(refunded_total) FROM payhook_events WHERE event_key >= ? AND event_key < ? "
    "AND provider = ? AND merchant_id = ? AND transaction_id = ? "
    "AND +type = 'payment.refund.succeeded' AND refunded_total < ?"
)

# A draft without a scope (no adapter makes one today) is still answered, by a scan.
_SQLITE_PREV_REFUND_SCAN = (
    "SELECT MAX(refunded_total) FROM payhook_events WHERE provider = ? AND merchant_id = ? "
    "AND transaction_id = ? AND type = 'payment.refund.succeeded' AND refunded_total < ?"
)


def _key_range(scope: str) -> tuple[str, str]:
    """The half-open range of keys that start with ``scope`` (bytewise order)."""
    return scope, scope[:-1] + chr(ord(scope[-1]) + 1)


_SQLITE_INSERT_EVENT = (
    "INSERT INTO payhook_events (id, event_key, type, channel, provider, merchant_id, order_id, "
    "transaction_id, refund_id, refunded_total, created_at, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING"
)
_SQLITE_INSERT_DELIVERY = (
    "INSERT INTO payhook_deliveries (id, event_id, subscription_id, status, attempt_count, "
    "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)"
)
_SQLITE_INSERT_NOTIFICATION = (
    "INSERT INTO payhook_notifications (channel, received_at, headers, body, verdict, reason, "
    "notification_id, event_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sqlite_subscriptions(conn: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    # Read once per group transaction (see _GroupConnection), not once per callback.
    group = getattr(conn, "group", None)
    if group is not None and "subscriptions" in group:
        cached: list[tuple[str, list[str]]] = group["subscriptions"]
        return cached
    subs = [(row[0], json.loads(row[1])) for row in conn.execute(_SQLITE_SUBS)]
    if group is not None:
        group["subscriptions"] = subs
    return subs


def sqlite_record(
    record: IntakeRecord, now: datetime
) -> Callable[[sqlite3.Connection], IntakeResult]:
    """The intake transaction for the SQLite writer thread."""

    def run(conn: sqlite3.Connection) -> IntakeResult:
        ts = sqlite_timestamp(now)
        now_ms = int(now.timestamp() * 1000)
        event_ids: list[str] = []
        new_ids: list[str] = []
        new_types: list[str] = []
        count = 0
        subs: list[tuple[str, list[str]]] | None = None
        for draft in record.drafts:
            if _needs_refund_share(draft):
                found = conn.execute(_SQLITE_FIND, (draft.key,)).fetchone()
                if found is not None:
                    event_ids.append(found[0])
                    continue
                trade = (
                    draft.provider, draft.merchant_id, draft.transaction_id, draft.refunded_total
                )  # fmt: skip
                prev = (
                    conn.execute(_SQLITE_PREV_REFUND, (*_key_range(draft.refund_scope), *trade))
                    if draft.refund_scope
                    else conn.execute(_SQLITE_PREV_REFUND_SCAN, trade)
                ).fetchone()
                draft = _with_share(draft, prev[0] if prev else None)
            event_id = new_id("evt", now_ms=now_ms)
            body = render_event(draft, event_id=event_id, channel=record.channel, created_at=now)
            cursor = conn.execute(
                _SQLITE_INSERT_EVENT,
                (
                    event_id, draft.key, str(draft.type), record.channel, draft.provider,
                    draft.merchant_id, draft.order_id, draft.transaction_id, draft.refund_id,
                    draft.refunded_total, ts, body,
                ),
            )  # fmt: skip
            if cursor.rowcount == 0:  # the key exists: a duplicate of a stored fact
                found = conn.execute(_SQLITE_FIND, (draft.key,)).fetchone()
                event_ids.append(found[0])
                continue
            event_ids.append(event_id)
            new_ids.append(event_id)
            new_types.append(str(draft.type))
            if subs is None:
                subs = _sqlite_subscriptions(conn)
            for sub_id, filters in subs:
                if filter_matches(filters, str(draft.type)):
                    conn.execute(
                        _SQLITE_INSERT_DELIVERY,
                        (new_id("dlv", now_ms=now_ms), event_id, sub_id, ts, ts, ts),
                    )
                    count += 1
        verdict = record.verdict
        if verdict == "accepted" and event_ids and not new_ids:
            verdict = "duplicate"
        conn.execute(
            _SQLITE_INSERT_NOTIFICATION,
            (
                record.channel, sqlite_timestamp(record.received_at),
                json.dumps(record.headers), record.body, verdict, record.reason,
                record.notification_id, json.dumps(event_ids) if event_ids else None,
            ),
        )  # fmt: skip
        return IntakeResult(
            event_ids=tuple(event_ids),
            new_event_ids=tuple(new_ids),
            new_event_types=tuple(new_types),
            deliveries=count,
        )

    return run


# --------------------------------------------------------------------------------------------
# PostgreSQL


_PG_INSERT_EVENT = (
    "INSERT INTO payhook_events (id, event_key, type, channel, provider, merchant_id, order_id, "
    "transaction_id, refund_id, refunded_total, created_at, body) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
    "ON CONFLICT (event_key) DO NOTHING RETURNING id"
)
_PG_FIND = "SELECT id FROM payhook_events WHERE event_key = $1"
_PG_LOCK_TRADE = "SELECT pg_advisory_xact_lock(hashtext($1))"
_PG_PREV_REFUND = (
    "SELECT MAX(refunded_total) FROM payhook_events WHERE provider = $1 AND merchant_id = $2 "
    "AND transaction_id = $3 AND type = 'payment.refund.succeeded' AND refunded_total < $4"
)
_PG_SUBS = "SELECT id, events FROM payhook_subscriptions WHERE enabled"
_PG_INSERT_DELIVERIES = (
    "INSERT INTO payhook_deliveries (id, event_id, subscription_id, status, attempt_count, "
    "next_attempt_at, created_at, updated_at) "
    "SELECT d.id, $2, d.sub, 'pending', 0, $3, $3, $3 "
    "FROM unnest($1::text[], $4::text[]) AS d(id, sub)"
)
_PG_INSERT_NOTIFICATION = (
    "INSERT INTO payhook_notifications (channel, received_at, headers, body, verdict, reason, "
    "notification_id, event_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
_PG_NOTIFY = "SELECT pg_notify('payhook_outbox', '')"


class PostgresIntake:
    """The intake transaction on PostgreSQL, on a small asyncpg pool of its own.

    The intake is payhook's hottest path, so it speaks to asyncpg directly (prepared
    statements, no SQL compilation per call): measured here, SQLAlchemy's execution layer
    costs more CPU than PostgreSQL itself for these one-row statements
    (shared/docs/performance-anchors.md §3-§4). Everything else uses SQLAlchemy Core.
    """

    def __init__(self, dsn: str, *, max_size: int = 16) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._max_size, timeout=5,
                        command_timeout=10,
                    )  # fmt: skip
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()

    async def record(self, record: IntakeRecord, now: datetime) -> IntakeResult:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn, conn.transaction():
                return await self._record(conn, record, now)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageUnavailableError("the database cannot take the write") from exc

    async def _record(
        self, conn: asyncpg.Connection, record: IntakeRecord, now: datetime
    ) -> IntakeResult:
        now_ms = int(now.timestamp() * 1000)
        event_ids: list[str] = []
        new_ids: list[str] = []
        new_types: list[str] = []
        count = 0
        subs: list[tuple[str, list[str]]] | None = None
        for draft in record.drafts:
            if _needs_refund_share(draft):
                found = await conn.fetchval(_PG_FIND, draft.key)
                if found is not None:
                    event_ids.append(found)
                    continue
                # Serialise refunds of one trade so each sees the others' cumulative totals.
                await conn.execute(
                    _PG_LOCK_TRADE, f"{draft.provider}:{draft.merchant_id}:{draft.transaction_id}"
                )
                prev = await conn.fetchval(
                    _PG_PREV_REFUND,
                    draft.provider, draft.merchant_id, draft.transaction_id, draft.refunded_total,
                )  # fmt: skip
                draft = _with_share(draft, prev)
            event_id = new_id("evt", now_ms=now_ms)
            body = render_event(draft, event_id=event_id, channel=record.channel, created_at=now)
            inserted = await conn.fetchval(
                _PG_INSERT_EVENT,
                event_id, draft.key, str(draft.type), record.channel, draft.provider,
                draft.merchant_id, draft.order_id, draft.transaction_id, draft.refund_id,
                draft.refunded_total, now, body,
            )  # fmt: skip
            if inserted is None:
                # A copy committed first (ON CONFLICT waited for it): this fact is stored.
                existing = await conn.fetchval(_PG_FIND, draft.key)
                if existing is not None:
                    event_ids.append(existing)
                continue
            event_ids.append(event_id)
            new_ids.append(event_id)
            new_types.append(str(draft.type))
            if subs is None:
                subs = [(r["id"], json.loads(r["events"])) for r in await conn.fetch(_PG_SUBS)]
            matching = [
                sub_id for sub_id, filters in subs if filter_matches(filters, str(draft.type))
            ]
            if matching:
                await conn.execute(
                    _PG_INSERT_DELIVERIES,
                    [new_id("dlv", now_ms=now_ms) for _ in matching], event_id, now, matching,
                )  # fmt: skip
                count += len(matching)
        verdict = record.verdict
        if verdict == "accepted" and event_ids and not new_ids:
            verdict = "duplicate"
        await conn.execute(
            _PG_INSERT_NOTIFICATION,
            record.channel, record.received_at, json.dumps(record.headers), record.body, verdict,
            record.reason, record.notification_id, json.dumps(event_ids) if event_ids else None,
        )  # fmt: skip
        if count:
            await conn.execute(_PG_NOTIFY)
        return IntakeResult(
            event_ids=tuple(event_ids),
            new_event_ids=tuple(new_ids),
            new_event_types=tuple(new_types),
            deliveries=count,
        )
