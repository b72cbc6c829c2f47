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
from payhook._pruner import DEFAULT_FIRST_DELAY_S, DEFAULT_INTERVAL_S, Pruner
from payhook._subscription_rules import validate_name
from payhook.config import PayhookSettings, load_settings
from payhook.errors import ConfigurationError, InvalidSubscriptionError
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
        prune_interval_s: how often the ``[retention]`` windows are applied while payhook
            runs (contract §14: hourly); ``None`` leaves pruning to ``payhook db prune``.
        prune_first_delay_s: when the first prune runs after start.
    """

    def __init__(
        self,
        settings: PayhookSettings,
        *,
        clock: Clock | None = None,
        run_dispatcher: bool = True,
        migrate: bool = True,
        prune_interval_s: float | None = DEFAULT_INTERVAL_S,
        prune_first_delay_s: float = DEFAULT_FIRST_DELAY_S,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.store = Store(
            settings.database_url, clock=self.clock, on_audit_dropped=self._audit_dropped
        )
        self.operations = Operations(
            self.store, refuse_private_targets=settings.dispatcher.refuse_private_targets
        )
        self.run_dispatcher = run_dispatcher
        self.migrate = migrate
        self._prune_interval_s = prune_interval_s
        self._prune_first_delay_s = prune_first_delay_s
        self._pruner: Pruner | None = None
        # name -> (filters, function, the name earlier payhook versions derived for it)
        self._handlers: dict[str, tuple[tuple[str, ...], Handler, str | None]] = {}
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

        The handler's subscription is named ``name``, by default ``handler:`` + the function's
        own name (``handler:mark_paid``), never its module path: the same app started as
        ``python app.py`` or as ``uvicorn app:app`` keeps one subscription. Two functions with
        the same name in one hook need ``name=`` for at least one of them.

        Raises:
            ConfigurationError: no or an invalid filter, an unusable name, or a name that is
                already registered.
        """
        if not patterns:
            raise ConfigurationError("hook.on() needs at least one event type or '*'")
        for pattern in patterns:
            if not validate_filter(pattern):
                raise ConfigurationError(f"{pattern!r} is not an event filter")

        def register(fn: Handler) -> Handler:
            where = f"{fn.__module__}.{fn.__qualname__}"
            key = name if name is not None else f"handler:{fn.__name__}"
            try:
                validate_name(key)
            except InvalidSubscriptionError:
                raise ConfigurationError(
                    f"{key!r} cannot name the handler {where}: names are 1-128 letters, digits "
                    "or _.:- characters; pass one with @hook.on(..., name='handler:…')"
                ) from None
            taken = self._handlers.get(key)
            if taken is not None:
                other = taken[1]
                if name is None and other is not fn:
                    raise ConfigurationError(
                        f"two handlers would be named {key!r}: "
                        f"{other.__module__}.{other.__qualname__} and {where}; give one a "
                        f"stable name of its own with @hook.on(..., name='handler:…')"
                    )
                raise ConfigurationError(f"a handler named {key!r} is already registered")
            legacy = f"handler:{where}" if name is None else None
            self._handlers[key] = (tuple(patterns), fn, legacy)
            return fn

        return register

    @property
    def handlers(self) -> dict[str, Handler]:
        """Registered in-process handlers by subscription name."""
        return {key: fn for key, (_p, fn, _legacy) in self._handlers.items()}

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
            for revision, description in await self.store.migrate():
                logger.info(
                    "applied %s: %s",
                    revision,
                    description,
                    extra={"action": "migrated", "revision": revision},
                )
        await self.store.start()
        await self._sync_subscriptions()
        await self._report_unregistered_handlers()
        for task in self._background:  # e.g. WeChat Pay platform-certificate refresh
            await task.prepare()
            self._tasks.append(asyncio.create_task(task.run()))
        if self.run_dispatcher:
            self._dispatcher = self.build_dispatcher()
            self._tasks.append(asyncio.create_task(self._dispatcher.run()))
        if self._prune_interval_s is not None:
            self._pruner = Pruner(
                self.operations,
                self.settings.retention,
                metrics=self.metrics,
                interval_s=self._prune_interval_s,
                first_delay_s=self._prune_first_delay_s,
            )
            self._pruner.start()
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
        if self._pruner is not None:
            await self._pruner.stop()
            self._pruner = None
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
        handlers = {key: patterns for key, (patterns, _fn, _legacy) in self._handlers.items()}
        # Rows named by the old rule (``handler:<module>.<qualname>``) that this very process
        # would have used become the new name, with their deliveries (see sync_subscriptions);
        # never a name that one of this process's handlers uses today.
        renames = {
            key: legacy
            for key, (_p, _fn, legacy) in self._handlers.items()
            if legacy and legacy not in self._handlers
        }
        result = await self.operations.sync_subscriptions(specs, handlers, renames=renames)
        for new, old in result.renamed:
            logger.warning(
                "renamed handler subscription %r to %r (handlers are now named after the "
                "function only), with its deliveries",
                old,
                new,
                extra={"action": "handler_renamed", "subscription": new},
            )

    async def _report_unregistered_handlers(self) -> None:
        """Name the enabled handler subscriptions that this process does not serve.

        A process with handlers of its own warns about each other one: it may be an orphan
        (a handler renamed or removed in the code) whose deliveries wait for ever. A process
        without handlers (``payhook serve``, ``payhook worker``, an app that only mounts
        payhook) says in one INFO line which handler subscriptions other processes serve.
        """
        try:
            subscriptions = await self.operations.subscriptions()
            gauges = await self.operations.delivery_gauges()
        except Exception:  # noqa: BLE001 - a report, never a reason not to start
            logger.warning(
                "could not list the handler subscriptions", extra={"action": "handlers_unknown"}
            )
            return
        others = [
            sub.name
            for sub in subscriptions
            if sub.kind == "handler" and sub.enabled and sub.name not in self._handlers
        ]
        if not others:
            return
        if not self._handlers:
            logger.info(
                "%d enabled handler subscription(s) are served only by the processes that "
                "register them (@hook.on): %s",
                len(others),
                ", ".join(others),
                extra={"action": "handlers_elsewhere"},
            )
            return
        for other in others:
            waiting = gauges.pending.get(other, 0)
            age = gauges.oldest_pending_age_s.get(other, 0.0)
            backlog = f"{waiting} deliveries wait for it" + (
                f" (the oldest for {_age(age)})" if waiting else ""
            )
            logger.warning(
                "handler subscription %r is enabled but not registered by this process "
                "(it registers %s); %s. If no other running process registers it, it is an "
                "orphan: disable it with `payhook subscriptions disable %s` (or PATCH "
                '/admin/subscriptions/%s {"enabled": false})',
                other,
                ", ".join(sorted(self._handlers)),
                backlog,
                other,
                other,
                extra={"action": "handler_unregistered", "subscription": other},
            )

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
            refuse_private_targets=d.refuse_private_targets,
            signal=self.store.signal,
            metrics=self.metrics,
        )

    async def refresh_gauges(self) -> None:
        """Update the pending/paused/oldest/dead gauges from the database (called by
        ``/metrics``)."""
        try:
            gauges = await self.operations.delivery_gauges()
        except Exception:  # noqa: BLE001 - metrics must render even with the database down
            logger.warning("could not read delivery gauges", extra={"action": "metrics_failed"})
            return
        metrics = self.metrics
        for gauge in (
            metrics.pending,
            metrics.oldest_pending_age,
            metrics.paused,
            metrics.oldest_paused_age,
            metrics.dead,
        ):
            gauge.clear()
        for name, count in gauges.pending.items():
            metrics.pending.labels(name).set(count)
            metrics.oldest_pending_age.labels(name).set(gauges.oldest_pending_age_s.get(name, 0.0))
        for name, count in gauges.paused.items():
            metrics.paused.labels(name).set(count)
            metrics.oldest_paused_age.labels(name).set(gauges.oldest_paused_age_s.get(name, 0.0))
        for name, count in gauges.dead.items():
            self.metrics.dead.labels(name).set(count)


def _age(seconds: float) -> str:
    """``seconds`` for a person: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
