"""Refund sums (contract §9, issue 16): the refund_amount values of a trade's Alipay refund
events add up to the largest cumulative refunded_total seen, whatever the arrival order,
duplicates, failed attempts and retries, on SQLite and PostgreSQL.

Mutation check (issue 14): turning MAX into MIN in either driver's previous-total query fails
``test_three_refunds_in_every_order`` and the Hypothesis test; removing the PostgreSQL
per-trade advisory lock fails ``test_concurrent_refunds_of_one_trade``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from payhook._clock import SystemClock
from payhook.events import EventDraft, EventType
from payhook.storage import IntakeRecord, Store
from payhook.storage._tables import deliveries, events, subscriptions
from tests.integration.storage.test_intake import add_subscription

pytestmark = pytest.mark.anyio

_TRADES = itertools.count(1)


def new_trade() -> str:
    """A trade number no other example of the test has used (one database per test)."""
    return f"2026120122001{next(_TRADES):06d}"


def refund(trade: str, refund_id: str, cumulative: int, *, scoped: bool = True) -> EventDraft:
    """An Alipay refund as the adapter drafts it: cumulative refund_fee, no amount of its own
    (``scoped=False``: without the key prefix, so SQLite answers by a scan)."""
    scope = f"alipay:app:{trade}:refund:"
    return EventDraft(
        type=EventType.REFUND_SUCCEEDED,
        key=f"{scope}{refund_id}:{cumulative}",
        provider="alipay",
        merchant_id="app",
        order_id=f"ORDER-{trade}",
        transaction_id=trade,
        amount=10000,
        refund_id=refund_id,
        refunded_total=cumulative,
        refund_scope=scope if scoped else None,
    )


def paid(trade: str) -> EventDraft:
    return EventDraft(
        type=EventType.ORDER_PAID,
        key=f"alipay:app:{trade}:payment.order.paid",
        provider="alipay",
        merchant_id="app",
        order_id=f"ORDER-{trade}",
        transaction_id=trade,
        amount=10000,
    )


def callback(draft: EventDraft) -> IntakeRecord:
    return IntakeRecord(
        channel="alipay",
        received_at=SystemClock().now(),
        headers={},
        body=b"a=1",
        notification_id=None,
        drafts=(draft,),
    )


@dataclass(frozen=True)
class Stored:
    refund_id: str
    refund_amount: int
    refunded_total: int


async def stored_refunds(store: Store, trade: str) -> list[Stored]:
    """The trade's refund events as stored: the body's amounts, the row's columns."""
    query = select(events.c.refund_id, events.c.refunded_total, events.c.body).where(
        events.c.transaction_id == trade, events.c.type == str(EventType.REFUND_SUCCEEDED)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = []
    for row in rows:
        data = json.loads(row.body)["data"]
        assert (data["refund_id"], data["refunded_total"]) == (row.refund_id, row.refunded_total)
        found.append(Stored(row.refund_id, data["refund_amount"], row.refunded_total))
    return found


def assert_sum_rule(stored: list[Stored]) -> None:
    """Contract §9: one event per refund id, amounts never negative, adding up to the
    largest cumulative total seen."""
    ids = [s.refund_id for s in stored]
    assert len(ids) == len(set(ids)), ids
    assert all(s.refund_amount >= 0 for s in stored), stored
    largest = max((s.refunded_total for s in stored), default=0)
    assert sum(s.refund_amount for s in stored) == largest, stored


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = Store(database_url, clock=SystemClock())
    await s.start()
    yield s
    await s.close()


async def test_reported_scenario(store: Store) -> None:
    """Issue 16: 100.00 paid, then RF-2 (refund_fee 30.00) before RF-1 (10.00): RF-2 gets
    30.00, RF-1 gets 0 (30.00 in all, not 40.00). RF-1 is still an event of its own with its
    deliveries, and Alipay's retry of it is a duplicate."""
    await add_subscription(store, "all", ["*"])
    trade = new_trade()
    await store.record(callback(paid(trade)))
    rf2 = await store.record(callback(refund(trade, "RF-2", 3000)))
    rf1 = await store.record(callback(refund(trade, "RF-1", 1000)))
    retry = await store.record(callback(refund(trade, "RF-1", 1000)))
    assert rf2.new_event_ids
    assert rf1.new_event_ids
    assert (rf2.deliveries, rf1.deliveries) == (1, 1)
    assert retry.is_duplicate
    assert retry.event_ids == rf1.event_ids
    stored = {s.refund_id: s for s in await stored_refunds(store, trade)}
    assert stored == {
        "RF-2": Stored("RF-2", 3000, 3000),
        "RF-1": Stored("RF-1", 0, 1000),
    }
    async with store.engine.connect() as conn:
        assert len((await conn.execute(select(deliveries.c.id))).all()) == 3


@pytest.mark.parametrize("scoped", [True, False], ids=["key-range", "scan"])
@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(3))), ids=lambda o: "".join(map(str, o))
)
async def test_three_refunds_in_every_order(
    store: Store, order: tuple[int, ...], scoped: bool
) -> None:
    """Three refunds of 10.00, 20.00 and 30.00 (cumulative 10, 30, 60) in each of the six
    arrival orders: the amounts add up to 60.00 and each refund's share is the increase over
    the largest total recorded before it."""
    totals = [1000, 3000, 6000]
    trade = new_trade()
    recorded: list[int] = []
    for i in order:
        await store.record(callback(refund(trade, f"RF-{i + 1}", totals[i], scoped=scoped)))
        expected = max(0, totals[i] - max(recorded, default=0))
        recorded.append(totals[i])
        stored = {s.refund_id: s.refund_amount for s in await stored_refunds(store, trade)}
        assert stored[f"RF-{i + 1}"] == expected, (order, stored)
    stored_list = await stored_refunds(store, trade)
    assert_sum_rule(stored_list)
    assert sum(s.refund_amount for s in stored_list) == 6000


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[int], list[list[tuple[int, bool]]]]:
    """Cumulative totals of 3 to 5 refunds, and the rounds of their arrival.

    Each refund arrives 1 to 3 times in a shuffled order (duplicates: a retry or a re-sent
    envelope); an attempt other than a refund's last may fail (its transaction is rolled back
    and Alipay retries later). A round is one failing attempt alone, or a few attempts
    recorded concurrently.
    """
    increments = draw(st.lists(st.integers(1, 3000), min_size=3, max_size=5))
    totals = list(itertools.accumulate(increments))
    copies = [draw(st.integers(1, 3)) for _ in totals]
    items = [i for i, n in enumerate(copies) for _ in range(n)]
    order = draw(st.permutations(items))
    last = {i: position for position, i in enumerate(order)}
    rounds: list[list[tuple[int, bool]]] = []
    batch: list[tuple[int, bool]] = []
    for position, i in enumerate(order):
        if last[i] != position and draw(st.booleans()):
            if batch:
                rounds.append(batch)
                batch = []
            rounds.append([(i, True)])
            continue
        batch.append((i, False))
        if draw(st.integers(0, 2)) == 0:  # end the concurrent batch here
            rounds.append(batch)
            batch = []
    if batch:
        rounds.append(batch)
    return totals, rounds


async def break_subscriptions(store: Store, broken: bool) -> None:
    """A subscription whose filters are not JSON makes the intake fail after the refund's
    insert (when it reads the subscriptions), so the whole transaction rolls back."""
    async with store.engine.begin() as conn:
        await conn.execute(
            subscriptions.update()
            .where(subscriptions.c.id == "sub_all")
            .values(events="{nope" if broken else '["*"]')
        )


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(case=arrivals())
async def test_refund_sums_hold_in_any_arrival_order(
    store: Store, case: tuple[list[int], list[list[tuple[int, bool]]]]
) -> None:
    """Arrival permutations of 3 to 5 refunds of one trade with duplicates, failed attempts
    and their retries, some concurrent: after every round the stored amounts add up to the
    largest total stored, and at the end each refund id is one event and the amounts add up
    to the last cumulative total."""
    totals, rounds = case
    if not await _has_subscription(store):
        await add_subscription(store, "all", ["*"])
    trade = new_trade()
    stored_ids: set[str] = set()
    for attempts in rounds:
        if attempts[0][1]:  # a failing attempt: nothing of it is stored
            await break_subscriptions(store, True)
            i = attempts[0][0]
            attempt = callback(refund(trade, f"RF-{i}", totals[i]))
            try:
                if f"RF-{i}" in stored_ids:  # a stored fact's copy reads no subscriptions
                    assert (await store.record(attempt)).is_duplicate
                else:
                    with pytest.raises(json.JSONDecodeError):
                        await store.record(attempt)
            finally:
                await break_subscriptions(store, False)
        else:
            await asyncio.gather(
                *(store.record(callback(refund(trade, f"RF-{i}", totals[i]))) for i, _ in attempts)
            )
        stored = await stored_refunds(store, trade)
        assert_sum_rule(stored)
        stored_ids = {s.refund_id for s in stored}
    stored = await stored_refunds(store, trade)
    assert sorted(s.refund_id for s in stored) == sorted(f"RF-{i}" for i in range(len(totals)))
    assert {s.refund_id: s.refunded_total for s in stored} == {
        f"RF-{i}": total for i, total in enumerate(totals)
    }
    assert sum(s.refund_amount for s in stored) == totals[-1]


async def _has_subscription(store: Store) -> bool:
    async with store.engine.connect() as conn:
        return (await conn.scalar(select(subscriptions.c.id))) is not None


async def test_concurrent_refunds_of_one_trade(store: Store) -> None:
    """Five refunds of one trade recorded at the same time, and again on nine more trades:
    the per-trade lock (PostgreSQL's advisory lock, SQLite's write lock) makes each see the
    totals the others committed, so no money is counted twice."""
    totals = [700, 1500, 2600, 4000, 5000]
    for _ in range(10):
        trade = new_trade()
        results = await asyncio.gather(
            *(store.record(callback(refund(trade, f"RF-{i}", t))) for i, t in enumerate(totals))
        )
        assert all(r.new_event_ids for r in results)
        stored = await stored_refunds(store, trade)
        assert len(stored) == len(totals)
        assert_sum_rule(stored)
        assert sum(s.refund_amount for s in stored) == totals[-1]
