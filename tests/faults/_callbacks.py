"""Provider callbacks for fault tests: built by payhook's own simulators from the test config,
and the provider's notion of "answered with success" for each channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from payhook.config import load_settings
from payhook.providers import Simulator, build_simulator

PROVIDER_OF = {"alipay": "alipay", "wechat": "wechatpay_v3", "wechat-legacy": "wechatpay_v2"}
EVENT_TYPE = {
    "paid": "payment.order.paid",
    "closed": "payment.order.closed",
    "refund": "payment.refund.succeeded",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """One payment fact a provider reports: it must become exactly one event."""

    channel: str
    order_id: str
    event: str  # paid | closed | refund
    amount: int
    # When the provider produced the fact: every envelope re-built for it carries this time,
    # as a provider's resends do (a WeChat Pay refund id is derived from it by the simulator).
    at: datetime | None = None

    @property
    def event_type(self) -> str:
        return EVENT_TYPE[self.event]


@dataclass(frozen=True, slots=True, kw_only=True)
class Callback:
    """One HTTP callback carrying a fact."""

    fact: Fact
    headers: Mapping[str, str]
    body: bytes


class Callbacks:
    """Builds signed callbacks for the channels of a config file (its ``simulator_*`` keys)."""

    def __init__(self, config: Path) -> None:
        settings = load_settings(config)
        self._simulators: dict[str, Simulator] = {
            c.name: build_simulator(c) for c in settings.channels
        }

    def build(self, fact: Fact, *, now: datetime | None = None) -> Callback:
        """A fresh envelope for ``fact`` (new notify id, nonce and envelope id each time),
        signed at ``now``, else at ``fact.at``, else at the current time."""
        simulated = self._simulators[fact.channel].build(
            order_id=fact.order_id,
            amount=fact.amount,
            event=fact.event,
            refund_amount=fact.amount if fact.event == "refund" else None,
            now=now or fact.at or datetime.now(UTC),
        )
        return Callback(fact=fact, headers=dict(simulated.headers), body=simulated.body)


def is_success(channel: str, status: int, body: bytes) -> bool:
    """Whether the provider of ``channel`` takes this answer as "received, stop retrying"."""
    provider = PROVIDER_OF[channel]
    if provider == "alipay":
        return status == 200 and body == b"success"
    if provider == "wechatpay_v3":
        return status in (200, 204)
    return status == 200 and b"<return_code><![CDATA[SUCCESS]]></return_code>" in body


def is_failure_reply(channel: str, status: int, body: bytes) -> bool:
    """Whether the answer is the contract's "cannot store it now" reply (503/500 FAIL)."""
    provider = PROVIDER_OF[channel]
    if provider == "alipay":
        return status == 503 and body == b"fail"
    if provider == "wechatpay_v3":
        return status == 500 and b'"FAIL"' in body
    return status == 500 and b"FAIL" in body
