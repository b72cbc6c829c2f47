"""Subscriptions: where events go. Declared in the config, managed over the admin API, or
registered by in-process handlers; stored in ``payhook_subscriptions``.

Secrets are kept as a JSON list, newest first: ``[{"secret": "whsec_…", "expires_at": null}]``.
During a rotation the old secret carries an ``expires_at`` and every delivery is signed
with each secret still active, so receivers keep verifying while they switch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payhook._clock import Clock, SystemClock
from payhook._subscription_rules import (
    validate_events,
    validate_name,
    validate_secret,
    validate_url,
)
from payhook.errors import (
    ConfigurationError,
    InvalidSubscriptionError,
    SubscriptionExistsError,
    SubscriptionIsHandlerError,
    SubscriptionNotFoundError,
)
from payhook.events import new_id
from payhook.signing import generate_secret
from payhook.storage._subscription_model import (
    REASON_CONFIG,
    REASON_REMOVED,
    Subscription,
    SubscriptionSecret,
    SubscriptionSpec,
    UpsertResult,
    dump_secrets,
    from_row,
    rotated,
)
from payhook.storage._tables import subscriptions
from payhook.storage._txn import read_tx, write_tx

__all__ = [
    "DEFAULT_GRACE_S",
    "Subscription",
    "SubscriptionSecret",
    "SubscriptionSpec",
    "UpsertResult",
    "create_subscription",
    "delete_subscription",
    "ensure_handler_subscription",
    "get_subscription",
    "list_subscriptions",
    "rename_handler_subscription",
    "rotate_secret",
    "update_subscription",
    "upsert_config_subscriptions",
]

DEFAULT_GRACE_S = 86400.0


def _not_found(name: str) -> SubscriptionNotFoundError:
    return SubscriptionNotFoundError(f"no subscription named {name!r}")


def _check_specs(specs: Sequence[SubscriptionSpec]) -> list[str]:
    try:
        names = [validate_name(spec.name) for spec in specs]
        for spec in specs:
            validate_url(spec.url)
            validate_events(spec.events)
            validate_secret(spec.secret)
    except InvalidSubscriptionError as exc:
        raise ConfigurationError(exc.message, reason=exc.reason) from None
    if len(set(names)) != len(names):
        raise ConfigurationError(
            "two configured subscriptions share a name", reason="invalid_subscription"
        )
    return names


async def _fetch(conn: AsyncConnection, name: str) -> Subscription | None:
    row = (await conn.execute(select(subscriptions).where(subscriptions.c.name == name))).first()
    return from_row(row) if row is not None else None


async def _lock_names(conn: AsyncConnection) -> None:
    # Several workers may start at once against one PostgreSQL: serialise the upserts.
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('payhook_subscriptions'))"))


# --------------------------------------------------------------------------------------------
# verbs


async def upsert_config_subscriptions(
    engine: AsyncEngine,
    specs: Sequence[SubscriptionSpec],
    *,
    clock: Clock | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> UpsertResult:
    """Make the stored subscriptions match the config file (run at start).

    - A new name is created (``source = "config"``).
    - An existing one gets the configured URL and events; a changed secret becomes the
      primary one and the previous secret stays active until ``now + grace_s``.
    - ``enabled = false`` disables it; ``enabled = true`` re-enables it only if the config
      had disabled it: a subscription disabled at run time (HTTP 410, admin API) stays
      disabled across restarts until an operator enables it again.
    - Config subscriptions no longer in the file are disabled (not deleted: their
      deliveries and history are kept) and come back when they reappear.

    Raises:
        ConfigurationError: a spec is invalid or two specs share a name.
        SubscriptionIsHandlerError: a name belongs to an in-process handler subscription.
        StorageUnavailableError: the database is unavailable.
    """
    clock = clock or SystemClock()
    names = _check_specs(specs)
    created: list[str] = []
    changed: list[str] = []
    rotations: list[str] = []
    disabled: list[str] = []
    async with write_tx(engine) as conn:
        await _lock_names(conn)
        now = clock.now()
        rows = (await conn.execute(select(subscriptions))).all()
        stored = {row.name: from_row(row) for row in rows}
        for spec in specs:
            current = stored.get(spec.name)
            if current is None:
                await conn.execute(
                    insert(subscriptions).values(
                        id=new_id("sub"),
                        name=spec.name,
                        kind="http",
                        url=spec.url,
                        events=json.dumps(list(spec.events)),
                        secrets=dump_secrets([SubscriptionSecret(secret=spec.secret)]),
                        enabled=spec.enabled,
                        disabled_reason=None if spec.enabled else REASON_CONFIG,
                        source="config",
                        created_at=now,
                        updated_at=now,
                    )
                )
                created.append(spec.name)
                continue
            if current.kind != "http":
                raise SubscriptionIsHandlerError(
                    f"subscription {spec.name!r} is an in-process handler, not a URL"
                )
            values: dict[str, Any] = {}
            if current.url != spec.url:
                values["url"] = spec.url
            if current.events != tuple(spec.events):
                values["events"] = json.dumps(list(spec.events))
            if current.source != "config":
                values["source"] = "config"
            primary = current.secrets[0].secret if current.secrets else None
            if primary != spec.secret or current.secrets[0].expires_at is not None:
                values["secrets"] = dump_secrets(
                    rotated(current.secrets, spec.secret, now=now, grace_s=grace_s)
                )
                rotations.append(spec.name)
            if not spec.enabled and current.enabled:
                values.update(enabled=False, disabled_reason=REASON_CONFIG)
            elif (
                spec.enabled
                and not current.enabled
                and current.disabled_reason in (REASON_CONFIG, REASON_REMOVED)
            ):
                values.update(enabled=True, disabled_reason=None)
            if values:
                values["updated_at"] = now
                await conn.execute(
                    update(subscriptions).where(subscriptions.c.id == current.id).values(**values)
                )
                changed.append(spec.name)
        wanted = set(names)
        for sub in stored.values():
            if sub.source == "config" and sub.name not in wanted and sub.enabled:
                await conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.id == sub.id)
                    .values(enabled=False, disabled_reason=REASON_REMOVED, updated_at=now)
                )
                disabled.append(sub.name)
    return UpsertResult(
        created=tuple(created),
        updated=tuple(changed),
        rotated=tuple(rotations),
        disabled=tuple(disabled),
    )


async def ensure_handler_subscription(
    engine: AsyncEngine, name: str, events: Sequence[str], *, clock: Clock | None = None
) -> Subscription:
    """Register (or update the filters of) an in-process handler subscription.

    Handler subscriptions have ``kind = "handler"``, no URL and no secret; their
    deliveries go through the same outbox, retries and dead state as HTTP ones.

    Raises:
        InvalidSubscriptionError: an invalid name or filter.
        SubscriptionIsHandlerError: the name belongs to an HTTP subscription.
    """
    validate_name(name)
    filters = validate_events(events)
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        await _lock_names(conn)
        now = clock.now()
        current = await _fetch(conn, name)
        if current is None:
            await conn.execute(
                insert(subscriptions).values(
                    id=new_id("sub"),
                    name=name,
                    kind="handler",
                    url=None,
                    events=json.dumps(list(filters)),
                    secrets="[]",
                    enabled=True,
                    disabled_reason=None,
                    source="code",
                    created_at=now,
                    updated_at=now,
                )
            )
        elif current.kind != "handler":
            raise SubscriptionIsHandlerError(
                f"subscription {name!r} already exists as an HTTP subscription"
            )
        elif current.events != filters:
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == current.id)
                .values(events=json.dumps(list(filters)), updated_at=now)
            )
        result = await _fetch(conn, name)
    assert result is not None
    return result


async def rename_handler_subscription(
    engine: AsyncEngine, old: str, new: str, *, clock: Clock | None = None
) -> bool:
    """Give the handler subscription ``old`` the name ``new``, keeping its id, filters,
    state and deliveries, if ``old`` is a handler subscription and ``new`` is free (one
    transaction, serialised with other starting processes). Whether it was renamed.

    Raises:
        InvalidSubscriptionError: ``new`` is not a valid name.
    """
    validate_name(new)
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        await _lock_names(conn)
        if await _fetch(conn, new) is not None:
            return False
        current = await _fetch(conn, old)
        if current is None or current.kind != "handler":
            return False
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == current.id)
            .values(name=new, updated_at=clock.now())
        )
    return True


async def list_subscriptions(engine: AsyncEngine) -> list[Subscription]:
    """Every subscription, by name."""
    async with read_tx(engine) as conn:
        rows = (await conn.execute(select(subscriptions).order_by(subscriptions.c.name))).all()
    return [from_row(row) for row in rows]


async def get_subscription(engine: AsyncEngine, name: str) -> Subscription:
    """One subscription by name.

    Raises:
        SubscriptionNotFoundError: there is none by that name.
    """
    async with read_tx(engine) as conn:
        found = await _fetch(conn, name)
    if found is None:
        raise _not_found(name)
    return found


async def create_subscription(
    engine: AsyncEngine,
    *,
    name: str,
    url: str,
    events: Sequence[str],
    secret: str | None = None,
    enabled: bool = True,
    clock: Clock | None = None,
) -> tuple[Subscription, str]:
    """Create an HTTP subscription (admin API); returns it and its secret (shown once).

    Args:
        secret: a ``whsec_`` secret; one is generated when omitted.

    Raises:
        InvalidSubscriptionError: invalid name, URL, filters or secret (a subclass says which).
        SubscriptionExistsError: the name is taken.
    """
    validate_name(name)
    validate_url(url)
    filters = validate_events(events)
    secret = validate_secret(secret) if secret is not None else generate_secret()
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        await _lock_names(conn)
        now = clock.now()
        if await _fetch(conn, name) is not None:
            raise SubscriptionExistsError(f"subscription {name!r} already exists")
        await conn.execute(
            insert(subscriptions).values(
                id=new_id("sub"),
                name=name,
                kind="http",
                url=url,
                events=json.dumps(list(filters)),
                secrets=dump_secrets([SubscriptionSecret(secret=secret)]),
                enabled=enabled,
                disabled_reason=None if enabled else "disabled by an operator",
                source="api",
                created_at=now,
                updated_at=now,
            )
        )
        created = await _fetch(conn, name)
    assert created is not None
    return created, secret


async def update_subscription(
    engine: AsyncEngine,
    name: str,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
    secret: str | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    disabled_reason: str | None = None,
    clock: Clock | None = None,
) -> Subscription:
    """Change a subscription; arguments left ``None`` stay as they are.

    ``enabled=True`` clears ``disabled_reason`` (e.g. after a 410); ``secret`` rotates
    with ``grace_s`` of overlap (see :func:`rotate_secret`).

    Raises:
        SubscriptionNotFoundError: no such subscription.
        InvalidSubscriptionError: invalid URL, filters or secret.
        SubscriptionIsHandlerError: a URL or secret for an in-process handler.
    """
    if url is not None:
        validate_url(url)
    filters = validate_events(events) if events is not None else None
    if secret is not None:
        validate_secret(secret)
    clock = clock or SystemClock()
    async with write_tx(engine) as conn:
        now = clock.now()
        current = await _fetch(conn, name)
        if current is None:
            raise _not_found(name)
        if current.kind != "http" and (url is not None or secret is not None):
            raise SubscriptionIsHandlerError(
                f"{name!r} is an in-process handler subscription: it has no URL or secret"
            )
        values: dict[str, Any] = {"updated_at": now}
        if url is not None:
            values["url"] = url
        if filters is not None:
            values["events"] = json.dumps(list(filters))
        if enabled is True:
            values.update(enabled=True, disabled_reason=None)
        elif enabled is False:
            values.update(
                enabled=False, disabled_reason=disabled_reason or "disabled by an operator"
            )
        if secret is not None:
            values["secrets"] = dump_secrets(
                rotated(current.secrets, secret, now=now, grace_s=grace_s)
            )
        await conn.execute(
            update(subscriptions).where(subscriptions.c.id == current.id).values(**values)
        )
        result = await _fetch(conn, name)
    assert result is not None
    return result


async def rotate_secret(
    engine: AsyncEngine,
    name: str,
    new_secret: str | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    *,
    clock: Clock | None = None,
) -> tuple[Subscription, str]:
    """Make ``new_secret`` (generated when ``None``) the primary secret of ``name``.

    Until ``now + grace_s`` deliveries carry a signature with the old secret too;
    ``grace_s=0`` retires the old secret at once. Returns the subscription and the new
    secret (show it once; it is never logged).

    Raises:
        SubscriptionNotFoundError: no such subscription.
        InvalidSecretError: the secret is weak or malformed.
        SubscriptionIsHandlerError: the subscription is an in-process handler.
    """
    secret = validate_secret(new_secret) if new_secret is not None else generate_secret()
    updated = await update_subscription(engine, name, secret=secret, grace_s=grace_s, clock=clock)
    return updated, secret


async def delete_subscription(engine: AsyncEngine, name: str) -> None:
    """Delete a subscription with its deliveries and their attempts.

    Raises:
        SubscriptionNotFoundError: no such subscription.
    """
    async with write_tx(engine) as conn:
        result = await conn.execute(delete(subscriptions).where(subscriptions.c.name == name))
        if not result.rowcount:
            raise _not_found(name)
