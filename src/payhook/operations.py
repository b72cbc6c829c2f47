"""The operator service: the one door through which the admin API and the CLI reach storage.

Both edges call the same verbs (list, inspect, replay, retry, recover, manage subscriptions),
so they share one algorithm per verb, one rule for what may be changed, one JSON view of a
subscription and one parser for times. Bad input raises a
:class:`~payhook.errors.RequestError` carrying its own stable ``code``; the admin API answers
with it, the CLI prints its message.

Example::

    async with Operations.open("sqlite+aiosqlite:///payhook.db") as ops:
        page = await ops.list_deliveries(status="dead", subscription="orders")
        result = await ops.recover("orders", parse_time("3d", name="since", now=ops.now()))
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from payhook._operator_io import (
    AGE_PATTERN,
    DELIVERY_STATUSES,
    SECRET_MASK,
    check_editable,
    known_delivery_id as _delivery_id,
    known_event_id as _event_id,
    known_subscription_name as _subscription_name,
    parse_cursor,
    parse_status,
    parse_time,
    subscription_json,
)
from payhook._subscription_rules import validate_name, validate_url
from payhook._types import SubscriptionKind
from payhook.errors import InvalidRequestError, SubscriptionIsHandlerError
from payhook.events import validate_filter
from payhook.storage import (
    DEFAULT_GRACE_S,
    MAX_LIMIT,
    RETENTION_TABLES,
    AttemptView,
    DeliveryGauges,
    DeliveryView,
    EventView,
    Page,
    PruneReport,
    Recovery,
    RetentionWindows,
    Store,
    Subscription,
    SubscriptionSpec,
    UpsertResult,
    connection_problem,
    create_engine,
    current_revision,
    describe_database,
    head_revision,
    missing_sqlite_file,
    pending_revisions,
    probe,
    prune as prune_rows,
    queries as reads,
    requeue as writes,
    subscriptions as subs,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "AGE_PATTERN",
    "DEFAULT_GRACE_S",
    "DELIVERY_STATUSES",
    "MAX_LIMIT",
    "RETENTION_TABLES",
    "SECRET_MASK",
    "AttemptView",
    "DeliveryGauges",
    "DeliveryView",
    "EventView",
    "Operations",
    "Page",
    "Progress",
    "PruneReport",
    "Recovery",
    "RetentionWindows",
    "Subscription",
    "SubscriptionSpec",
    "check_editable",
    "database_report",
    "parse_cursor",
    "parse_status",
    "parse_time",
    "probe_database",
    "subscription_json",
    "upgrade_database",
]

RECOVERY_BATCH = 200  # deliveries re-queued per transaction (and per progress report)

# (done, total): called after each batch of a recovery.
Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# the service


class Operations:
    """Operator verbs on one payhook database (``PayHook.operations``, or
    :meth:`Operations.open` for a command that runs without a server).

    Args:
        store: the database; its clock is the service's clock and its signal wakes an
            in-process dispatcher after a re-queue.
        refuse_private_targets: ``[dispatcher] refuse_private_targets``: new and changed
            subscription URLs may not name a private, loopback or other non-public address
            either (link-local and metadata targets are always refused).
    """

    def __init__(self, store: Store, *, refuse_private_targets: bool = False) -> None:
        self._store = store
        self._refuse_private = refuse_private_targets

    def __repr__(self) -> str:
        return f"Operations({self._store!r})"

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, database_url: str, *, diagnose: bool = True, refuse_private_targets: bool = False
    ) -> AsyncIterator[Operations]:
        """An Operations on its own connection to ``database_url``, closed on exit.

        Args:
            diagnose: refuse a SQLite file that does not exist yet (instead of creating an
                empty one), and explain database failures in one operator-facing error.
            refuse_private_targets: as for :class:`Operations`.

        Raises:
            ConfigurationError: the database file is missing or has no payhook tables.
            StorageUnavailableError: the database cannot be reached (URL shown without
                password).
        """
        problem = connection_problem(database_url, None) if diagnose else None
        if problem is not None:
            raise problem
        store = Store(database_url)
        try:
            yield cls(store, refuse_private_targets=refuse_private_targets)
        except Exception as exc:
            translated = connection_problem(database_url, exc) if diagnose else None
            if translated is None:
                raise
            raise translated from None
        finally:
            await store.close()

    @property
    def _engine(self) -> AsyncEngine:
        return self._store.engine

    def now(self) -> datetime:
        """The service's current time."""
        return self._store.clock.now()

    async def ready(self) -> bool:
        """Whether the database answers (and takes writes)."""
        return await self._store.ping()

    async def migrate(self) -> None:
        """Create or upgrade payhook's tables."""
        await self._store.migrate()

    # -- events -------------------------------------------------------------------------------

    async def list_events(
        self,
        *,
        order_id: str | None = None,
        event_type: str | None = None,
        channel: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventView]:
        """Events, newest first (``event_type`` is a filter: a type, ``prefix.*`` or ``*``).

        Raises:
            InvalidRequestError: a bad filter, limit or cursor.
        """
        if event_type is not None and not validate_filter(event_type):
            raise InvalidRequestError("type: an event type, 'prefix.*' or '*'")
        return await reads.list_events(
            self._engine,
            order_id=order_id,
            event_type=event_type,
            channel=channel,
            since=since,
            until=until,
            limit=limit,
            after_id=parse_cursor(cursor, "evt") if cursor is not None else None,
        )

    async def event(self, event_id: str) -> tuple[EventView, tuple[DeliveryView, ...]]:
        """One event and its deliveries (oldest first) with their attempts.

        Raises:
            EventNotFoundError: no event has this id.
        """
        event = await reads.get_event(self._engine, _event_id(event_id))
        found = await reads.deliveries_of_events(self._engine, [event.id], now=self.now())
        return event, found[event.id]

    async def deliveries_of_events(
        self, event_ids: Sequence[str], *, with_attempts: bool = True
    ) -> dict[str, tuple[DeliveryView, ...]]:
        """The deliveries of each event, keyed by event id."""
        return await reads.deliveries_of_events(
            self._engine, event_ids, now=self.now(), with_attempts=with_attempts
        )

    async def replay(self, event_id: str, subscription: str | None = None) -> list[DeliveryView]:
        """Send an event again (same event id) to every enabled subscription whose filters
        match, or to ``subscription`` only; returns the new deliveries.

        Raises:
            EventNotFoundError: no event has this id.
            SubscriptionNotFoundError: no subscription has this name.
        """
        ids = await writes.replay_event(
            self._engine, _event_id(event_id), subscription, now=self.now()
        )
        if ids:
            self._store.signal.notify()
        return [await self.delivery(i) for i in ids]

    # -- deliveries ---------------------------------------------------------------------------

    async def list_deliveries(
        self,
        *,
        status: str | None = None,
        subscription: str | None = None,
        event_id: str | None = None,
        order_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        with_attempts: bool = True,
    ) -> Page[DeliveryView]:
        """Deliveries, newest first, each with its attempts unless ``with_attempts=False``.

        Raises:
            InvalidRequestError: a bad status, limit or cursor.
        """
        return await reads.list_deliveries(
            self._engine,
            status=parse_status(status) if status is not None else None,
            subscription=subscription,
            event_id=event_id,
            order_id=order_id,
            since=since,
            until=until,
            limit=limit,
            after_id=parse_cursor(cursor, "dlv") if cursor is not None else None,
            with_attempts=with_attempts,
            now=self.now(),
        )

    async def delivery(self, delivery_id: str) -> DeliveryView:
        """One delivery with its attempts.

        Raises:
            DeliveryNotFoundError: no delivery has this id.
        """
        return await reads.get_delivery(self._engine, _delivery_id(delivery_id), now=self.now())

    async def retry(self, delivery_id: str) -> DeliveryView:
        """Re-queue one delivery now (also a dead or succeeded one, with a fresh schedule).

        Raises:
            DeliveryNotFoundError: no delivery has this id.
            DeliveryInFlightError: a worker is sending it right now.
        """
        await writes.retry_delivery(self._engine, _delivery_id(delivery_id), now=self.now())
        self._store.signal.notify()
        return await self.delivery(delivery_id)

    async def recover(
        self,
        subscription: str,
        since: datetime,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> Recovery:
        """Re-queue every dead delivery of ``subscription`` whose last attempt was at or after
        ``since`` (after a subscriber was down), in batches; ``progress(done, total)`` is
        called before the first batch and after each one. A delivery that changed meanwhile
        (retried, being sent, deleted) is skipped.

        Raises:
            SubscriptionNotFoundError: no subscription has this name.
        """
        sub_id, ids = await writes.dead_delivery_ids(
            self._engine, _subscription_name(subscription), since
        )
        if dry_run:
            return Recovery(found=len(ids))
        requeued = 0
        if progress is not None:
            progress(0, len(ids))
        for start in range(0, len(ids), RECOVERY_BATCH):
            batch = ids[start : start + RECOVERY_BATCH]
            requeued += await writes.requeue_dead(
                self._engine, sub_id, since, batch, now=self.now()
            )
            if progress is not None:
                progress(start + len(batch), len(ids))
        if requeued:
            self._store.signal.notify()
        return Recovery(found=len(ids), requeued=requeued, skipped=len(ids) - requeued)

    async def delivery_gauges(self) -> DeliveryGauges:
        """Waiting and dead deliveries per subscription (for ``/metrics``)."""
        return await reads.delivery_gauges(self._engine, now=self.now())

    # -- retention ----------------------------------------------------------------------------

    async def prune(
        self,
        windows: RetentionWindows,
        *,
        dry_run: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> PruneReport:
        """Apply the retention windows now (contract §14), in short batches; with ``dry_run``
        count what would go and delete nothing. Never removes an event that has a pending or
        failed delivery, nor the attempts of such a delivery.

        Args:
            stop: asked between batches (shutdown); True ends the prune early.

        Raises:
            StorageUnavailableError: the database cannot be reached or is locked.
        """
        return await prune_rows(self._engine, windows, now=self.now(), dry_run=dry_run, stop=stop)

    # -- subscriptions ------------------------------------------------------------------------

    async def subscriptions(self) -> list[Subscription]:
        """Every subscription, by name."""
        return await subs.list_subscriptions(self._engine)

    async def subscription(self, name: str) -> Subscription:
        """One subscription.

        Raises:
            SubscriptionNotFoundError: no subscription has this name.
        """
        return await subs.get_subscription(self._engine, _subscription_name(name))

    async def create_subscription(
        self,
        *,
        name: str,
        url: str,
        events: Sequence[str] = ("*",),
        secret: str | None = None,
        enabled: bool = True,
    ) -> tuple[Subscription, str]:
        """Create a subscription; returns it and its secret (generated when not given).

        Raises:
            InvalidSubscriptionError: invalid name, URL, filters or secret (the subclass says
                which; :class:`~payhook.errors.RefusedTargetError` for a refused target).
            SubscriptionExistsError: the name is taken.
        """
        if self._refuse_private:
            validate_name(name)
            validate_url(url, refuse_private=True)
        return await subs.create_subscription(
            self._engine,
            name=name,
            url=url,
            events=events,
            secret=secret,
            enabled=enabled,
            clock=self._store.clock,
        )

    async def update_subscription(
        self,
        name: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        enabled: bool | None = None,
        secret: str | None = None,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> Subscription:
        """Change a subscription; arguments left None stay as they are. Subscriptions owned
        by the config file or by code may only be enabled or disabled (:func:`check_editable`).

        Raises:
            SubscriptionNotFoundError: no subscription has this name.
            SubscriptionManagedByConfigError, SubscriptionIsHandlerError: see above.
            InvalidSubscriptionError: invalid URL, filters or secret.
        """
        current = await self.subscription(name)
        if url is not None or events is not None or secret is not None:
            check_editable(current, what="change its URL, event filters or secret")
        if url is not None and self._refuse_private:
            validate_url(url, refuse_private=True)
        return await subs.update_subscription(
            self._engine,
            current.name,
            url=url,
            events=events,
            enabled=enabled,
            secret=secret,
            grace_s=grace_s,
            clock=self._store.clock,
        )

    async def rotate_secret(
        self, name: str, secret: str | None = None, *, grace_s: float = DEFAULT_GRACE_S
    ) -> tuple[Subscription, str]:
        """Give a subscription a new secret (generated when not given); the previous one
        keeps signing for ``grace_s``. Returns the subscription and the new secret.

        Raises:
            SubscriptionNotFoundError: no subscription has this name.
            SubscriptionManagedByConfigError, SubscriptionIsHandlerError: see
                :func:`check_editable`.
            InvalidSecretError: the secret is weak or malformed.
        """
        current = await self.subscription(name)
        check_editable(current, what="change its secret")
        return await subs.rotate_secret(
            self._engine, current.name, secret, grace_s, clock=self._store.clock
        )

    async def delete_subscription(self, name: str) -> None:
        """Delete a subscription with its deliveries.

        An in-process handler's subscription can be deleted once it is disabled (an orphan
        left by a renamed or removed handler); a process that still registers it creates it
        again, enabled and empty, at its next start.

        Raises:
            SubscriptionNotFoundError: no subscription has this name.
            SubscriptionManagedByConfigError, SubscriptionIsHandlerError: see
                :func:`check_editable`; an enabled handler subscription.
        """
        current = await self.subscription(name)
        if SubscriptionKind(current.kind) is SubscriptionKind.HANDLER:
            if current.enabled:
                raise SubscriptionIsHandlerError(
                    f"subscription {current.name!r} is an in-process handler: disable it "
                    "first (deleting it deletes its undelivered deliveries too)"
                )
        else:
            check_editable(current, what="remove it")
        await subs.delete_subscription(self._engine, current.name)

    async def sync_subscriptions(
        self,
        specs: Sequence[SubscriptionSpec],
        handlers: Mapping[str, Sequence[str]],
        *,
        renames: Mapping[str, str] | None = None,
    ) -> UpsertResult:
        """Make the stored subscriptions match the config file and the registered handlers
        (run at start).

        Args:
            renames: handler name -> the name an older payhook gave the same handler; a
                handler subscription stored under the old name takes the new one (with its
                deliveries) when the new name is not stored yet.

        Raises:
            ConfigurationError: a spec is invalid.
            SubscriptionIsHandlerError: a name is used by both kinds.
        """
        clock = self._store.clock
        result = await subs.upsert_config_subscriptions(self._engine, specs, clock=clock)
        renamed: list[tuple[str, str]] = []
        for name, patterns in handlers.items():
            old = (renames or {}).get(name)
            if old is not None and await subs.rename_handler_subscription(
                self._engine, old, name, clock=clock
            ):
                renamed.append((name, old))
            await subs.ensure_handler_subscription(self._engine, name, patterns, clock=clock)
        return dataclasses.replace(result, renamed=tuple(renamed))


# -- the database itself (no Operations needed: `db upgrade`, `check-config --connect`) ---------


async def probe_database(database_url: str) -> None:
    """Connect once to ``database_url`` (never creating a SQLite file).

    Raises:
        ConfigurationError: the database or user does not exist.
        StorageUnavailableError: the server cannot be reached (one line naming the URL with
            its password masked, host:port and database).
    """
    await probe(database_url)


async def upgrade_database(database_url: str) -> list[tuple[str, str]]:
    """Apply the pending migrations; returns ``(revision, description)`` of each one applied."""
    store = Store(database_url)
    try:
        return await store.migrate()
    finally:
        await store.close()


async def database_report(database_url: str) -> list[str]:
    """What ``check-config --connect`` found in the database, as lines to print.

    Raises:
        ConfigurationError: the database or user does not exist.
        StorageUnavailableError: the server cannot be reached (the one line every command
            prints for a database it cannot open).
    """

    await probe(database_url)
    where = describe_database(database_url)
    if missing_sqlite_file(database_url):
        pending = pending_revisions(None)
        return [
            f"database {where}: file does not exist yet "
            f"({len(pending)} migrations pending; `payhook serve` or `payhook db upgrade` "
            "creates it)"
        ]
    engine = create_engine(database_url)
    try:
        current = await current_revision(engine)
    finally:
        await engine.dispose()
    lines = [f"database {where}: reachable"]
    pending = pending_revisions(current)
    version = current or "none (no payhook tables)"
    if not pending:
        lines.append(f"schema: {version}, up to date")
    else:
        ids = ", ".join(rev for rev, _ in pending)
        lines.append(
            f"schema: {version}, {len(pending)} migrations pending "
            f"({ids}; head {head_revision()}); run `payhook db upgrade`"
        )
    return lines
