"""What every ``payhook`` command shares: ``--config``, loading settings, turning payhook
errors into one line on stderr, the operator service for commands that work on the
database, and the time option type.

``cli`` (the group and its commands) and the command modules (``_cli_ops``,
``_cli_subscriptions``) import this module; it imports none of them.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click

from payhook.config import PayhookSettings, config_path as _resolved_config_path, load_settings
from payhook.errors import PayhookError, RequestError
from payhook.operations import Operations, parse_time, probe_database as probe

__all__ = [
    "TimeParam",
    "config_option",
    "config_path",
    "fail",
    "load",
    "probe_database",
    "run_operations",
    "user_errors",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

config_option = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default: $PAYHOOK_CONFIG, else ./payhook.toml).",
)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def user_errors(fn: F) -> F:
    """Turn payhook errors into one line on stderr and exit code 1; a closed pipe on stdout
    (``payhook check-config | head -1``) ends the command quietly."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            raise  # click's main() ends quietly on EPIPE
        except PayhookError as exc:
            fail(exc.message)
        except OSError as exc:
            fail(f"{exc.__class__.__name__}: {exc.strerror or exc}")

    return wrapper  # type: ignore[return-value]


def config_path(config: str | None) -> str | None:
    """``--config`` given on the command, else on the group."""
    if config:
        return config
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.obj and ctx.obj.get("config"):
            return str(ctx.obj["config"])
        ctx = ctx.parent
    return None


def load(config: str | None, *, require_file: bool = False) -> PayhookSettings:
    """The settings named by ``--config``, with logging configured from them.

    Args:
        require_file: refuse to run on the built-in defaults when no file is found (the
            long-running commands: a server without channels is never what was meant).
    """
    explicit = config_path(config)
    if require_file:
        path = _resolved_config_path(explicit)
        if not path.is_file():
            fail(
                f"no configuration file at {path.resolve()}; pass one with --config FILE "
                "or set PAYHOOK_CONFIG (e.g. --config samples/payhook.toml)"
            )
    settings = load_settings(explicit)
    from payhook._logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return settings


def run_operations(settings: PayhookSettings, work: Callable[[Operations], Awaitable[T]]) -> T:
    """Run ``work`` with the operator service on the configured database (no server needed).

    Raises:
        ConfigurationError: the database is missing or has no payhook tables.
        StorageUnavailableError: the database cannot be reached.
    """

    async def run() -> T:
        await probe(settings.database_url)
        async with Operations.open(
            settings.database_url,
            refuse_private_targets=settings.dispatcher.refuse_private_targets,
        ) as operations:
            return await work(operations)

    return asyncio.run(run())


def probe_database(database_url: str) -> None:
    """Connect once to ``database_url`` before a command starts anything else.

    Raises:
        ConfigurationError: the database or user does not exist.
        StorageUnavailableError: the server cannot be reached (one line naming the URL with
            its password masked, host:port and database).
    """
    asyncio.run(probe(database_url))


class TimeParam(click.ParamType[datetime]):
    """An RFC 3339 time (``2026-11-28T09:00:00+08:00``) or an age (``90m``, ``6h``, ``3d``):
    what the admin API accepts too (:func:`payhook.operations.parse_time`)."""

    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return parse_time(text, name=self.name, now=datetime.now(UTC))
        except RequestError:
            self.fail(f"{text!r} is not a time (use 2026-11-28T09:00:00Z or an age like 6h)")
