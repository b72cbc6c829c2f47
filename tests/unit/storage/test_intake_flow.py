"""The intake algorithm driven by hand: each step it asks for, answered with fake results."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, fields, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, strategies as st

from payhook.errors import StorageUnavailableError
from payhook.events import EventDraft, EventType, new_id
from payhook.storage.intake import IntakeRecord, IntakeResult, intake_flow
from payhook.storage.intake._flow import IntakeFlow, refund_share
from payhook.storage.intake._steps import (
    READ_SUBSCRIPTIONS,
    FindEvent,
    InsertDeliveries,
    InsertEvent,
    InsertNotification,
    LockTrade,
    PreviousRefundTotal,
    Step,
)

NOW = datetime(2026, 11, 28, 1, 2, 3, 456000, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
SCOPE = "alipay:app:T1:refund:"
SUBSCRIPTIONS = [
    ("sub_orders", ["payment.order.paid"]),
    ("sub_refunds", ["payment.refund.*"]),
    ("sub_all", ["*"]),
]


def paid(key: str = "alipay:app:T1:payment.order.paid") -> EventDraft:
    return EventDraft(
        type=EventType.ORDER_PAID,
        key=key,
        provider="alipay",
        merchant_id="app",
        order_id="ORDER-1",
        transaction_id="T1",
        amount=8888,
    )


def refund(cumulative: int, refund_id: str) -> EventDraft:
    return EventDraft(
        type=EventType.REFUND_SUCCEEDED,
        key=f"{SCOPE}{refund_id}:{cumulative}",
        provider="alipay",
        merchant_id="app",
        order_id="ORDER-1",
        transaction_id="T1",
        amount=8888,
        refund_id=refund_id,
        refunded_total=cumulative,
        refund_scope=SCOPE,
    )


def record(*drafts: EventDraft) -> IntakeRecord:
    return IntakeRecord(
        channel="ali",
        received_at=RECEIVED,
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"a=1",
        notification_id="n1",
        drafts=drafts,
    )


class Script:
    """Drives a flow one step at a time, as a database driver would."""

    def __init__(self, flow: IntakeFlow) -> None:
        self._flow = flow
        self._step: Step | None = next(flow)
        self.result: IntakeResult | None = None

    def expect(self, kind: type[Any]) -> Any:
        """The step the flow waits on, checked to be a ``kind``."""
        assert isinstance(self._step, kind), self._step
        return self._step

    def answer(self, value: Any = None) -> None:
        assert self._step is not None, "the flow has finished"
        try:
            self._step = self._flow.send(value)
        except StopIteration as stop:
            self._step, self.result = None, stop.value

    def finish(self) -> IntakeResult:
        """Answer the audit row's insert; returns the flow's result."""
        self.answer()
        assert self._step is None, self._step
        assert self.result is not None
        return self.result


def test_new_event_gets_deliveries_for_matching_subscriptions() -> None:
    """A new event is inserted with its body, then one outbox row per matching subscription,
    then the audit row with the verdict ``accepted``."""
    script = Script(intake_flow(record(paid()), NOW))
    insert = script.expect(InsertEvent)
    assert insert.draft == paid()
    assert insert.channel == "ali"
    assert insert.created_at == NOW
    assert insert.event_id.startswith("evt_")
    body = json.loads(insert.body)
    assert body["id"] == insert.event_id
    assert body["type"] == "payment.order.paid"
    assert body["data"]["channel"] == "ali"
    assert body["created_at"] == "2026-11-28T01:02:03.456Z"
    script.answer(True)
    assert script.expect(type(READ_SUBSCRIPTIONS)) is READ_SUBSCRIPTIONS
    script.answer(SUBSCRIPTIONS)
    rows = script.expect(InsertDeliveries)
    assert rows.event_id == insert.event_id
    assert rows.subscription_ids == ["sub_orders", "sub_all"]
    assert len(rows.delivery_ids) == 2
    assert all(d.startswith("dlv_") for d in rows.delivery_ids)
    assert len(set(rows.delivery_ids)) == 2
    assert rows.due_at == NOW
    script.answer()
    audit = script.expect(InsertNotification)
    assert audit.verdict == "accepted"
    assert audit.channel == "ali"
    assert audit.received_at == RECEIVED
    assert audit.notification_id == "n1"
    assert audit.body == b"a=1"
    assert json.loads(audit.headers) == {"content-type": "application/x-www-form-urlencoded"}
    assert json.loads(audit.event_ids) == [insert.event_id]
    result = script.finish()
    assert result == IntakeResult(
        event_ids=(insert.event_id,),
        new_event_ids=(insert.event_id,),
        new_event_types=("payment.order.paid",),
        deliveries=2,
    )
    assert not result.is_duplicate


def test_duplicate_reads_the_stored_event_and_is_audited_as_duplicate() -> None:
    """A key that exists already: the stored event's id is read, no subscription is read,
    no outbox row is written, and the audit row says ``duplicate``."""
    script = Script(intake_flow(record(paid()), NOW))
    script.expect(InsertEvent)
    script.answer(False)
    assert script.expect(FindEvent) == FindEvent(paid().key)
    script.answer("evt_stored")
    audit = script.expect(InsertNotification)
    assert audit.verdict == "duplicate"
    assert json.loads(audit.event_ids) == ["evt_stored"]
    result = script.finish()
    assert result.is_duplicate
    assert result.event_ids == ("evt_stored",)
    assert result.new_event_ids == ()
    assert result.deliveries == 0


def test_conflicting_key_whose_row_is_gone_is_not_acknowledged() -> None:
    """If the event that held the key cannot be read back, the callback fails as
    "try again later" rather than being acknowledged without its event."""
    script = Script(intake_flow(record(paid()), NOW))
    script.expect(InsertEvent)
    script.answer(False)
    script.expect(FindEvent)
    with pytest.raises(StorageUnavailableError):
        script.answer(None)


def test_no_matching_subscription_writes_no_outbox_row() -> None:
    """A new event no enabled subscription wants is stored and audited, with no delivery."""
    script = Script(intake_flow(record(paid()), NOW))
    insert = script.expect(InsertEvent)
    script.answer(True)
    script.expect(type(READ_SUBSCRIPTIONS))
    script.answer([("sub_refunds", ["payment.refund.*"])])
    audit = script.expect(InsertNotification)
    assert audit.verdict == "accepted"
    result = script.finish()
    assert result.new_event_ids == (insert.event_id,)
    assert result.deliveries == 0


@pytest.mark.parametrize(
    ("previous", "share"),
    [(None, 3000), (1000, 2000), (3000, 0), (5000, 0)],
    ids=["first-refund", "later-refund", "same-total", "late-smaller-total"],
)
def test_alipay_refund_share_is_the_increase_over_the_trade_total(
    previous: int | None, share: int
) -> None:
    """An Alipay refund (cumulative refund_fee) not stored yet: the trade is locked, its
    largest recorded total (any size) is read by scope, and the event carries the share: the
    increase over it, or 0 when a larger total was recorded first. A refund with share 0 is
    still a new event with its outbox rows: its own refund id is a fact the shop waits for."""
    draft = refund(3000, "R2")
    script = Script(intake_flow(record(draft), NOW))
    assert script.expect(FindEvent) == FindEvent(draft.key)
    script.answer(None)
    assert script.expect(LockTrade) == LockTrade("alipay:app:T1")
    script.answer()
    assert script.expect(PreviousRefundTotal) == PreviousRefundTotal(
        provider="alipay", merchant_id="app", transaction_id="T1", scope=SCOPE
    )
    script.answer(previous)
    insert = script.expect(InsertEvent)
    assert insert.draft.refund_amount == share
    assert insert.draft.refunded_total == 3000
    data = json.loads(insert.body)["data"]
    assert (data["refund_amount"], data["refunded_total"]) == (share, 3000)
    script.answer(True)
    script.expect(type(READ_SUBSCRIPTIONS))
    script.answer(SUBSCRIPTIONS)
    assert script.expect(InsertDeliveries).subscription_ids == ["sub_refunds", "sub_all"]
    script.answer()
    assert script.expect(InsertNotification).verdict == "accepted"
    assert script.finish().new_event_types == ("payment.refund.succeeded",)


def test_stored_refund_is_a_duplicate_without_reading_the_trade() -> None:
    """A copy of a stored Alipay refund neither locks the trade nor reads its totals (its
    own total would change its share)."""
    script = Script(intake_flow(record(refund(1000, "R1")), NOW))
    script.expect(FindEvent)
    script.answer("evt_r1")
    assert script.expect(InsertNotification).verdict == "duplicate"
    assert script.finish().event_ids == ("evt_r1",)


def test_refund_with_its_amount_needs_no_share() -> None:
    """A refund whose provider states its own amount (WeChat Pay) is inserted directly."""
    draft = EventDraft(
        type=EventType.REFUND_SUCCEEDED,
        key="wechatpay:mch:T1:refund:R1",
        provider="wechatpay",
        merchant_id="mch",
        order_id="ORDER-1",
        transaction_id="T1",
        amount=8888,
        refund_id="R1",
        refund_amount=100,
    )
    script = Script(intake_flow(record(draft), NOW))
    assert script.expect(InsertEvent).draft == draft


def test_subscriptions_are_read_once_per_callback() -> None:
    """Two new events of one callback: the subscriptions are read before the first only,
    and each event gets its own outbox rows."""
    closed = EventDraft(
        type=EventType.ORDER_CLOSED,
        key="alipay:app:T1:payment.order.closed",
        provider="alipay",
        merchant_id="app",
        order_id="ORDER-1",
        transaction_id="T1",
        amount=8888,
    )
    script = Script(intake_flow(record(paid(), closed), NOW))
    first = script.expect(InsertEvent)
    script.answer(True)
    script.expect(type(READ_SUBSCRIPTIONS))
    script.answer(SUBSCRIPTIONS)
    assert script.expect(InsertDeliveries).subscription_ids == ["sub_orders", "sub_all"]
    script.answer()
    second = script.expect(InsertEvent)
    assert second.draft == closed
    assert second.event_id != first.event_id
    script.answer(True)
    rows = script.expect(InsertDeliveries)
    assert (rows.event_id, rows.subscription_ids) == (second.event_id, ["sub_all"])
    script.answer()
    audit = script.expect(InsertNotification)
    assert json.loads(audit.event_ids) == [first.event_id, second.event_id]
    result = script.finish()
    assert result.deliveries == 3
    assert result.new_event_types == ("payment.order.paid", "payment.order.closed")


def test_one_new_fact_makes_the_callback_accepted() -> None:
    """A callback with a stored fact and a new one is ``accepted``, not a duplicate."""
    script = Script(intake_flow(record(paid(), paid("alipay:app:T1:other")), NOW))
    script.expect(InsertEvent)
    script.answer(False)
    script.expect(FindEvent)
    script.answer("evt_stored")
    new = script.expect(InsertEvent)
    script.answer(True)
    script.expect(type(READ_SUBSCRIPTIONS))
    script.answer([])
    audit = script.expect(InsertNotification)
    assert audit.verdict == "accepted"
    assert json.loads(audit.event_ids) == ["evt_stored", new.event_id]
    result = script.finish()
    assert not result.is_duplicate
    assert result.new_event_ids == (new.event_id,)


def test_callback_without_events_is_only_audited() -> None:
    """A verified callback that carries no event is one audit row, ``accepted``."""
    script = Script(intake_flow(record(), NOW))
    audit = script.expect(InsertNotification)
    assert (audit.verdict, audit.event_ids) == ("accepted", None)
    result = script.finish()
    assert result == IntakeResult(event_ids=(), new_event_ids=(), new_event_types=(), deliveries=0)
    assert not result.is_duplicate


@pytest.mark.parametrize(
    ("total", "previous", "share"),
    [(3000, None, 3000), (3000, 0, 3000), (3000, 1000, 2000), (3000, 3000, 0), (1000, 3000, 0)],
)
def test_refund_share(total: int, previous: int | None, share: int) -> None:
    """The increase over the largest recorded total, never below 0."""
    assert refund_share(total, previous) == share


class MemoryDriver:
    """The flow's steps answered from a dict, the way both database drivers answer them."""

    def __init__(self) -> None:
        self.events: dict[str, EventDraft] = {}
        self.ids: dict[str, str] = {}

    def record(self, *drafts: EventDraft) -> IntakeResult:
        flow = intake_flow(record(*drafts), NOW)
        answer: Any = None
        try:
            while True:
                answer = self._execute(flow.send(answer))
        except StopIteration as stop:
            result: IntakeResult = stop.value
            return result

    def _execute(self, step: Step) -> Any:
        match step:
            case FindEvent(key=key):
                return self.ids.get(key)
            case PreviousRefundTotal(scope=scope):
                assert scope is not None
                totals = [
                    d.refunded_total
                    for key, d in self.events.items()
                    if key.startswith(scope) and d.refunded_total is not None
                ]
                return max(totals, default=None)
            case InsertEvent(draft=draft):
                if draft.key in self.events:
                    return False
                self.events[draft.key] = draft
                self.ids[draft.key] = step.event_id
                return True
            case _:
                return [] if step is READ_SUBSCRIPTIONS else None

    def amounts(self) -> dict[str | None, int | None]:
        return {d.refund_id: d.refund_amount for d in self.events.values()}


def test_reported_out_of_order_refunds() -> None:
    """Issue 16: paid 100.00, RF-2 (refund_fee 30.00) arrives before RF-1 (10.00): RF-2's
    share is 30.00 and RF-1's 0, 30.00 in all (not 40.00); RF-1 is still its own event."""
    driver = MemoryDriver()
    driver.record(paid())
    rf2 = driver.record(refund(3000, "RF-2"))
    rf1 = driver.record(refund(1000, "RF-1"))
    assert rf1.new_event_types == rf2.new_event_types == ("payment.refund.succeeded",)
    assert driver.amounts() == {None: None, "RF-2": 3000, "RF-1": 0}
    # Alipay's retry of RF-1 is a duplicate, whatever came in between.
    assert driver.record(refund(1000, "RF-1")).is_duplicate
    assert driver.record(refund(6000, "RF-3")).new_event_ids
    assert driver.amounts() == {None: None, "RF-2": 3000, "RF-1": 0, "RF-3": 3000}


@given(
    st.lists(st.integers(1, 5000), min_size=3, max_size=6).flatmap(
        lambda steps: st.permutations(list(range(len(steps))) * 2).map(lambda order: (steps, order))
    )
)
def test_refund_sums_in_any_arrival_order(case: tuple[list[int], list[int]]) -> None:
    """Refunds of one trade arriving in any order, each twice (a retry): each refund is one
    event and their amounts add up to the largest cumulative total (contract §9)."""
    steps, order = case
    totals = [sum(steps[: i + 1]) for i in range(len(steps))]
    driver = MemoryDriver()
    for i in order:
        driver.record(refund(totals[i], f"R{i}"))
    amounts = driver.amounts()
    assert sorted(amounts) == sorted(f"R{i}" for i in range(len(steps)))
    assert sum(a or 0 for a in amounts.values()) == totals[-1]
    assert all(a is not None and a >= 0 for a in amounts.values())


def test_refund_with_a_stated_amount_keeps_it() -> None:
    """A refund that carries both its own amount and the cumulative total (what an Alipay
    refund query will give, contract §11) is stored as stated: no share is derived, so the
    trade is neither locked nor read; its refunded_total is stored for later shares."""
    draft = replace(refund(3000, "R2"), refund_amount=2000)
    script = Script(intake_flow(record(draft), NOW))
    insert = script.expect(InsertEvent)
    assert insert.draft == draft
    data = json.loads(insert.body)["data"]
    assert (data["refund_amount"], data["refunded_total"]) == (2000, 3000)


def test_ids_carry_the_callback_time() -> None:
    """Event and delivery ids begin with the callback's time in milliseconds (ids sort by
    time): the same 48-bit prefix as any id made at that millisecond."""
    prefix = new_id("x", now_ms=int(NOW.timestamp() * 1000))[2:12]
    script = Script(intake_flow(record(paid()), NOW))
    insert = script.expect(InsertEvent)
    assert insert.event_id[4:14] == prefix
    script.answer(True)
    script.expect(type(READ_SUBSCRIPTIONS))
    script.answer(SUBSCRIPTIONS)
    rows = script.expect(InsertDeliveries)
    assert [d[4:14] for d in rows.delivery_ids] == [prefix, prefix]


@pytest.mark.parametrize("cls", [IntakeRecord, IntakeResult])
def test_record_and_result_are_frozen_slotted_and_keyword_only(cls: type[Any]) -> None:
    """Values handed between threads (the SQLite writer) cannot change under the flow."""
    value = (
        record(paid())
        if cls is IntakeRecord
        else IntakeResult(event_ids=(), new_event_ids=(), new_event_types=(), deliveries=0)
    )
    with pytest.raises(FrozenInstanceError):
        setattr(value, fields(cls)[0].name, None)
    assert not hasattr(value, "__dict__")
    with pytest.raises(TypeError):
        cls(*(getattr(value, f.name) for f in fields(cls)))
