"""The intake transaction on SQLite and PostgreSQL: one event per fact, outbox rows with it."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from payhook._clock import SystemClock
from payhook.errors import StorageUnavailableError
from payhook.events import EventDraft, EventType
from payhook.storage import IntakeRecord, Store
from payhook.storage._tables import deliveries, events, notifications, subscriptions
from tests._faults import unwritable_sqlite

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)


def paid(key: str = "alipay:app:T1:payment.order.paid") -> EventDraft:
    return EventDraft(
        type=EventType.ORDER_PAID,
        key=key,
        provider="alipay",
        merchant_id="app",
        order_id="ORDER-1",
        transaction_id="T1",
        amount=8888,
        raw={"trade_status": "TRADE_SUCCESS"},
    )


def refund(
    cumulative: int, refund_id: str, *, trade: str = "T1", scoped: bool = True
) -> EventDraft:
    scope = f"alipay:app:{trade}:refund:"
    return EventDraft(
        type=EventType.REFUND_SUCCEEDED,
        key=f"{scope}{refund_id}:{cumulative}",
        provider="alipay",
        merchant_id="app",
        order_id="ORDER-1",
        transaction_id=trade,
        amount=8888,
        refund_id=refund_id,
        refunded_total=cumulative,
        refund_scope=scope if scoped else None,
    )


def record(*drafts: EventDraft, notification_id: str = "n1") -> IntakeRecord:
    return IntakeRecord(
        channel="alipay",
        received_at=NOW,
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"a=1",
        notification_id=notification_id,
        drafts=drafts,
    )


async def verdicts(store: Store) -> dict[str, str]:
    """Each audit row's verdict by its notification id."""
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(select(notifications.c.notification_id, notifications.c.verdict))
        ).all()
    assert len({r.notification_id for r in rows}) == len(rows)
    return {r.notification_id: r.verdict for r in rows}


async def add_subscription(
    store: Store, name: str, filters: list[str], enabled: bool = True
) -> str:
    sub_id = f"sub_{name}"
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(subscriptions).values(
                id=sub_id,
                name=name,
                kind="http",
                url="http://127.0.0.1:1/x",
                events=json.dumps(filters),
                secrets="[]",
                enabled=enabled,
                source="api",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return sub_id


async def count(store: Store, table: object) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)))  # type: ignore[arg-type]


@pytest.fixture
async def store(database_url: str):  # type: ignore[no-untyped-def]
    s = Store(database_url, clock=SystemClock())
    await s.start()
    yield s
    await s.close()


async def test_event_and_outbox_rows(store: Store) -> None:
    """A new event gets one delivery per matching enabled subscription, in the same commit."""
    await add_subscription(store, "orders", ["payment.order.paid", "payment.refund.*"])
    await add_subscription(store, "refunds-only", ["payment.refund.*"])
    await add_subscription(store, "everything-off", ["*"], enabled=False)
    await add_subscription(store, "all", ["*"])
    result = await store.record(record(paid()))
    assert len(result.new_event_ids) == 1
    assert result.deliveries == 2
    assert await count(store, events) == 1
    assert await count(store, deliveries) == 2
    assert await count(store, notifications) == 1
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(events))).one()
    body = json.loads(row.body)
    assert body["id"] == row.id == result.event_ids[0]
    assert body["type"] == "payment.order.paid"
    assert body["data"]["amount"] == 8888
    assert body["data"]["channel"] == "alipay"
    assert row.id.startswith("evt_")


async def test_duplicate_is_one_event(store: Store) -> None:
    """The same fact twice is one event, one set of deliveries, and the second is a duplicate."""
    await add_subscription(store, "all", ["*"])
    first = await store.record(record(paid(), notification_id="first"))
    second = await store.record(record(paid(), notification_id="second"))
    assert not first.is_duplicate
    assert second.is_duplicate
    assert second.event_ids == first.event_ids
    assert await count(store, events) == 1
    assert await count(store, deliveries) == 1
    assert await verdicts(store) == {"first": "accepted", "second": "duplicate"}


async def test_concurrent_copies(store: Store) -> None:
    """20 concurrent copies of one notification make exactly one event and all succeed; the
    copy that stored it is audited ``accepted``, every other one ``duplicate``."""
    await add_subscription(store, "all", ["*"])
    results = await asyncio.gather(
        *(store.record(record(paid(), notification_id=f"n{i}")) for i in range(20))
    )
    assert len({r.event_ids for r in results}) == 1
    assert sum(len(r.new_event_ids) for r in results) == 1
    assert await count(store, events) == 1
    assert await count(store, deliveries) == 1
    assert await verdicts(store) == {
        f"n{i}": "duplicate" if r.is_duplicate else "accepted" for i, r in enumerate(results)
    }


@pytest.mark.parametrize("scoped", [True, False], ids=["key-range", "scan"])
async def test_alipay_refund_share(store: Store, scoped: bool) -> None:
    """Refund amounts are the increase of Alipay's cumulative refund_fee over what was
    recorded for the same trade (found by key range, or by a scan for a draft without a
    scope); a trade whose number extends this one's is another trade."""
    await store.record(record(refund(2500, "X1", trade="T10", scoped=scoped), notification_id="x"))
    first = await store.record(record(refund(1000, "R1", scoped=scoped), notification_id="r1"))
    again = await store.record(record(refund(1000, "R1", scoped=scoped), notification_id="r1b"))
    second = await store.record(record(refund(3000, "R2", scoped=scoped), notification_id="r2"))
    assert again.is_duplicate
    assert again.event_ids == first.event_ids
    assert await verdicts(store) == {
        "x": "accepted", "r1": "accepted", "r1b": "duplicate", "r2": "accepted"
    }  # fmt: skip
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(events.c.id, events.c.body).order_by(events.c.id))).all()
    bodies = {r.id: json.loads(r.body)["data"] for r in rows}
    assert bodies[first.event_ids[0]]["refund_amount"] == 1000
    assert bodies[first.event_ids[0]]["refunded_total"] == 1000
    assert bodies[second.event_ids[0]]["refund_amount"] == 2000
    assert bodies[second.event_ids[0]]["refunded_total"] == 3000


def test_sqlite_refund_lookup_reads_the_key_index(tmp_path: Path) -> None:
    """On SQLite (no trade index since migration 0003) the refund lookup is a range of the
    unique event_key index, not a scan of every event."""
    import sqlite3

    from payhook.storage._tables import metadata
    from payhook.storage.intake._sqlite import SQLITE_PREV_REFUND, key_range

    db = tmp_path / "plan.db"
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{db}")
    metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "ix_payhook_events_trade" not in names
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN " + SQLITE_PREV_REFUND,
                (*key_range("alipay:app:T1:refund:"), "alipay", "app", "T1"),
            )
        )
    assert "event_key>? AND event_key<?" in plan.replace("=", ""), plan
    assert "SCAN" not in plan, plan


async def test_one_notification_many_events(store: Store) -> None:
    """A notification carrying two facts stores both in one transaction."""
    closed = EventDraft(
        type=EventType.ORDER_CLOSED,
        key="alipay:app:T1:payment.order.closed",
        provider="alipay",
        merchant_id="app",
        order_id="ORDER-1",
        transaction_id="T1",
        amount=8888,
    )
    result = await store.record(record(refund(8888, "R9"), closed))
    assert len(result.new_event_ids) == 2
    assert await count(store, events) == 2


async def test_sqlite_unwritable_is_unavailable(sqlite_database_url: str) -> None:
    """A SQLite file that cannot be written gives StorageUnavailableError, never success."""
    db = Path(sqlite_database_url.removeprefix("sqlite+aiosqlite:///"))
    store = Store(sqlite_database_url)
    try:
        with unwritable_sqlite(db):
            await store.start()
            with pytest.raises(StorageUnavailableError):
                await store.record(record(paid()))
        # Writable again: the same store recovers without a restart.
        result = await store.record(record(paid()))
        assert len(result.new_event_ids) == 1
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_down_is_unavailable() -> None:
    """An unreachable PostgreSQL gives StorageUnavailableError."""
    store = Store("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    await store.start()
    try:
        with pytest.raises(StorageUnavailableError):
            await store.record(record(paid()))
    finally:
        await store.close()


async def test_group_commit_isolates_a_failing_job(sqlite_database_url: str) -> None:
    """In a group commit, one job that fails does not sink the others in its batch."""
    from payhook.storage.intake._writer import SqliteWriter

    db = sqlite_database_url.removeprefix("sqlite+aiosqlite:///")
    writer = SqliteWriter(db)
    writer.start()

    def good(n: int):  # type: ignore[no-untyped-def]
        def run(conn):  # type: ignore[no-untyped-def]
            conn.execute(
                "INSERT INTO payhook_notifications (channel, received_at, headers, body, verdict) "
                "VALUES (?, '2026-01-01 00:00:00.000000', '{}', x'00', 'accepted')",
                (f"c{n}",),
            )
            return n

        return run

    def bad(conn):  # type: ignore[no-untyped-def]
        conn.execute(
            "INSERT INTO payhook_notifications (channel, received_at, headers, body, verdict) "
            "VALUES ('bad', '2026-01-01 00:00:00.000000', '{}', x'00', 'accepted')"
        )
        raise ValueError("job bug")

    try:
        results = await asyncio.gather(
            *(writer.run(good(i)) for i in range(5)), writer.run(bad), return_exceptions=True
        )
    finally:
        writer.close()
    assert results[:5] == [0, 1, 2, 3, 4]
    assert isinstance(results[5], ValueError)
    store = Store(sqlite_database_url)
    try:
        async with store.engine.connect() as conn:
            channels = sorted((await conn.execute(select(notifications.c.channel))).scalars())
        assert channels == ["c0", "c1", "c2", "c3", "c4"]
    finally:
        await store.close()


async def test_group_commit_waits_only_when_callbacks_arrive_together(
    sqlite_database_url: str,
) -> None:
    """The commit delay applies after a group of several jobs, never to a lone callback."""
    from payhook.storage.intake._writer import SqliteWriter

    db = sqlite_database_url.removeprefix("sqlite+aiosqlite:///")
    sleeps: list[float] = []
    writer = SqliteWriter(db, commit_delay_s=0.004, sleep=sleeps.append)
    writer.start()
    gate = threading.Event()

    def job(n: int):  # type: ignore[no-untyped-def]
        return lambda _conn: n

    def blocked(_conn):  # type: ignore[no-untyped-def]
        gate.wait(10)
        return 0

    try:
        assert await writer.run(job(1)) == 1  # alone: no delay, and none for the next one
        assert await writer.run(job(2)) == 2
        assert sleeps == []
        # Three jobs queue up while the writer is busy: they become one group.
        first = asyncio.ensure_future(writer.run(blocked))
        await asyncio.sleep(0.05)
        group = [asyncio.ensure_future(writer.run(job(n))) for n in (3, 4, 5)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await first == 0
        assert await asyncio.gather(*group) == [3, 4, 5]
        assert sleeps == []  # the group itself was not delayed: its predecessor was alone
        assert await writer.run(job(6)) == 6  # after a group of three: one delay
        assert sleeps == [0.004]
        assert await writer.run(job(7)) == 7  # after a lone job: none
        assert sleeps == [0.004]
    finally:
        gate.set()
        writer.close()


async def test_failing_step_stores_nothing_and_the_next_callback_works(store: Store) -> None:
    """A step that fails (here a subscription whose filters are not JSON) rolls back the
    whole callback, raises to the caller, and leaves the database ready for the next one."""
    sub_id = await add_subscription(store, "broken", ["*"])
    async with store.engine.begin() as conn:
        await conn.execute(
            subscriptions.update().where(subscriptions.c.id == sub_id).values(events="{nope")
        )
    with pytest.raises(json.JSONDecodeError):
        await store.record(record(paid(), notification_id="broken"))
    assert await count(store, events) == 0
    assert await count(store, notifications) == 0
    async with store.engine.begin() as conn:
        await conn.execute(
            subscriptions.update().where(subscriptions.c.id == sub_id).values(events='["*"]')
        )
    result = await store.record(record(paid(), notification_id="fixed"))
    assert result.deliveries == 1
    assert await verdicts(store) == {"fixed": "accepted"}
