"""Issue 16 end to end: Alipay refund notifications out of order through POST /notify/alipay."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from payhook._hook import PayHook
from payhook.config import PayhookSettings
from payhook.providers import build_simulator
from payhook.providers.alipay import AlipayChannel
from payhook.storage._tables import events

pytestmark = pytest.mark.anyio

KEYS = Path(__file__).resolve().parents[3] / "samples" / "keys"


def alipay_channel() -> AlipayChannel:
    """The sample Alipay channel with the sandbox keys (the simulator signs with them)."""
    return AlipayChannel(
        name="alipay",
        provider="alipay",
        app_id="2021000000000001",
        alipay_public_key=(KEYS / "alipay_public.pem").read_text(),
        simulator_private_key=(KEYS / "sandbox" / "alipay_private.pem").read_text(),
    )


async def test_refund_notified_late_counts_nothing_twice(database_url: str) -> None:
    """100.00 paid; Alipay's notification for RF-1 (refund_fee 10.00) fails and is retried
    after RF-2's (refund_fee 30.00, cumulative): RF-2 is 30.00, RF-1 is 0 and still its own
    event, and the retry's copy is acknowledged without a third event."""
    channel = alipay_channel()
    hook = PayHook(
        PayhookSettings(database_url=database_url, channels=(channel,)), run_dispatcher=False
    )
    simulator = build_simulator(channel)

    def build(event: str, refunded: int | None) -> httpx.Request:
        callback = simulator.build(
            order_id="ORDER-16", amount=10000, event=event, refund_amount=refunded,
            now=hook.clock.now(),
        )  # fmt: skip
        return httpx.Request(
            "POST", "http://payhook.test/notify/alipay",
            content=callback.body, headers=dict(callback.headers),
        )  # fmt: skip

    await hook.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hook.app)) as client:
            for request in (build("paid", None), build("refund", 3000), build("refund", 1000)):
                reply = await client.send(request)
                assert (reply.status_code, reply.text) == (200, "success")
            retry = await client.send(build("refund", 1000))  # a new envelope, same fact
            assert (retry.status_code, retry.text) == (200, "success")
        async with hook.store.engine.connect() as conn:
            bodies = (
                await conn.execute(
                    select(events.c.body).where(events.c.type == "payment.refund.succeeded")
                )
            ).scalars()
            refunds = {
                data["refund_id"]: (data["refund_amount"], data["refunded_total"])
                for data in (json.loads(body)["data"] for body in bodies)
            }
    finally:
        await hook.stop()
    assert refunds == {"ORDER-16-R3000": (3000, 3000), "ORDER-16-R1000": (0, 1000)}
    assert sum(amount for amount, _total in refunds.values()) == 3000
