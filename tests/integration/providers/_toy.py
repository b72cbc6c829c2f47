"""A toy provider, complete in this one module: settings, adapter, simulator, a background
task, and the spec that declares them. Registering :data:`SPEC` is the only other step."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime
from typing import Literal

from pydantic import Field, SecretStr

from payhook.errors import NotificationError, SignatureError
from payhook.events import EventDraft, EventType
from payhook.providers import (
    ChannelRuntime,
    ChannelSettings,
    Outcome,
    ParsedNotification,
    ProviderContext,
    ProviderSpec,
    RawNotification,
    Reply,
    SimulatedCallback,
)

KIND = "toy"


class ToyChannel(ChannelSettings):
    """``provider = "toy"``: a merchant id and an HMAC secret (inline or ``secret_file``)."""

    key_files = ("secret",)

    provider: Literal["toy"]
    merchant_id: str = Field(min_length=1)
    secret: SecretStr

    def summary(self) -> str:
        return f"merchant {self.merchant_id}"


def _sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ToyProvider:
    """JSON ``{"order_id", "amount", "merchant_id", "event"}`` signed in ``x-toy-signature``."""

    kind = KIND

    def __init__(self, *, channel: str, merchant_id: str, secret: str) -> None:
        self.channel = channel
        self._merchant_id = merchant_id
        self._secret = secret

    def verify(self, raw: RawNotification) -> ParsedNotification:
        expected = _sign(self._secret, raw.body)
        if not hmac.compare_digest(expected, raw.headers.get("x-toy-signature", "")):
            raise SignatureError("the toy signature does not match")
        try:
            body = json.loads(raw.body)
            order_id, amount = str(body["order_id"]), int(body["amount"])
        except (ValueError, KeyError, TypeError):
            raise NotificationError("not a toy notification") from None
        if body.get("merchant_id") != self._merchant_id:
            raise NotificationError("another merchant's notification")
        kind = EventType.ORDER_PAID if body.get("event") == "paid" else EventType.ORDER_CLOSED
        draft = EventDraft(
            type=kind,
            key=f"{KIND}:{self._merchant_id}:{order_id}:{kind.value}",
            provider=KIND,
            merchant_id=self._merchant_id,
            order_id=order_id,
            transaction_id=f"T-{order_id}",
            amount=amount,
            raw=body,
        )
        return ParsedNotification(notification_id=None, events=(draft,), order_id=order_id)

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        if outcome is Outcome.ACCEPTED:
            return Reply(status=200, body=b"ok", content_type="text/plain")
        status = 503 if outcome is Outcome.STORAGE_UNAVAILABLE else 400
        return Reply(status=status, body=b"no", content_type="text/plain")


class ToySimulator:
    def __init__(self, *, merchant_id: str, secret: str) -> None:
        self._merchant_id = merchant_id
        self._secret = secret

    def build(
        self,
        *,
        order_id: str,
        amount: int,
        event: str,
        refund_amount: int | None,
        now: datetime,
    ) -> SimulatedCallback:
        if event not in ("paid", "voided"):
            raise ValueError(f"the toy provider cannot simulate {event!r}")
        body = json.dumps(
            {
                "order_id": order_id,
                "amount": amount,
                "merchant_id": self._merchant_id,
                "event": event,
                "at": now.isoformat(),
            }
        ).encode()
        headers = {"content-type": "application/json", "x-toy-signature": _sign(self._secret, body)}
        return SimulatedCallback(headers=headers, body=body)


class ToyHeartbeat:
    """A background task that records that payhook prepared and ran it."""

    def __init__(self) -> None:
        self.prepared = False
        self.running = asyncio.Event()

    async def prepare(self) -> None:
        self.prepared = True

    async def run(self) -> None:
        self.running.set()
        await asyncio.Event().wait()


def _build(channel: ToyChannel, _context: ProviderContext) -> ChannelRuntime:
    provider = ToyProvider(
        channel=channel.name,
        merchant_id=channel.merchant_id,
        secret=channel.secret.get_secret_value(),
    )
    return ChannelRuntime(provider=provider, tasks=(ToyHeartbeat(),))


def _simulator(channel: ToyChannel) -> ToySimulator:
    return ToySimulator(merchant_id=channel.merchant_id, secret=channel.secret.get_secret_value())


SPEC: ProviderSpec[ToyChannel] = ProviderSpec(
    kind=KIND,
    event_provider=KIND,
    settings=ToyChannel,
    build=_build,
    simulator=_simulator,
    simulated_events=("paid", "voided"),
)
