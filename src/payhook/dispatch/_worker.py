"""The dispatcher: claims due deliveries, sends them, writes results back, never stops early."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._clock import Clock, SystemClock
from payhook.dispatch._attempt import Handler, call_handler, post
from payhook.dispatch._classify import Outcome
from payhook.dispatch._completer import Completer, Health
from payhook.dispatch._keys import SecretKeys
from payhook.dispatch._policy import RetryPolicy
from payhook.dispatch._request import USER_AGENT
from payhook.dispatch._wakeup import PgListener, asyncpg_dsn
from payhook.errors import ConfigurationError
from payhook.events import to_rfc3339
from payhook.storage._outbox import ClaimedDelivery, Completion, claim_due, next_due_at, release
from payhook.storage._signal import OutboxSignal

__all__ = ["Dispatcher"]

logger = logging.getLogger("payhook.dispatch")

MAX_LEASE_MARGIN_S = 30.0


class Dispatcher:
    """Delivers the outbox: every due delivery, signed, at least once.

    A loop claims due deliveries in short transactions (never more than it has free
    slots for, and never for a subscription already at ``per_subscription_concurrency``
    in this worker), sends each on one shared aiohttp session (or calls the in-process
    handler), and hands the results to a batching completer. A claim is a lease of
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
        handlers: in-process subscribers by subscription name (``kind = "handler"``);
            this worker only claims handler deliveries it has a handler for.
        worker_id: a name for logs (default: host, pid and a random suffix).
        lease_margin_s: lease beyond the request timeout, at most 30 s (contract §6).
        claim_batch: the most rows one claim takes.
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
        claim_batch: int = 100,
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
        self._concurrency = concurrency
        self._per_sub = per_subscription_concurrency
        self._poll_s = poll_interval_s
        self._handlers = dict(handlers or {})
        self._signal = signal
        self._listen = listen and engine.dialect.name == "postgresql"
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lease_s = request_timeout_s + lease_margin_s
        self._claim_batch = claim_batch
        self._wake_threshold = max(1, min(concurrency // 4, claim_batch))
        self._keys = SecretKeys()
        self._health = Health()
        self._inflight: dict[str, tuple[asyncio.Task[None], ClaimedDelivery]] = {}
        self._by_sub: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_grace_s: float | None = None
        self._active = False
        self._finished = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._completer: Completer | None = None
        self._attempted = 0
        self._pending_results = False
        self.listener: PgListener | None = None

    def __repr__(self) -> str:
        return f"Dispatcher(worker_id={self.worker_id!r})"

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
                claimed = await self._claim()
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                self._health.trouble(exc, "claim")
                await self._pause(self._health.backoff_s())
                continue
            if claimed:
                continue
            if burst:
                if self._inflight:
                    await self._wake.wait()
                    continue
                assert self._completer is not None
                await self._completer.drain()
                if self._pending_results:  # a retry may already be due: claim once more
                    self._pending_results = False
                    continue
                return
            await self._idle()

    async def _claim(self) -> int:
        free = self._concurrency - len(self._inflight)
        if free <= 0:
            return 0
        remaining = {sid: self._per_sub - n for sid, n in self._by_sub.items() if n > 0}
        rows = await claim_due(
            self._engine,
            now=self._clock.now(),
            limit=min(free, self._claim_batch),
            lease_s=self._lease_s,
            per_subscription_cap=self._per_sub,
            remaining=remaining,
            handlers=self._handlers.keys(),
        )
        self._health.ok()
        for row in rows:
            self._start(row)
        return len(rows)

    async def _idle(self) -> None:
        wait_s = self._poll_s
        if len(self._inflight) < self._concurrency:
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

    def _start(self, row: ClaimedDelivery) -> None:
        task = asyncio.create_task(self._deliver(row), name=f"payhook-{row.id}")
        self._inflight[row.id] = (task, row)
        self._by_sub[row.subscription_id] += 1

    async def _deliver(self, row: ClaimedDelivery) -> None:
        try:
            outcome = await self._attempt(row)
            self._attempted += 1
            assert self._completer is not None
            self._completer.add(self._completion(row, outcome))
        except asyncio.CancelledError:
            raise
        except Exception:  # one delivery must never take the worker down
            logger.exception(
                "unexpected error while delivering; the lease will expire and it is retried",
                extra={"action": "delivery_error", "delivery_id": row.id},
            )
        finally:
            self._inflight.pop(row.id, None)
            at_cap = self._by_sub[row.subscription_id] >= self._per_sub
            self._by_sub[row.subscription_id] -= 1
            if self._by_sub[row.subscription_id] <= 0:
                del self._by_sub[row.subscription_id]
            free = self._concurrency - len(self._inflight)
            if at_cap or free >= self._wake_threshold or not self._inflight:
                self._wake.set()

    async def _attempt(self, row: ClaimedDelivery) -> Outcome:
        if row.kind == "handler":
            handler = self._handlers.get(row.subscription_name)
            if handler is None:  # pragma: no cover - the claim only takes known handlers
                raise RuntimeError("no handler for this subscription")
            return await call_handler(handler, row, timeout_s=self._timeout_s, clock=self._clock)
        assert self._session is not None
        keys = self._keys.active(row.secrets_json, self._clock.now())
        return await post(
            self._session,
            row,
            keys=keys,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            clock=self._clock,
        )

    def _completion(self, row: ClaimedDelivery, outcome: Outcome) -> Completion:
        now = self._clock.now()
        attempted_at = now - timedelta(milliseconds=outcome.latency_ms)
        extra = {
            "delivery_id": row.id,
            "event_id": row.event_id,
            "subscription": row.subscription_name,
            "attempt": row.attempt,
        }
        disable_reason = None
        if outcome.ok:
            status, next_at = "succeeded", now
            logger.debug("delivered", extra={"action": "delivered", **extra})
        else:
            delay = self._policy.next_delay_s(row.attempt, retry_after_s=outcome.retry_after_s)
            if delay is None:
                status, next_at = "dead", now
                logger.warning(
                    "delivery is dead after %d attempts (%s)",
                    row.attempt,
                    outcome.error,
                    extra={"action": "delivery_dead", **extra},
                )
            else:
                status, next_at = "failed", now + timedelta(seconds=delay)
                self._pending_results = True
                logger.info(
                    "delivery attempt failed (%s); next attempt in %.1f s",
                    outcome.error,
                    delay,
                    extra={
                        "action": "delivery_failed",
                        "error_class": outcome.error_class,
                        **extra,
                    },
                )
            if outcome.gone:
                disable_reason = f"HTTP 410 Gone at {to_rfc3339(now)}"
                logger.warning(
                    "subscriber answered 410 Gone: disabling the subscription",
                    extra={"action": "subscription_disabled", **extra},
                )
        return Completion(
            delivery_id=row.id,
            claim_token=row.claim_token,
            subscription_id=row.subscription_id,
            status=status,
            next_attempt_at=next_at,
            attempted_at=attempted_at,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error_class=str(outcome.error_class) if outcome.error_class else None,
            error=outcome.error,
            response_body=outcome.response_body,
            disable_reason=disable_reason,
        )

    def _on_written(self, batch: Sequence[Completion], updated: set[str]) -> None:
        if any(c.status == "failed" for c in batch):
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
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"user-agent": USER_AGENT},
                trust_env=False,
                auto_decompress=False,
            )

    async def _shutdown(self, grace_s: float | None) -> None:
        """Let in-flight attempts finish for ``grace_s``, release the rest, write results."""
        tasks = [task for task, _row in self._inflight.values()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            left = [row for task, row in self._inflight.values() if task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if left:
                await self._release(left)
        if self._completer is not None and self._completer.backlog:
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
        if self._session is not None:
            await self._session.close()
            self._session = None
