"""The intake algorithm driven by hand: each step it asks for, answered with fake results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from payhook.errors import StorageUnavailableError
from payhook.events import EventDraft, EventType
from payhook.storage.intake import IntakeRecord, IntakeResult, intake_flow
from payhook.storage.intake._flow import IntakeFlow
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


def record(*drafts: EventDraft, verdict: str = "accepted") -> IntakeRecord:
    return IntakeRecord(
        channel="ali",
        received_at=RECEIVED,
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=b"a=1",
        notification_id="n1",
        drafts=drafts,
        verdict=verdict,
        reason="bad_signature" if verdict == "refused" else None,
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
    assert audit.reason is None
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
    ("previous", "share"), [(None, 3000), (1000, 2000)], ids=["first-refund", "later-refund"]
)
def test_alipay_refund_share_is_the_increase_over_the_trade_total(
    previous: int | None, share: int
) -> None:
    """An Alipay refund (cumulative refund_fee) not stored yet: the trade is locked, its
    largest earlier total below this one is read by scope, and the event carries the share."""
    draft = refund(3000, "R2")
    script = Script(intake_flow(record(draft), NOW))
    assert script.expect(FindEvent) == FindEvent(draft.key)
    script.answer(None)
    assert script.expect(LockTrade) == LockTrade("alipay:app:T1")
    script.answer()
    assert script.expect(PreviousRefundTotal) == PreviousRefundTotal(
        provider="alipay", merchant_id="app", transaction_id="T1", scope=SCOPE, below=3000
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


def test_refused_callback_is_only_audited() -> None:
    """A refused callback (no drafts) is one audit row with its verdict and reason."""
    script = Script(intake_flow(record(verdict="refused"), NOW))
    audit = script.expect(InsertNotification)
    assert (audit.verdict, audit.reason, audit.event_ids) == ("refused", "bad_signature", None)
    result = script.finish()
    assert result == IntakeResult(event_ids=(), new_event_ids=(), new_event_types=(), deliveries=0)
    assert not result.is_duplicate
