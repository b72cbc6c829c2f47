"""Operator commands (contract §2): ``payhook events …`` and ``payhook deliveries …``,
straight against the database (no server needed), through the operator service the admin
API uses too.

Tables for people, ``--json`` for scripts. Exit codes: 0 ok, 1 user error (unknown id,
invalid value, database problem: one line on stderr), 2 usage error.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime
from typing import Any

import click

from payhook._cli_common import TimeParam, config_option, load, run_operations, user_errors
from payhook._cli_format import echo_json, echo_table, short_time
from payhook.errors import RequestError
from payhook.events import format_amount, to_rfc3339, validate_filter
from payhook.operations import (
    DELIVERY_STATUSES,
    MAX_LIMIT,
    DeliveryView,
    EventView,
    Operations,
    Page,
    Recovery,
    parse_cursor,
)

__all__ = ["deliveries", "events"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_limit_option = click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="How many rows (newest first).",
)
_cursor_option = click.option("--cursor", default=None, help="Continue after a previous page.")


def _check_cursor(cursor: str | None, prefix: str) -> None:
    # A usage error (exit 2) before anything touches the database.
    if cursor is not None:
        try:
            parse_cursor(cursor, prefix)
        except RequestError:
            raise click.BadParameter(
                "not a cursor printed by this command", param_hint="--cursor"
            ) from None


def _more(next_cursor: str | None) -> None:
    if next_cursor:
        click.echo(f"(more: repeat with --cursor {next_cursor})", err=True)


def _status_cell(d: DeliveryView) -> str:
    return f"{d.subscription}:{d.status}"


# --------------------------------------------------------------------------------------------
# events


@click.group()
def events() -> None:
    """Inspect and re-publish events."""


@events.command("list")
@config_option
@click.option("--order", "order_id", default=None, help="The merchant order id (out_trade_no).")
@click.option("--type", "event_type", default=None, help="An event type, 'prefix.*' or '*'.")
@click.option("--channel", default=None, help="Only events received on this channel.")
@click.option("--since", type=TimeParam(), default=None, help="Created at or after (or an age).")
@click.option("--until", type=TimeParam(), default=None, help="Created before (or an age).")
@_limit_option
@_cursor_option
@_json_option
@user_errors
def events_list(
    config: str | None,
    order_id: str | None,
    event_type: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Events, newest first, with where each was delivered."""
    if event_type is not None and not validate_filter(event_type):
        raise click.BadParameter("an event type, 'prefix.*' or '*'", param_hint="--type")
    _check_cursor(cursor, "evt")
    settings = load(config)

    async def work(
        ops: Operations,
    ) -> tuple[Page[EventView], dict[str, tuple[DeliveryView, ...]]]:
        page = await ops.list_events(
            order_id=order_id,
            event_type=event_type,
            channel=channel,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        found = await ops.deliveries_of_events([e.id for e in page.items], with_attempts=False)
        return page, found

    page, found = run_operations(settings, work)
    if as_json:
        items = []
        for event in page.items:
            data = event.to_json()
            data["deliveries"] = [d.to_json(with_attempts=False) for d in found[event.id]]
            items.append(data)
        echo_json({"items": items, "next_cursor": page.next_cursor})
        return
    rows = []
    for event in page.items:
        data = event.body.get("data", {})
        amount = data.get("refund_amount") or data.get("amount")
        rows.append(
            [
                event.id,
                short_time(to_rfc3339(event.created_at)),
                event.type,
                event.channel,
                event.order_id,
                format_amount(amount) if isinstance(amount, int) else None,
                " ".join(_status_cell(d) for d in found[event.id]) or "(no subscription)",
            ]
        )
    echo_table(["ID", "CREATED", "TYPE", "CHANNEL", "ORDER", "AMOUNT", "DELIVERIES"], rows)
    if not rows:
        click.echo("no events match", err=True)
    _more(page.next_cursor)


@events.command("show")
@config_option
@click.argument("event_id")
@_json_option
@user_errors
def events_show(config: str | None, event_id: str, as_json: bool) -> None:
    """One event (its body) and its deliveries with their attempts."""
    settings = load(config)

    async def work(ops: Operations) -> tuple[EventView, tuple[DeliveryView, ...]]:
        return await ops.event(event_id)

    event, found = run_operations(settings, work)
    if as_json:
        echo_json({**event.to_json(), "deliveries": [d.to_json() for d in found]})
        return
    echo_json(event.to_json())
    _delivery_table(found)


@events.command("replay")
@config_option
@click.argument("event_id")
@click.option("--subscription", default=None, help="Only to this subscription.")
@_json_option
@user_errors
def events_replay(
    config: str | None, event_id: str, subscription: str | None, as_json: bool
) -> None:
    """Send an event again (same event id) to every matching subscription, or to one."""
    settings = load(config)

    async def work(ops: Operations) -> list[DeliveryView]:
        return await ops.replay(event_id, subscription)

    created = run_operations(settings, work)
    if as_json:
        echo_json({"event_id": event_id, "deliveries": [d.to_json() for d in created]})
        return
    if not created:
        click.echo(f"{event_id}: no enabled subscription matches this event", err=True)
        return
    for d in created:
        click.echo(f"{event_id} queued for {d.subscription} as {d.id}")


# --------------------------------------------------------------------------------------------
# deliveries


@click.group()
def deliveries() -> None:
    """Inspect, retry and recover deliveries."""


def _delivery_table(items: tuple[DeliveryView, ...] | list[DeliveryView]) -> None:
    rows = [
        [
            d.id,
            d.event_id,
            d.order_id,
            d.subscription,
            d.status + (" (sending)" if d.in_flight else ""),
            d.attempt_count,
            short_time(to_rfc3339(d.last_attempt_at)) if d.last_attempt_at else None,
            d.last_status_code or d.last_error,
        ]
        for d in items
    ]
    echo_table(
        ["ID", "EVENT", "ORDER", "SUBSCRIPTION", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "LAST"],
        rows,
    )


@deliveries.command("list")
@config_option
@click.option("--status", type=click.Choice([str(s) for s in DELIVERY_STATUSES]), default=None)
@click.option("--subscription", default=None, help="A subscription name.")
@click.option("--order", "order_id", default=None, help="Only deliveries of this order.")
@click.option("--event", "event_id", default=None, help="Only deliveries of this event.")
@click.option("--since", type=TimeParam(), default=None, help="Created at or after (or an age).")
@_limit_option
@_cursor_option
@_json_option
@user_errors
def deliveries_list(
    config: str | None,
    status: str | None,
    subscription: str | None,
    order_id: str | None,
    event_id: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Deliveries, newest first (--json includes every attempt)."""
    _check_cursor(cursor, "dlv")
    settings = load(config)

    async def work(ops: Operations) -> Page[DeliveryView]:
        return await ops.list_deliveries(
            status=status,
            subscription=subscription,
            order_id=order_id,
            event_id=event_id,
            since=since,
            limit=limit,
            cursor=cursor,
            with_attempts=as_json,
        )

    page = run_operations(settings, work)
    if as_json:
        echo_json({"items": [d.to_json() for d in page.items], "next_cursor": page.next_cursor})
        return
    _delivery_table(page.items)
    if not page.items:
        click.echo("no deliveries match", err=True)
    _more(page.next_cursor)


@deliveries.command("retry")
@config_option
@click.argument("delivery_id")
@_json_option
@user_errors
def deliveries_retry(config: str | None, delivery_id: str, as_json: bool) -> None:
    """Re-queue one delivery now (also a dead or succeeded one)."""
    settings = load(config)

    async def work(ops: Operations) -> DeliveryView:
        return await ops.retry(delivery_id)

    found = run_operations(settings, work)
    if as_json:
        echo_json(found.to_json())
        return
    click.echo(f"{found.id} re-queued: {found.subscription} gets {found.event_id} again")


@deliveries.command("recover")
@config_option
@click.option("--subscription", required=True, help="The subscription that was down.")
@click.option(
    "--since", type=TimeParam(), required=True, help="Dead since this time (or an age: 3d)."
)
@click.option("--dry-run", is_flag=True, help="Only count what would be re-sent.")
@_json_option
@user_errors
def deliveries_recover(
    config: str | None, subscription: str, since: datetime, dry_run: bool, as_json: bool
) -> None:
    """Re-queue every dead delivery of a subscription whose last attempt was since --since."""
    settings = load(config)

    async def work(ops: Operations) -> Recovery:
        if dry_run:
            return await ops.recover(subscription, since, dry_run=True)
        with contextlib.ExitStack() as stack:
            bars: list[Any] = []

            def progress(done: int, total: int) -> None:
                # Shown once the subscription is found (first call: before the first batch).
                if not bars:
                    bar = click.progressbar(
                        length=total,
                        label=f"re-queueing for {subscription}",
                        file=sys.stderr,
                        show_pos=True,
                    )
                    bars.append(stack.enter_context(bar))
                bars[0].update(done - bars[0].pos)

            return await ops.recover(subscription, since, progress=progress)

    result = run_operations(settings, work)
    found, done, skipped = result.found, result.requeued, result.skipped
    if as_json:
        echo_json(
            {
                "subscription": subscription,
                "since": to_rfc3339(since),
                "dry_run": dry_run,
                "count": found if dry_run else done,
                "skipped": skipped,
            }
        )
        return
    if dry_run:
        click.echo(f"{found} dead deliveries of {subscription} since {to_rfc3339(since)}")
        click.echo("(dry run: nothing re-queued)")
        return
    click.echo(
        f"re-queued {done} dead deliveries of {subscription}"
        + (f" ({skipped} skipped: being sent or gone)" if skipped else "")
    )
