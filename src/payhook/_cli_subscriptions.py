"""``payhook subscriptions list/add/enable/disable/delete/rotate-secret`` against the database,
through the operator service (the admin API's rules and JSON view).

A secret is printed once: by ``add`` and ``rotate-secret`` (generated when not given).
Subscriptions declared in the config file are re-applied at every start, so only
``enable``/``disable`` act on them; change their URL, filters or secret in the file.
"""

from __future__ import annotations

from datetime import datetime

import click

from payhook._cli_common import config_option, load, run_operations, user_errors
from payhook._cli_format import echo_json, echo_table, short_time
from payhook._targets import mask_url
from payhook._types import SubscriptionKind
from payhook.config import parse_duration
from payhook.events import to_rfc3339
from payhook.operations import DEFAULT_GRACE_S, Operations, Subscription, subscription_json

__all__ = ["subscriptions"]


def _grace(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grace") from None


@click.group()
def subscriptions() -> None:
    """Manage subscriptions (where events are delivered)."""


@subscriptions.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@user_errors
def subscriptions_list(config: str | None, as_json: bool) -> None:
    """Every subscription, with its state (secrets are never shown)."""
    settings = load(config)

    async def work(ops: Operations) -> tuple[list[Subscription], datetime]:
        return await ops.subscriptions(), ops.now()

    subs, now = run_operations(settings, work)
    if as_json:
        echo_json({"items": [subscription_json(s, now) for s in subs]})
        return
    rows = [
        [
            s.name,
            s.kind,
            s.source,
            "enabled" if s.enabled else f"disabled ({s.disabled_reason or 'no reason'})",
            ",".join(s.events),
            mask_url(s.url) if s.url is not None else None,
            len(s.active_secrets(now)) if SubscriptionKind(s.kind).signed else None,
            short_time(to_rfc3339(s.updated_at)),
        ]
        for s in subs
    ]
    echo_table(["NAME", "KIND", "SOURCE", "STATE", "EVENTS", "URL", "SECRETS", "UPDATED"], rows)
    if not rows:
        click.echo("no subscriptions", err=True)


@subscriptions.command("add")
@config_option
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
    settings = load(config)

    async def work(ops: Operations) -> tuple[Subscription, str, datetime]:
        sub, created_secret = await ops.create_subscription(
            name=name,
            url=url,
            events=events or ("*",),
            secret=secret,
            enabled=not disabled,
        )
        return sub, created_secret, ops.now()

    sub, created_secret, now = run_operations(settings, work)
    if as_json:
        echo_json(subscription_json(sub, now, secret=created_secret))
        return
    click.echo(f"subscription {sub.name} created ({'disabled' if disabled else 'enabled'})")
    click.echo(f"secret: {created_secret}")
    click.echo("(shown once: give it to the subscriber to verify webhook-signature)", err=True)


def _toggle(config: str | None, name: str, enabled: bool) -> None:
    settings = load(config)

    async def work(ops: Operations) -> Subscription:
        return await ops.update_subscription(name, enabled=enabled)

    sub = run_operations(settings, work)
    click.echo(f"subscription {sub.name} {'enabled' if sub.enabled else 'disabled'}")


@subscriptions.command("enable")
@config_option
@click.argument("name")
@user_errors
def subscriptions_enable(config: str | None, name: str) -> None:
    """Enable a subscription (also one disabled after its endpoint answered 410)."""
    _toggle(config, name, True)


@subscriptions.command("disable")
@config_option
@click.argument("name")
@user_errors
def subscriptions_disable(config: str | None, name: str) -> None:
    """Disable a subscription: new events are no longer queued for it."""
    _toggle(config, name, False)


@subscriptions.command("delete")
@config_option
@click.argument("name")
@click.confirmation_option(
    "--yes", prompt="Delete the subscription and all its deliveries (also undelivered ones)?"
)
@user_errors
def subscriptions_delete(config: str | None, name: str) -> None:
    """Delete a subscription with its deliveries: one added with `add` (or the admin API), or
    an in-process handler's once it is disabled (an orphan left by a renamed handler).
    Config-file subscriptions are removed from the file instead."""
    settings = load(config)

    async def work(ops: Operations) -> None:
        await ops.delete_subscription(name)

    run_operations(settings, work)
    click.echo(f"subscription {name} deleted with its deliveries")


@subscriptions.command("rotate-secret")
@config_option
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
    settings = load(config)

    async def work(ops: Operations) -> tuple[Subscription, str]:
        return await ops.rotate_secret(name, secret, grace_s=grace_s)

    sub, new_secret = run_operations(settings, work)
    click.echo(f"subscription {sub.name}: new secret {new_secret}")
    if grace_s:
        click.echo(f"(the previous secret keeps signing for {grace})", err=True)
