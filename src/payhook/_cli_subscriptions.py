"""``payhook subscriptions list/add/enable/disable/rotate-secret`` against the database.

A secret is printed once: by ``add`` and ``rotate-secret`` (generated when not given).
Subscriptions declared in the config file are re-applied at every start, so only
``enable``/``disable`` act on them; change their URL, filters or secret in the file.
"""

from __future__ import annotations

from datetime import datetime

import click

from payhook._cli_format import echo_json, echo_table, run_on_database, short_time
from payhook.cli import _config_option, _settings, user_errors
from payhook.config import parse_duration
from payhook.errors import ConflictError
from payhook.events import to_rfc3339
from payhook.storage import Store
from payhook.storage._subscription_model import Subscription
from payhook.storage._subscriptions import (
    DEFAULT_GRACE_S,
    create_subscription,
    get_subscription,
    list_subscriptions,
    rotate_secret,
    update_subscription,
)

__all__ = ["subscriptions"]

SECRET_MASK = "whsec_********"  # noqa: S105 - what listings show instead of a secret


def _public(sub: Subscription, now: datetime, secret: str | None = None) -> dict[str, object]:
    data = sub.public_dict(now)
    data["secret"] = secret if secret is not None else (SECRET_MASK if sub.kind == "http" else None)
    return data


def _grace(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grace") from None


@click.group()
def subscriptions() -> None:
    """Manage subscriptions (where events are delivered)."""


@subscriptions.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@user_errors
def subscriptions_list(config: str | None, as_json: bool) -> None:
    """Every subscription, with its state (secrets are never shown)."""
    settings = _settings(config)

    async def work(store: Store) -> tuple[list[Subscription], datetime]:
        return await list_subscriptions(store.engine), store.clock.now()

    subs, now = run_on_database(settings, work)
    if as_json:
        echo_json({"items": [_public(s, now) for s in subs]})
        return
    rows = [
        [
            s.name,
            s.kind,
            s.source,
            "enabled" if s.enabled else f"disabled ({s.disabled_reason or 'no reason'})",
            ",".join(s.events),
            s.url,
            len(s.active_secrets(now)) if s.kind == "http" else None,
            short_time(to_rfc3339(s.updated_at)),
        ]
        for s in subs
    ]
    echo_table(["NAME", "KIND", "SOURCE", "STATE", "EVENTS", "URL", "SECRETS", "UPDATED"], rows)
    if not rows:
        click.echo("no subscriptions", err=True)


@subscriptions.command("add")
@_config_option
@click.argument("name")
@click.option("--url", required=True, help="Where to POST events (http:// or https://).")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="An event filter; repeat for several (default: '*', everything).",
)
@click.option("--secret", default=None, help="A whsec_ secret (default: a new random one).")
@click.option("--disabled", is_flag=True, help="Create it disabled.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@user_errors
def subscriptions_add(
    config: str | None,
    name: str,
    url: str,
    events: tuple[str, ...],
    secret: str | None,
    disabled: bool,
    as_json: bool,
) -> None:
    """Create a subscription; prints its signing secret once."""
    settings = _settings(config)

    async def work(store: Store) -> tuple[Subscription, str, datetime]:
        sub, created_secret = await create_subscription(
            store.engine,
            name=name,
            url=url,
            events=events or ("*",),
            secret=secret,
            enabled=not disabled,
        )
        return sub, created_secret, store.clock.now()

    sub, created_secret, now = run_on_database(settings, work)
    if as_json:
        echo_json(_public(sub, now, created_secret))
        return
    click.echo(f"subscription {sub.name} created ({'disabled' if disabled else 'enabled'})")
    click.echo(f"secret: {created_secret}")
    click.echo("(shown once: give it to the subscriber to verify webhook-signature)", err=True)


def _toggle(config: str | None, name: str, enabled: bool) -> None:
    settings = _settings(config)

    async def work(store: Store) -> Subscription:
        return await update_subscription(store.engine, name, enabled=enabled)

    sub = run_on_database(settings, work)
    click.echo(f"subscription {sub.name} {'enabled' if sub.enabled else 'disabled'}")


@subscriptions.command("enable")
@_config_option
@click.argument("name")
@user_errors
def subscriptions_enable(config: str | None, name: str) -> None:
    """Enable a subscription (also one disabled after its endpoint answered 410)."""
    _toggle(config, name, True)


@subscriptions.command("disable")
@_config_option
@click.argument("name")
@user_errors
def subscriptions_disable(config: str | None, name: str) -> None:
    """Disable a subscription: new events are no longer queued for it."""
    _toggle(config, name, False)


@subscriptions.command("rotate-secret")
@_config_option
@click.argument("name")
@click.option("--secret", default=None, help="The new whsec_ secret (default: a random one).")
@click.option(
    "--grace",
    default="24h",
    show_default=True,
    help="How long the old secret keeps signing too (0 retires it at once).",
)
@user_errors
def subscriptions_rotate_secret(
    config: str | None, name: str, secret: str | None, grace: str
) -> None:
    """Give a subscription a new secret; prints it once."""
    grace_s = _grace(grace) if grace else DEFAULT_GRACE_S
    settings = _settings(config)

    async def work(store: Store) -> tuple[Subscription, str]:
        current = await get_subscription(store.engine, name)
        if current.source == "config":
            raise ConflictError(
                f"subscription {name!r} is declared in the config file: change its secret there"
            )
        return await rotate_secret(store.engine, name, secret, grace_s)

    sub, new_secret = run_on_database(settings, work)
    click.echo(f"subscription {sub.name}: new secret {new_secret}")
    if grace_s:
        click.echo(f"(the previous secret keeps signing for {grace})", err=True)
