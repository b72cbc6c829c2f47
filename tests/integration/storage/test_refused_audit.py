"""The refused-callback audit on real SQLite and PostgreSQL: its own table, lower priority
than callbacks, bounded by a budget, every lost record counted (contract §14)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from payhook._clock import SystemClock
from payhook._stores import RefusedCallback
from payhook.storage import Store
from payhook.storage._engine import create_engine
from payhook.storage._tables import notifications, refused_callbacks
from payhook.storage.intake import PostgresIntake
from payhook.storage.intake._writer import SqliteWriter
from tests._faults import locked_sqlite
from tests.integration.storage.test_intake import paid, record

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 2, 9, 0, 1, 250000, tzinfo=UTC)


def refused(n: int, body: bytes | None = None) -> RefusedCallback:
    return RefusedCallback.build(
        channel="alipay",
        received_at=NOW,
        reason="bad_signature",
        remote_addr=f"203.0.113.{n}",
        headers={"content-type": "text/plain", "authorization": "Bearer nope"},
        body=f"n={n}".encode() if body is None else body,
    )


class Drops:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, channel: str, cause: str) -> None:
        self.seen.append((channel, cause))


async def rows(store: Store) -> Sequence[Any]:
    async with store.engine.connect() as conn:
        result = await conn.execute(select(refused_callbacks).order_by(refused_callbacks.c.id))
        return result.all()


async def test_refused_records_have_their_own_table(database_url: str) -> None:
    """Records land in payhook_refused_callbacks as built (any bytes made text), never in
    payhook_notifications; close writes what is still queued."""
    drops = Drops()
    store = Store(database_url, clock=SystemClock(), on_audit_dropped=drops)
    await store.start()
    hostile = b"\x00\xff<xml>" + "支付".encode() + b"\x1b" * 3000
    try:
        store.audit_refused("alipay", lambda: refused(1))
        store.audit_refused("alipay", lambda: refused(2, hostile))
    finally:
        await store.close()
    assert drops.seen == []
    reopened = Store(database_url)
    try:
        written = await rows(reopened)
        async with reopened.engine.connect() as conn:
            callbacks = await conn.scalar(select(func.count()).select_from(notifications))
    finally:
        await reopened.close()
    assert callbacks == 0
    assert [(r.channel, r.reason, r.remote_addr, r.received_at) for r in written] == [
        ("alipay", "bad_signature", "203.0.113.1", NOW),
        ("alipay", "bad_signature", "203.0.113.2", NOW),
    ]
    first, second = written
    assert first.excerpt == "content-type: text/plain\nauthorization: ***\n\nn=1"
    assert (first.size, first.digest) == (3, hashlib.sha256(b"n=1").hexdigest())
    assert second.excerpt == refused(2, hostile).excerpt
    assert second.excerpt.startswith(
        "content-type: text/plain\nauthorization: ***\n\n\\x00\\xff<xml>支付\\x1b"
    )
    assert len(second.excerpt.encode("utf-8")) <= 2048
    assert (second.size, second.digest) == (len(hostile), hashlib.sha256(hostile).hexdigest())


class TightStore(Store):
    audit_burst = 5
    audit_rate_per_s = 0.0


async def test_a_flood_is_audited_within_the_budget_and_the_rest_counted(
    database_url: str,
) -> None:
    """Past the budget records are dropped, each counted: written + dropped = refused."""
    drops = Drops()
    store = TightStore(database_url, clock=SystemClock(), on_audit_dropped=drops)
    await store.start()
    try:
        for n in range(20):
            store.audit_refused("alipay", functools.partial(refused, n))
    finally:
        await store.close()
    reopened = Store(database_url)
    try:
        written = await rows(reopened)
    finally:
        await reopened.close()
    assert [r.remote_addr for r in written] == [f"203.0.113.{n}" for n in range(5)]
    assert drops.seen == [("alipay", "rate")] * 15
    assert store.audits_written == 5


async def test_audit_that_cannot_be_written_is_counted(sqlite_database_url: str) -> None:
    """A locked database: the audit records are lost and counted (``write_failed``)."""
    drops = Drops()
    store = Store(
        sqlite_database_url,
        clock=SystemClock(),
        on_audit_dropped=drops,
        sqlite_busy_timeout_s=0.05,
    )
    await store.start()
    db = Path(sqlite_database_url.removeprefix("sqlite+aiosqlite:///"))
    try:
        with locked_sqlite(db):
            store.audit_refused("alipay", lambda: refused(1))
            store.audit_refused("alipay", lambda: refused(2))
            while len(drops.seen) < 2:
                await asyncio.sleep(0.01)
        # The database is back: the next records are written.
        store.audit_refused("alipay", lambda: refused(3))
    finally:
        await store.close()
    assert drops.seen == [("alipay", "write_failed")] * 2
    assert store.audits_written == 1


async def test_sqlite_writer_serves_callbacks_before_background_jobs(
    sqlite_database_url: str,
) -> None:
    """Jobs queued while the writer is busy: every callback job runs before any background
    job, whatever the order they came in."""
    db = sqlite_database_url.removeprefix("sqlite+aiosqlite:///")
    writer = SqliteWriter(db, commit_delay_s=0)
    writer.start()
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []

    def blocked(_conn: Any) -> None:
        busy.set()
        release.wait(30)

    def job(name: str) -> Any:
        return lambda _conn: order.append(name)

    try:
        first = asyncio.ensure_future(writer.run(blocked))
        await asyncio.to_thread(busy.wait, 30)
        queued = [
            asyncio.ensure_future(writer.run_background(job("audit-1"))),
            asyncio.ensure_future(writer.run(job("callback-1"))),
            asyncio.ensure_future(writer.run_background(job("audit-2"))),
            asyncio.ensure_future(writer.run(job("callback-2"))),
        ]
        await asyncio.sleep(0)  # each submission reaches the writer's queue
        release.set()
        await first
        await asyncio.gather(*queued)
        # A callback arriving while background work is pending still goes first.
        busy.clear()
        release.clear()
        first = asyncio.ensure_future(writer.run(blocked))
        await asyncio.to_thread(busy.wait, 30)
        late = [
            asyncio.ensure_future(writer.run_background(job("audit-3"))),
            asyncio.ensure_future(writer.run_background(job("audit-4"))),
        ]
        await asyncio.sleep(0)
        late.append(asyncio.ensure_future(writer.run(job("callback-3"))))
        await asyncio.sleep(0)
        release.set()
        await first
        await asyncio.gather(*late)
    finally:
        release.set()
        writer.close()
    assert order == [
        "callback-1",
        "callback-2",
        "audit-1",
        "audit-2",
        "callback-3",
        "audit-3",
        "audit-4",
    ]


async def test_sqlite_background_jobs_left_at_close_fail(sqlite_database_url: str) -> None:
    """A background job still waiting when the writer stops is failed, never left hanging."""
    db = sqlite_database_url.removeprefix("sqlite+aiosqlite:///")
    writer = SqliteWriter(db)
    writer.start()
    busy, release = threading.Event(), threading.Event()

    def blocked(_conn: Any) -> None:
        busy.set()
        release.wait(30)

    first = asyncio.ensure_future(writer.run(blocked))
    await asyncio.to_thread(busy.wait, 30)
    pending = asyncio.ensure_future(writer.run_background(lambda _conn: None))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(asyncio.to_thread(writer.close))
    while writer._queue.qsize() < 2:  # close() queued its stop behind the background job
        await asyncio.sleep(0.01)
    release.set()
    await first
    await closing
    with pytest.raises(Exception, match=r"stopped|not running"):
        await pending


@pytest.mark.postgres
async def test_postgres_audit_waits_for_a_spare_connection(postgres_database_url: str) -> None:
    """While callbacks hold every connection of the pool, an audit write waits (it takes no
    connection a callback needs); it goes ahead once one is free."""
    engine = create_engine(postgres_database_url, pool_size=2, max_overflow=0)
    waits = asyncio.Event()
    polls: list[float] = []

    async def sleep(seconds: float) -> None:
        polls.append(seconds)
        waits.set()
        await asyncio.sleep(0.001)

    intake = PostgresIntake(engine, sleep=sleep)
    try:
        held = [await engine.connect() for _ in range(2)]  # callbacks hold the whole pool
        write = asyncio.ensure_future(intake.write_refused([refused(1), refused(2)]))
        await waits.wait()
        assert not write.done()
        for conn in held:
            await conn.close()
        await write
        async with engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(refused_callbacks))
        assert count == 2
        assert polls
    finally:
        await engine.dispose()


async def test_callbacks_and_audits_share_the_writer(database_url: str) -> None:
    """Callbacks recorded while audit records are written all commit, and both are kept."""
    drops = Drops()
    store = Store(database_url, clock=SystemClock(), on_audit_dropped=drops)
    await store.start()
    try:
        for n in range(50):
            store.audit_refused("alipay", functools.partial(refused, n, b"x" * 60_000))
        results = await asyncio.gather(
            *(store.record(record(paid(f"alipay:app:T{n}:payment.order.paid"))) for n in range(20))
        )
    finally:
        await store.close()
    assert all(len(r.new_event_ids) == 1 for r in results)
    assert drops.seen == []
    assert store.audits_written == 50
