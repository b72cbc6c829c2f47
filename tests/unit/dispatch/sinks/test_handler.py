"""The in-process handler sink: calls the handler, and turns a raise or a timeout into a failure."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from payhook.dispatch.sinks import ErrorClass, HandlerSink, SinkContext
from payhook.dispatch.sinks.handler import Handler, classify_handler_error
from payhook.events import Event
from payhook.storage._outbox import ClaimedDelivery
from payhook.testing import FakeClock

pytestmark = pytest.mark.anyio

CLOCK = FakeClock()
BODY = json.dumps(
    {
        "id": "evt_01",
        "type": "payment.order.paid",
        "created_at": "2026-11-28T01:02:03.456Z",
        "data": {
            "provider": "alipay",
            "channel": "alipay",
            "merchant_id": "2021000000000001",
            "order_id": "ORDER-1",
            "transaction_id": "2026112822001",
            "amount": 8888,
            "currency": "CNY",
            "paid_at": "2026-11-28T09:00:00+08:00",
            "payer_id": None,
            "refund_id": None,
            "refund_amount": None,
            "refunded_total": None,
            "status": None,
            "raw": {},
        },
    }
).encode()


def _delivery(name: str) -> ClaimedDelivery:
    return ClaimedDelivery(
        id="dlv_01",
        event_id="evt_01",
        subscription_id="sub_01",
        subscription_name=name,
        kind="handler",
        url=None,
        secrets_json="[]",
        body=BODY,
        attempt=1,
        claim_token="t",
        claimed_at=CLOCK.now(),
        lease_until=CLOCK.now() + timedelta(seconds=40),
    )


def _sink(handlers: dict[str, Handler], *, timeout_s: float = 5.0) -> HandlerSink:
    return HandlerSink(
        SinkContext(clock=CLOCK, request_timeout_s=timeout_s, concurrency=4, handlers=handlers)
    )


async def test_the_handler_gets_the_event() -> None:
    """The handler registered under the subscription's name is called with the parsed Event."""
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    sink = _sink({"mark_paid": record})
    await sink.open()
    outcome = await sink.send(_delivery("mark_paid"))
    await sink.close()
    assert outcome.ok
    assert [(e.id, e.data.amount) for e in seen] == [("evt_01", 8888)]


async def test_a_raise_and_a_timeout_are_failed_attempts() -> None:
    """A raising handler is a 'handler' failure; one that overruns the timeout a 'timeout'."""

    async def explode(event: Event) -> None:
        raise RuntimeError(f"cannot handle {event.type}")

    async def hang(_event: Event) -> None:
        await asyncio.sleep(10)

    sink = _sink({"explode": explode, "hang": hang}, timeout_s=0.01)
    failed = await sink.send(_delivery("explode"))
    assert (failed.ok, failed.error_class) == (False, ErrorClass.HANDLER)
    assert failed.error == "RuntimeError: cannot handle payment.order.paid"
    slow = await sink.send(_delivery("hang"))
    assert (slow.ok, slow.error_class) == (False, ErrorClass.TIMEOUT)


async def test_an_unknown_name_is_a_failed_attempt() -> None:
    """A delivery for a handler this process lacks fails cleanly (the claim never takes one)."""
    outcome = await _sink({}).send(_delivery("elsewhere"))
    assert not outcome.ok
    assert outcome.error == "no handler named 'elsewhere' in this process"


def test_handler_errors() -> None:
    """A raising handler is a 'handler' failure; a handler timeout is a 'timeout'."""
    assert (
        classify_handler_error(RuntimeError("boom"), latency_ms=1).error_class is ErrorClass.HANDLER
    )
    assert classify_handler_error(TimeoutError(), latency_ms=1).error_class is ErrorClass.TIMEOUT
    assert classify_handler_error(RuntimeError("boom"), latency_ms=1).error == "RuntimeError: boom"
