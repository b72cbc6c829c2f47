"""The provider side of the fault tests: a steady stream of distinct signed callbacks, with
duplicates mixed in, re-sent until answered with success, exactly as a payment provider does;
plus a subscriber wrapper that knows how many deliveries are in flight at any moment."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.faults._callbacks import Callback, Callbacks, Fact, is_failure_reply, is_success
from tests.faults._payhook import CHANNELS

# What each channel's provider can report, with weights (WeChat Pay sends no "closed").
_EVENTS = {
    "alipay": (("paid", 6), ("closed", 1), ("refund", 2)),
    "wechat": (("paid", 6), ("refund", 2)),
    "wechat-legacy": (("paid", 6), ("refund", 2)),
}


def fact_key(fact: Fact) -> tuple[str, str, str]:
    """What identifies the event a fact must become: channel, order id and event type."""
    return (fact.channel, fact.order_id, fact.event_type)


@dataclass
class FactState:
    """What the provider knows about one fact it reports."""

    fact: Fact
    last: Callback | None = None
    acked: bool = False
    sends: int = 0
    in_flight: int = 0
    due: float = 0.0
    replies: collections.Counter[str] = field(default_factory=collections.Counter)


# httpx transport errors that say nothing about how the server answers (see Exchange).
CLIENT_SIDE_ERRORS = frozenset({"ReadError", "WriteError", "RemoteProtocolError", "ConnectError"})


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP exchange: when it was sent and answered (monotonic), and how."""

    key: tuple[str, str, str]
    kind: str  # new | retry | duplicate
    sent: float
    answered: float
    status: int | None  # None: no answer (connection refused or reset)
    success: bool
    failure_reply: bool
    error: str | None = None  # the transport error's class name when no answer came

    @property
    def client_side_error(self) -> bool:
        """No answer because of the client's own connection (a pooled keep-alive connection
        closed by the server as the request went out, a refused connect on a loaded host),
        not because the server failed to answer in time."""
        return self.status is None and self.error in CLIENT_SIDE_ERRORS


class Driver:
    """Sends callbacks to ``base_url``/notify/<channel> from ``concurrency`` workers.

    New facts are produced while :attr:`producing` is set, at about ``rate_per_s``; a share
    ``duplicate_share`` of the sends re-sends an already acknowledged fact (half the time the
    very same bytes, else a re-built envelope); anything not answered with success is sent
    again after ``retry_after_s``.
    """

    def __init__(
        self,
        callbacks: Callbacks,
        base_url: str,
        *,
        concurrency: int = 8,
        rate_per_s: float = 60.0,
        duplicate_share: float = 0.2,
        retry_after_s: float = 0.3,
        request_timeout_s: float = 15.0,
        seed: int = 1,
    ) -> None:
        self.callbacks = callbacks
        self.base_url = base_url
        self.concurrency = concurrency
        self.rate_per_s = rate_per_s
        self.duplicate_share = duplicate_share
        self.retry_after_s = retry_after_s
        self.request_timeout_s = request_timeout_s
        self.rng = random.Random(seed)
        self.states: dict[tuple[str, str, str], FactState] = {}
        self.exchanges: list[Exchange] = []
        self.producing = True
        self.running = asyncio.Event()
        self.running.set()
        self._stop = asyncio.Event()
        self._counter = itertools.count(1)
        self._channels = itertools.cycle(CHANNELS)
        self._paid: dict[str, list[Fact]] = {c: [] for c in CHANNELS}
        self._in_flight = 0
        self._next_send = time.monotonic()

    # -- what to send next -----------------------------------------------------------------

    def _new_fact(self) -> Fact:
        channel = next(self._channels)
        events, weights = zip(*_EVENTS[channel], strict=True)
        event = self.rng.choices(events, weights)[0]
        now = datetime.now(UTC)
        if event == "refund" and self._paid[channel]:
            paid = self._paid[channel].pop(self.rng.randrange(len(self._paid[channel])))
            return Fact(channel=channel, order_id=paid.order_id, event="refund",
                        amount=paid.amount, at=now)  # fmt: skip
        if event == "refund":
            event = "paid"
        order = f"F{next(self._counter):06d}-{channel[:2]}"
        fact = Fact(channel=channel, order_id=order, event=event,
                    amount=self.rng.randrange(1, 10**6), at=now)  # fmt: skip
        if event == "paid":
            self._paid[channel].append(fact)
        return fact

    def _next(self) -> tuple[FactState, str] | None:
        now = time.monotonic()
        due = [s for s in self.states.values() if not s.acked and not s.in_flight and s.due <= now]
        if due:
            return min(due, key=lambda s: s.due), "retry"
        if not self.producing or now < self._next_send:
            return None
        self._next_send = max(self._next_send + 1.0 / self.rate_per_s, now - 1.0)
        acked = [s for s in self.states.values() if s.acked]
        if acked and self.rng.random() < self.duplicate_share:
            return self.rng.choice(acked), "duplicate"
        fact = self._new_fact()
        state = FactState(fact=fact)
        self.states[fact_key(fact)] = state
        return state, "new"

    # -- sending ---------------------------------------------------------------------------

    def in_flight(self) -> int:
        """Callbacks sent and not answered yet."""
        return self._in_flight

    def unacked(self) -> list[FactState]:
        """Facts never answered with success."""
        return [s for s in self.states.values() if not s.acked]

    async def _send(self, client: httpx.AsyncClient, state: FactState, kind: str) -> bool:
        """Send one callback; False when no answer came back at all."""
        fact = state.fact
        if kind == "duplicate" and state.last is not None and self.rng.random() < 0.5:
            callback = state.last  # the very same bytes again
        else:
            callback = self.callbacks.build(fact)
            state.last = callback
        state.sends += 1
        state.in_flight += 1
        self._in_flight += 1
        sent = time.monotonic()
        status: int | None = None
        error: str | None = None
        body = b""
        try:
            response = await client.post(
                f"{self.base_url}/notify/{fact.channel}",
                content=callback.body,
                headers=dict(callback.headers),
            )
            status, body = response.status_code, response.content
        except httpx.TransportError as exc:
            error = type(exc).__name__
            state.replies[error] += 1
        finally:
            state.in_flight -= 1
            self._in_flight -= 1
        answered = time.monotonic()
        success = status is not None and is_success(fact.channel, status, body)
        failure = status is not None and is_failure_reply(fact.channel, status, body)
        if status is not None:
            state.replies[str(status)] += 1
        if success:
            state.acked = True
        elif not state.acked:
            state.due = answered + self.retry_after_s
        self.exchanges.append(
            Exchange(fact_key(fact), kind, sent, answered, status, success, failure, error)
        )
        return status is not None

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            await self.running.wait()
            item = self._next()
            if item is None:
                if not self.producing and not self.unacked():
                    return
                await asyncio.sleep(0.01)
                continue
            if not await self._send(client, *item):
                # No answer (the server is down): back off like a provider, not a busy loop.
                await asyncio.sleep(self.retry_after_s)

    async def run(self) -> None:
        """Run the workers until :meth:`stop`, or until production ended and all is acked."""
        limits = httpx.Limits(max_connections=self.concurrency)
        timeout = httpx.Timeout(self.request_timeout_s, connect=2.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            await asyncio.gather(*(self._worker(client) for _ in range(self.concurrency)))

    def stop(self) -> None:
        """Stop the workers after their current send."""
        self._stop.set()


class InFlight:
    """ASGI wrapper counting requests inside ``app`` (deliveries in flight at the subscriber)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.count -= 1


def summary(driver: Driver) -> dict[str, Any]:
    """Counts for the figures."""
    kinds = collections.Counter(e.kind for e in driver.exchanges)
    return {
        "facts": len(driver.states),
        "callbacks_sent": len(driver.exchanges),
        "new": kinds["new"],
        "retries": kinds["retry"],
        "duplicates_sent": kinds["duplicate"],
        "acknowledged_facts": sum(s.acked for s in driver.states.values()),
        "no_answer": sum(e.status is None for e in driver.exchanges),
        "client_side_errors": sum(e.client_side_error for e in driver.exchanges),
        "failure_replies": sum(e.failure_reply for e in driver.exchanges),
    }
