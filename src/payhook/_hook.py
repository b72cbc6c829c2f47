"""PayHook: what a host app (or `payhook serve`) creates; wires providers, store, dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from payhook._clock import Clock, SystemClock
from payhook._metrics import Metrics
from payhook.config import PayhookSettings, load_settings
from payhook.errors import ConfigurationError
from payhook.events import Handler, validate_filter
from payhook.operations import Operations, SubscriptionSpec
from payhook.providers import BackgroundTask, Provider, ProviderContext, build_channel
from payhook.storage import PlatformCertificateTable, Store

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp

__all__ = ["Handler", "PayHook"]

logger = logging.getLogger("payhook")


class PayHook:
    """payhook in one object.

    Example::

        hook = PayHook.from_config("payhook.toml")

        @hook.on("payment.order.paid")
        async def mark_paid(event): ...

        app = Starlette(routes=[Mount("/payments", app=hook.app)], lifespan=hook.lifespan)

    Args:
        settings: the validated configuration.
        clock: time source (tests inject a fake one).
        run_dispatcher: whether :meth:`lifespan` also runs the outbound dispatcher.
        migrate: whether :meth:`lifespan` creates/upgrades the schema on start.
    """

    def __init__(
        self,
        settings: PayhookSettings,
        *,
        clock: Clock | None = None,
        run_dispatcher: bool = True,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.store = Store(
            settings.database_url, clock=self.clock, on_audit_dropped=self._audit_dropped
        )
        self.operations = Operations(self.store)
        self.run_dispatcher = run_dispatcher
        self.migrate = migrate
        self._handlers: dict[str, tuple[tuple[str, ...], Handler]] = {}
        self._background: list[BackgroundTask] = []
        self.providers: dict[str, Provider] = {}
        context = ProviderContext(
            clock=self.clock, certificates=PlatformCertificateTable(self.store.engine)
        )
        for channel in settings.channels:
            runtime = build_channel(channel, context)
            self.providers[channel.name] = runtime.provider
            self._background.extend(runtime.tasks)
        self._app: Starlette | None = None
        self._dispatcher: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = 0

    def _audit_dropped(self, channel: str, cause: str) -> None:
        self.metrics.audits_dropped.labels(channel, cause).inc()

    def __repr__(self) -> str:
        return f"PayHook(channels={sorted(self.providers)!r}, store={self.store!r})"

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> PayHook:
        """Build from a TOML file (default ``$PAYHOOK_CONFIG`` or ``./payhook.toml``)."""
        return cls(load_settings(path), **kwargs)

    # -- in-process subscribers ---------------------------------------------------------------

    def on(self, *patterns: str, name: str | None = None) -> Callable[[Handler], Handler]:
        """Register an in-process subscriber for event types matching ``patterns``.

        Handlers are deliveries like any other: same outbox, same retries, same dead state;
        a handler that raises is a failed attempt.
        """
        if not patterns:
            raise ConfigurationError("hook.on() needs at least one event type or '*'")
        for pattern in patterns:
            if not validate_filter(pattern):
                raise ConfigurationError(f"{pattern!r} is not an event filter")

        def register(fn: Handler) -> Handler:
            key = name or f"handler:{fn.__module__}.{fn.__qualname__}"
            if key in self._handlers:
                raise ConfigurationError(f"a handler named {key!r} is already registered")
            self._handlers[key] = (tuple(patterns), fn)
            return fn

        return register

    @property
    def handlers(self) -> dict[str, Handler]:
        """Registered in-process handlers by subscription name."""
        return {key: fn for key, (_p, fn) in self._handlers.items()}

    # -- ASGI ---------------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        """The ASGI app to mount (``/notify/{channel}``, health, metrics, admin)."""
        if self._app is None:
            from payhook.asgi import InboundEndpoint, create_app

            token = self.settings.admin_token
            self._app = create_app(
                inbound=InboundEndpoint(
                    providers=self.providers,
                    store=self.store,
                    clock=self.clock,
                    metrics=self.metrics,
                    max_body_bytes=self.settings.max_body_bytes,
                ),
                operations=self.operations,
                metrics=self.metrics,
                refresh_gauges=self.refresh_gauges,
                admin_token=token.get_secret_value() if token is not None else None,
                lifespan=self.lifespan,
            )
        return self._app

    def admin_app(self) -> ASGIApp | None:
        """The admin API, or None when no admin token is configured (then /admin is 404)."""
        if self.settings.admin_token is None:
            return None
        from payhook.asgi import create_admin_app

        app: ASGIApp = create_admin_app(
            self.operations, token=self.settings.admin_token.get_secret_value()
        )
        return app

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        """Start payhook for the duration of the block (give it to the host's Starlette)."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, apply migrations, upsert subscriptions, start background work."""
        self._started += 1
        if self._started > 1:
            return
        if self.migrate:
            await self.store.migrate()
        await self.store.start()
        await self._sync_subscriptions()
        for task in self._background:  # e.g. WeChat Pay platform-certificate refresh
            await task.prepare()
            self._tasks.append(asyncio.create_task(task.run()))
        if self.run_dispatcher:
            self._dispatcher = self.build_dispatcher()
            self._tasks.append(asyncio.create_task(self._dispatcher.run()))
        logger.info(
            "payhook started",
            extra={"action": "started", "channels": sorted(self.providers)},
        )

    async def stop(self) -> None:
        """Stop background work gracefully and close the database."""
        if self._started == 0:
            return
        self._started -= 1
        if self._started > 0:
            return
        if self._dispatcher is not None:
            await self._dispatcher.stop()
            self._dispatcher = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.store.close()

    async def _sync_subscriptions(self) -> None:
        specs = [
            SubscriptionSpec(
                name=s.name,
                url=s.url,
                events=tuple(s.events),
                secret=s.secret.get_secret_value(),
                enabled=s.enabled,
            )
            for s in self.settings.subscriptions
        ]
        handlers = {key: patterns for key, (patterns, _fn) in self._handlers.items()}
        await self.operations.sync_subscriptions(specs, handlers)

    def build_dispatcher(self, *, with_handlers: bool = True) -> Any:
        """A Dispatcher configured from ``[dispatcher]`` on this hook's database."""
        from payhook.dispatch import Dispatcher, RetryPolicy

        d = self.settings.dispatcher
        return Dispatcher(
            engine=self.store.engine,
            policy=RetryPolicy(schedule_s=tuple(d.retry_schedule)),
            clock=self.clock,
            request_timeout_s=d.request_timeout,
            concurrency=d.concurrency,
            per_subscription_concurrency=d.per_subscription_concurrency,
            poll_interval_s=d.poll_interval,
            handlers=self.handlers if with_handlers else {},
            signal=self.store.signal,
            metrics=self.metrics,
        )

    async def refresh_gauges(self) -> None:
        """Update the pending/oldest/dead gauges from the database (called by ``/metrics``)."""
        try:
            gauges = await self.operations.delivery_gauges()
        except Exception:  # noqa: BLE001 - metrics must render even with the database down
            logger.warning("could not read delivery gauges", extra={"action": "metrics_failed"})
            return
        self.metrics.pending.clear()
        self.metrics.oldest_pending_age.clear()
        self.metrics.dead.clear()
        for name, count in gauges.pending.items():
            self.metrics.pending.labels(name).set(count)
            self.metrics.oldest_pending_age.labels(name).set(
                gauges.oldest_pending_age_s.get(name, 0.0)
            )
        for name, count in gauges.dead.items():
            self.metrics.dead.labels(name).set(count)
