"""The dispatcher: claims due deliveries, sends them, writes results back, never stops early."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import Clock, SystemClock
from payhook._types import DeliveryStatus
from payhook.dispatch._completer import Completer, Health
from payhook.dispatch._lanes import Lanes
from payhook.dispatch._policy import RetryPolicy
from payhook.dispatch._results import build_completion
from payhook.dispatch._wakeup import PgListener, asyncpg_dsn
from payhook.dispatch.sinks import SINKS, Handler, Sink, SinkContext, SinkFactory
from payhook.errors import ConfigurationError
from payhook.storage import (
    ClaimedDelivery,
    Completion,
    OutboxSignal,
    claim_due,
    next_due_at,
    release,
)

if TYPE_CHECKING:
    from payhook._metrics import Metrics

__all__ = ["Dispatcher"]

logger = logging.getLogger("payhook.dispatch")

MAX_LEASE_MARGIN_S = 30.0


class Dispatcher:
    """Delivers the outbox: every due delivery, signed, at least once.

    A loop claims due deliveries in short transactions, sends each through the sink for
    its subscription's kind (:data:`~payhook.dispatch.sinks.SINKS`: a signed POST on one
    shared aiohttp session, an in-process handler call, …), and hands the results to a
    batching completer. At most ``concurrency`` deliveries are in flight, at most
    ``per_subscription_concurrency`` per subscription (claims skip a subscription whose
    share is taken, so a hanging subscriber never holds up the others), and the next
    batch is claimed while the current one is sent. A claim is a lease of
    ``request_timeout_s + lease_margin_s``: if this process dies, the rows fall due again
    by themselves and another worker sends them.

    Wake-ups: ``signal`` (in-process, raised by the intake path after its commit) and, on
    PostgreSQL with ``listen=True``, ``LISTEN payhook_outbox`` across processes;
    ``poll_interval_s`` is only the fallback. Retry waits, polls and back-offs go through
    ``clock``, so a :class:`payhook.testing.FakeClock` runs days of schedule in
    milliseconds; request timeouts and the stop grace bound real I/O and use real time.

    Args:
        engine: the database (SQLite or PostgreSQL).
        policy: when failed deliveries are retried and when they are dead.
        handlers: in-process subscribers by subscription name (``@hook.on``); this
            worker only claims handler deliveries it has a handler for.
        sinks: the sink factory for each subscription kind (default
            :data:`~payhook.dispatch.sinks.SINKS`); deliveries of kinds without a sink
            are left for a worker that has one.
        worker_id: a name for logs (default: host, pid and a random suffix).
        lease_margin_s: lease beyond the request timeout, at most 30 s (contract §6).
        claim_batch: the most rows one claim takes.
        metrics: where to count attempts by subscription and outcome, and their latency.
        refuse_private_targets: ``[dispatcher] refuse_private_targets``: the HTTP sink also
            refuses to connect to private, loopback and other non-public addresses
            (link-local and metadata addresses are always refused).
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        policy: RetryPolicy,
        clock: Clock | None = None,
        request_timeout_s: float = 10.0,
        concurrency: int = 64,
        per_subscription_concurrency: int = 8,
        poll_interval_s: float = 1.0,
        handlers: Mapping[str, Handler] | None = None,
        signal: OutboxSignal | None = None,
        listen: bool = True,
        worker_id: str | None = None,
        lease_margin_s: float = MAX_LEASE_MARGIN_S,
        claim_batch: int = 128,
        metrics: Metrics | None = None,
        sinks: Mapping[str, SinkFactory] | None = None,
        refuse_private_targets: bool = False,
    ) -> None:
        if not (math.isfinite(request_timeout_s) and request_timeout_s > 0):
            raise ConfigurationError("request_timeout must be greater than 0")
        if not (math.isfinite(poll_interval_s) and poll_interval_s > 0):
            raise ConfigurationError("poll_interval must be greater than 0")
        if concurrency < 1 or per_subscription_concurrency < 1 or claim_batch < 1:
            raise ConfigurationError("concurrency limits must be at least 1")
        if not (0 < lease_margin_s <= MAX_LEASE_MARGIN_S):
            raise ConfigurationError("lease_margin_s must be in (0, 30]")
        self._engine = engine
        self._policy = policy
        self._clock: Clock = clock or SystemClock()
        self._timeout_s = request_timeout_s
        self._poll_s = poll_interval_s
        self._signal = signal
        self._listen = listen and engine.dialect.name == "postgresql"
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lease_s = request_timeout_s + lease_margin_s
        self._claim_batch = claim_batch
        context = SinkContext(
            clock=self._clock,
            request_timeout_s=request_timeout_s,
            concurrency=concurrency,
            handlers=dict(handlers or {}),
            refuse_private_targets=refuse_private_targets,
        )
        self._sinks: dict[str, Sink] = {
            kind: factory(context) for kind, factory in (SINKS if sinks is None else sinks).items()
        }
        self._health = Health()
        self._lanes = Lanes(
            concurrency=concurrency,
            per_subscription=per_subscription_concurrency,
            request_timeout_s=request_timeout_s,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_grace_s: float | None = None
        self._active = False
        self._finished = asyncio.Event()
        self._completer: Completer | None = None
        self._attempted = 0
        self._pending_results = False
        self.listener: PgListener | None = None
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"Dispatcher(worker_id={self.worker_id!r})"

    @property
    def attempts_made(self) -> int:
        """Attempts this dispatcher has made since it was created (for metrics and tests)."""
        return self._attempted

    @property
    def in_flight(self) -> int:
        """Deliveries being sent right now."""
        return len(self._lanes.busy)

    # ----------------------------------------------------------------------------------
    # public API

    async def run(self) -> None:
        """Deliver until :meth:`stop`; no exception escapes (database outages included)."""
        if self._active:
            raise RuntimeError("this dispatcher is already running")
        self._active = True
        self._finished.clear()
        helpers: list[asyncio.Task[None]] = []
        logger.info(
            "dispatcher started", extra={"action": "dispatcher_started", "worker": self.worker_id}
        )
        try:
            await self._open()
            assert self._completer is not None
            helpers.append(asyncio.create_task(self._completer.run(), name="payhook-completer"))
            if self._signal is not None:
                helpers.append(asyncio.create_task(self._forward_signal(), name="payhook-signal"))
            if self._listen:
                self.listener = PgListener(
                    asyncpg_dsn(self._engine.url), on_notify=self._wake.set, clock=self._clock
                )
                helpers.append(asyncio.create_task(self.listener.run(), name="payhook-listen"))
            await self._loop(burst=False)
            await self._shutdown(self._stop_grace_s)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._shutdown(0.0))
            raise
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._close()
            self._active = False
            self._stop.clear()
            self._finished.set()
            logger.info(
                "dispatcher stopped",
                extra={"action": "dispatcher_stopped", "worker": self.worker_id},
            )

    async def stop(self, *, grace_s: float | None = None) -> None:
        """Stop claiming, let in-flight deliveries finish for up to ``grace_s`` (default:
        the request timeout), release the claims of the rest, and wait for :meth:`run`.
        """
        self._stop_grace_s = self._timeout_s if grace_s is None else max(0.0, grace_s)
        self._stop.set()
        self._wake.set()
        if self._active:
            await self._finished.wait()

    async def run_until_idle(self) -> int:
        """Burst mode (tests, scripts): deliver everything due now, then return.

        Keeps claiming until nothing is due, waiting for in-flight attempts and for their
        results to be written (so zero-delay retries are made too).

        Returns:
            The number of attempts made.
        """
        if self._active:
            raise RuntimeError("this dispatcher is already running")
        self._active = True
        before = self._attempted
        completer_task: asyncio.Task[None] | None = None
        try:
            await self._open()
            assert self._completer is not None
            completer_task = asyncio.create_task(self._completer.run())
            await self._loop(burst=True)
        finally:
            await self._shutdown(self._timeout_s)
            if completer_task is not None:
                completer_task.cancel()
                await asyncio.gather(completer_task, return_exceptions=True)
            await self._close()
            self._active = False
            self._stop.clear()
        return self._attempted - before

    # ----------------------------------------------------------------------------------
    # the loop

    async def _loop(self, *, burst: bool) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if await self._step(burst=burst):
                    return
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                self._health.trouble(exc, "claim")
                await self._pause(self._health.backoff_s())

    async def _step(self, *, burst: bool) -> bool:
        """One turn of the loop; True when burst mode has nothing left to do."""
        if self._lanes.should_claim():
            capped = self._lanes.capped()
            if await self._claim():
                return False  # more may be due, and the per-subscription shares changed
            if not burst:
                await self._idle()
                return False
            if capped and not self._lanes.outstanding:
                # The claim left out subscriptions at their share, and their deliveries
                # all finished while it ran: an empty claim proves nothing, claim again.
                return False
        elif not burst:
            await self._wait(self._poll_s)  # busy enough: a finished delivery wakes us
            return False
        if self._lanes.outstanding:
            await self._wake.wait()
            return False
        assert self._completer is not None
        await self._completer.drain()
        if self._pending_results:  # a retry may already be due: claim once more
            self._pending_results = False
            return False
        return True

    async def _claim(self) -> int:
        rows = await claim_due(
            self._engine,
            now=self._clock.now(),
            limit=min(self._lanes.room, self._claim_batch),
            lease_s=self._lease_s,
            per_subscription_cap=self._lanes.max_outstanding_per_sub,
            remaining=self._lanes.remaining(),
            serves={kind: sink.names for kind, sink in self._sinks.items()},
        )
        self._health.ok()
        if rows:
            self._lanes.add(rows)
            self._pump()
        return len(rows)

    async def _idle(self) -> None:
        wait_s = self._poll_s
        try:
            due = await next_due_at(self._engine)
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything
            self._health.trouble(exc, "poll")
            await self._pause(self._health.backoff_s())
            return
        if due is not None:
            ahead = (due - self._clock.now()).total_seconds()
            if ahead > 0:
                wait_s = min(wait_s, ahead)
        await self._wait(wait_s)

    async def _wait(self, seconds: float) -> None:
        """Until a wake-up (or stop), or ``seconds`` on the clock."""
        if self._wake.is_set():
            return
        waker = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()

    async def _pause(self, seconds: float) -> None:
        """Back off for ``seconds`` on the clock; only a stop cuts it short."""
        stopper = asyncio.ensure_future(self._stop.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({stopper, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            sleeper.cancel()

    async def _forward_signal(self) -> None:
        assert self._signal is not None
        while True:
            if await self._signal.wait(max(self._poll_s, 1.0)):
                self._wake.set()

    # ----------------------------------------------------------------------------------
    # one delivery

    def _pump(self) -> None:
        """Start every queued delivery that has a free slot."""
        if not self._lanes.queue:
            return
        start, give_back = self._lanes.take(self._clock.now())
        for row in start:
            self._tasks[row.id] = asyncio.create_task(self._deliver(row))
        if give_back:
            task = asyncio.create_task(self._release(give_back))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _deliver(self, row: ClaimedDelivery) -> None:
        try:
            outcome = await self._sinks[row.kind].send(row)
            self._attempted += 1
            completion = build_completion(row, outcome, self._policy, now=self._clock.now())
            if self._metrics is not None:
                self._metrics.deliveries.labels(row.subscription_name, completion.status).inc()
                self._metrics.delivery_latency.labels(row.subscription_name).observe(
                    outcome.latency_ms / 1000
                )
            if completion.status is DeliveryStatus.FAILED:
                self._pending_results = True
            if completion.disable_reason:
                # Stop sending to this subscriber before the disable is committed.
                self._lanes.blocked.add(row.subscription_id)
            assert self._completer is not None
            self._completer.add(completion)
        except asyncio.CancelledError:
            raise
        except Exception:  # one delivery must never take the worker down
            logger.exception(
                "unexpected error while delivering; the lease will expire and it is retried",
                extra={"action": "delivery_error", "delivery_id": row.id},
            )
        finally:
            self._tasks.pop(row.id, None)
            if self._lanes.finish(row):
                self._wake.set()
            self._pump()

    def _on_written(self, batch: Sequence[Completion], updated: set[str]) -> None:
        self._lanes.blocked.difference_update(c.subscription_id for c in batch if c.disable_reason)
        if any(c.status is DeliveryStatus.FAILED for c in batch):
            self._wake.set()  # a retry may be due sooner than the loop planned to wake
        fenced = [c.delivery_id for c in batch if c.delivery_id not in updated]
        if fenced:
            logger.info(
                "%d results were not recorded: their lease had expired and the deliveries "
                "were claimed again",
                len(fenced),
                extra={"action": "lease_lost", "delivery_ids": fenced[:20]},
            )

    # ----------------------------------------------------------------------------------
    # lifecycle

    async def _open(self) -> None:
        if self._completer is None:
            self._completer = Completer(
                self._engine, self._clock, self._health, on_written=self._on_written
            )
        for sink in self._sinks.values():
            await sink.open()

    async def _shutdown(self, grace_s: float | None) -> None:
        """Let in-flight attempts finish for ``grace_s``, release the rest, write results."""
        left = self._lanes.drain_queue()
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            left += [row for row in self._lanes.busy.values()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if left:
            await self._release(left)
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._completer is not None:
            try:
                await asyncio.wait_for(self._completer.drain(), self._timeout_s)
            except TimeoutError:
                logger.warning(
                    "could not record %d attempt results before stopping; those deliveries "
                    "will be sent again after their lease expires",
                    self._completer.backlog,
                    extra={"action": "results_lost"},
                )

    async def _release(self, rows: Sequence[ClaimedDelivery]) -> None:
        try:
            count = await release(
                self._engine, [(r.id, r.claim_token) for r in rows], now=self._clock.now()
            )
        except Exception as exc:  # noqa: BLE001 - the leases expire by themselves anyway
            logger.warning(
                "could not release %d claims (%s); they are retried after the lease",
                len(rows),
                type(exc).__name__,
                extra={"action": "release_failed"},
            )
            return
        logger.info("released %d claims", count, extra={"action": "claims_released"})

    async def _close(self) -> None:
        for kind, sink in self._sinks.items():
            try:
                await sink.close()
            except Exception:  # close every sink whatever one of them does
                logger.exception(
                    "could not close the %s sink", kind, extra={"action": "sink_close_failed"}
                )
