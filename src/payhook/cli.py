"""The ``payhook`` command line (contract §2): the group, its process and schema commands, and
the registration of the operator groups (``events``, ``deliveries``, ``subscriptions``).

Exit codes: 0 ok, 1 user or configuration error (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from payhook._cli_common import (
    config_option as _config_option,
    config_path as _config_path,
    fail as _fail,
    load as _settings,
    probe_database as _probe_database,
    user_errors,
)
from payhook._cli_ops import deliveries, events
from payhook._cli_subscriptions import subscriptions
from payhook._runtime import prepare_long_running_process
from payhook._targets import mask_url
from payhook._version import __version__
from payhook.config import load_settings
from payhook.providers import build_simulator, key_summary, simulated_events

__all__ = ["DEFAULT_SERVE_URL", "main"]

DEFAULT_SERVE_URL = "http://127.0.0.1:8000"  # `payhook serve` without --host/--port


@click.group()
@click.version_option(__version__, prog_name="payhook")
@_config_option
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """payhook: payment provider callbacks in, signed webhooks out."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


main.add_command(events)
main.add_command(deliveries)
main.add_command(subscriptions)


# -- serve / worker / db ----------------------------------------------------------------------


@main.command()
@_config_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, envvar="PAYHOOK_PORT")
@click.option("--no-dispatcher", is_flag=True, help="Receive only; run `payhook worker` elsewhere.")
@click.option("--no-migrate", is_flag=True, help="Do not create/upgrade the schema on start.")
@user_errors
def serve(config: str | None, host: str, port: int, no_dispatcher: bool, no_migrate: bool) -> None:
    """Run the receiver, the admin API and (unless --no-dispatcher) the dispatcher."""
    import uvicorn

    from payhook._conncap import ConnectionCap
    from payhook._hook import PayHook
    from payhook._protocol import capped_protocol

    settings = _settings(config, require_file=True)
    for warning in settings.key_warnings():
        click.echo(f"warning: {warning}", err=True)
    # The port first: nothing starts (no migration, no dispatcher) when it is taken.
    sock = _listen(host, port)
    try:
        _probe_database(settings.database_url)
        if not no_migrate:
            # Here rather than in the server's start-up: a schema from a newer payhook or a
            # failing migration is then one line and exit 1, not a traceback from uvicorn.
            _upgrade_schema(settings.database_url, err=True)
    except BaseException:
        sock.close()
        raise
    hook = PayHook(settings, run_dispatcher=not no_dispatcher, migrate=False)
    cap = ConnectionCap(
        settings.max_connections_per_address, on_refused=hook.metrics.connections_refused.inc
    )
    server = uvicorn.Server(
        uvicorn.Config(
            hook.app,
            host=host,
            port=port,
            lifespan="on",
            http=capped_protocol(cap),
            log_config=None,
            access_log=False,
            server_header=False,
            # Slow or abusive clients must not exhaust the server (docs/reliability.md,
            # "Connection cap and the edge"): an idle keep-alive connection is closed after
            # 5 s, a request must arrive within 10 s of its first byte (_protocol.py), one
            # address holds at most max_connections_per_address of these 2048 connections.
            timeout_keep_alive=5,
            limit_concurrency=2048,
            timeout_graceful_shutdown=15,
        )
    )
    shown = f"[{host}]" if ":" in host else host
    bound = sock.getsockname()[1]  # --port 0: the port the kernel chose
    click.echo(f"payhook {__version__} listening on http://{shown}:{bound}", err=True)
    prepare_long_running_process()
    server.run(sockets=[sock])  # on uvloop when it is installed (uvicorn's loop="auto")
    if not server.started:
        _fail(f"could not start the server on {host}:{port} (see the log above)")


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket for ``host:port``, bound before anything else starts (as
    uvicorn would bind it: IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (another process holds it; pick another with --port)" if exc.errno == 98 else ""
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}")
    sock.set_inheritable(True)
    return sock


@main.command()
@_config_option
@user_errors
def worker(config: str | None) -> None:
    """Run the outbound dispatcher alone (any number may share one PostgreSQL database)."""
    from payhook._hook import PayHook

    settings = _settings(config, require_file=True)
    _probe_database(settings.database_url)
    hook = PayHook(settings, run_dispatcher=False, migrate=False)
    prepare_long_running_process()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_run_worker(hook))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (it comes with uvicorn[standard]), as serve uses."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run_worker(hook: Any) -> None:
    import signal

    await hook.start()
    dispatcher = hook.build_dispatcher(with_handlers=False)
    task = asyncio.create_task(dispatcher.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    click.echo("payhook worker running", err=True)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    await dispatcher.stop()
    waiter.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await hook.stop()


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
@_config_option
@user_errors
def upgrade(config: str | None) -> None:
    """Apply schema migrations and exit."""
    settings = _settings(config)
    _probe_database(settings.database_url)
    applied = _upgrade_schema(settings.database_url)
    if applied:
        click.echo(f"database upgraded to {applied[-1][0]} ({len(applied)} migrations applied)")
    else:
        click.echo("database is up to date (nothing to apply)")


@db.command()
@_config_option
@click.option("--dry-run", is_flag=True, help="Count what would be removed; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@user_errors
def prune(config: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply [retention] now: remove old refused-callback audit rows, attempts of finished
    deliveries, and finished events (never one with a pending delivery)."""
    from payhook._cli_common import run_operations
    from payhook._cli_format import echo_json
    from payhook._pruner import describe_windows, retention_windows
    from payhook.events import to_rfc3339
    from payhook.operations import RETENTION_TABLES

    settings = _settings(config)
    windows = retention_windows(settings.retention)
    report = run_operations(settings, lambda ops: ops.prune(windows, dry_run=dry_run))
    if as_json:
        echo_json(
            {
                "dry_run": report.dry_run,
                "counts": report.counts,
                "total": report.total,
                "before": {k: to_rfc3339(v) for k, v in report.cutoffs.items()},
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"retention ({describe_windows(settings.retention)}): {verb} {report.total} rows")
    width = max(len(table) for table in RETENTION_TABLES)
    for table in RETENTION_TABLES:
        click.echo(f"  {table.ljust(width)}  {report.counts[table]:>9}")
    if dry_run:
        click.echo("dry run: nothing was deleted", err=True)


def _upgrade_schema(database_url: str, *, err: bool = False) -> list[tuple[str, str]]:
    """Apply the pending migrations, printing ``applied 0004: …`` for each (on stderr with
    ``err``: serve's stdout is not for progress).

    Raises:
        ConfigurationError: the schema is from a newer payhook.
        StorageError: a migration failed.
    """
    from payhook.operations import upgrade_database

    applied = asyncio.run(upgrade_database(database_url))
    for revision, description in applied:
        click.echo(f"applied {revision}: {description}", err=err)
    return applied


# -- check-config -----------------------------------------------------------------------------


@main.command("check-config")
@_config_option
@click.option(
    "--connect",
    is_flag=True,
    help="Also open the database: reachable, schema version, pending migrations.",
)
@user_errors
def check_config(config: str | None, connect: bool) -> None:
    """Validate the configuration and print a summary without secrets."""
    from sqlalchemy.engine import make_url

    settings = load_settings(_config_path(config), require_file=True)
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    click.echo(f"database: {url}")
    click.echo(f"admin API: {'on' if settings.admin_token else 'off (no admin_token)'}")
    click.echo(f"max body: {settings.max_body_bytes} bytes")
    per_address = settings.max_connections_per_address
    click.echo(
        f"connections per address: {per_address if per_address else 'no cap'} (payhook serve)"
    )
    d = settings.dispatcher
    click.echo(
        f"dispatcher: {len(d.retry_schedule)} retries over {sum(d.retry_schedule) / 3600:.1f} h, "
        f"timeout {d.request_timeout:g}s, concurrency {d.concurrency} "
        f"({d.per_subscription_concurrency} per subscription)"
        + (", private targets refused" if d.refuse_private_targets else "")
    )
    from payhook._pruner import describe_windows

    retention = settings.retention
    click.echo(f"retention: {describe_windows(retention)}")
    if retention.refund_risk:
        click.echo(
            "warning: [retention] events is under a year: an Alipay refund that arrives after "
            "the trade's earlier refunds were pruned gets a wrong refund_amount",
            err=True,
        )
    for channel in settings.channels:
        keys = key_summary(channel)
        click.echo(
            f"channel {channel.name}: {channel.provider}, {channel.summary()}"
            + (f", {keys}" if keys else "")
        )
    for sub in settings.subscriptions:
        state = "enabled" if sub.enabled else "disabled"
        click.echo(
            f"subscription {sub.name}: {mask_url(sub.url)} events={','.join(sub.events)} "
            f"secret=whsec_*** ({state})"
        )
    warnings = settings.key_warnings()
    for warning in warnings:
        click.echo(f"warning: {warning}")
    if connect:
        from payhook.operations import database_report

        for line in asyncio.run(database_report(settings.database_url)):
            click.echo(line)
        click.echo(f"configuration OK{_warned(warnings)}")
    else:
        click.echo(
            f"configuration OK{_warned(warnings)} (database not opened; --connect checks it)"
        )


def _warned(warnings: tuple[str, ...]) -> str:
    return (
        "" if not warnings else f" with {len(warnings)} warning{'s' if len(warnings) > 1 else ''}"
    )


# -- simulate ---------------------------------------------------------------------------------


class _SimulatedEvent(click.Choice[str]):
    """``--event`` choices read from the provider registry when the command runs."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return simulated_events()

    @choices.setter
    def choices(self, _value: tuple[str, ...]) -> None:
        pass  # click.Choice.__init__ assigns; the registry is the source


@main.command()
@_config_option
@click.argument("channel")
@click.option("--order", "order_id", required=True, help="The merchant order id (out_trade_no).")
@click.option("--amount", required=True, help="Order amount in yuan, e.g. 88.88.")
@click.option(
    "--event",
    type=_SimulatedEvent(),
    default="paid",
    show_default=True,
)
@click.option("--refund-amount", default=None, help="Refund amount in yuan (with --event refund).")
@click.option(
    "--url",
    default=None,
    help=(
        "Where to POST (default: $PAYHOOK_URL/notify/CHANNEL, "
        f"else {DEFAULT_SERVE_URL}/notify/CHANNEL)."
    ),
)
@user_errors
def simulate(
    config: str | None,
    channel: str,
    order_id: str,
    amount: str,
    event: str,
    refund_amount: str | None,
    url: str | None,
) -> None:
    """Send a callback built and signed exactly as CHANNEL's provider would (test keys)."""
    from payhook.events import parse_amount

    settings = load_settings(_config_path(config))
    settings_channel = settings.channel(channel)
    amount_fen = parse_amount(amount, field="--amount")
    refund_fen = parse_amount(refund_amount, field="--refund-amount") if refund_amount else None
    if event == "refund" and refund_fen is None:
        refund_fen = amount_fen
    simulator = build_simulator(settings_channel)
    index = settings.channels.index(settings_channel)
    for warning in settings.key_warnings():
        if warning.startswith(f"channels[{index}] "):
            click.echo(f"warning: {warning}", err=True)
    try:
        callback = simulator.build(
            order_id=order_id,
            amount=amount_fen,
            event=event,
            refund_amount=refund_fen,
            now=datetime.now(UTC),
        )
    except ValueError as exc:
        _fail(str(exc))
    base = os.environ.get("PAYHOOK_URL") or DEFAULT_SERVE_URL
    target = url or f"{base.rstrip('/')}/notify/{channel}"
    request = urllib.request.Request(  # noqa: S310 - the operator chooses the URL
        target, data=callback.body, headers=dict(callback.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        _fail(
            f"cannot reach {target}: {reason} (is `payhook serve` running there? "
            "point simulate elsewhere with --url URL or PAYHOOK_URL=http://HOST:PORT)"
        )
    text = body.decode("utf-8", "replace")
    click.echo(f"HTTP {status}")
    if text:
        click.echo(text)
    if not 200 <= status < 300:
        sys.exit(1)
