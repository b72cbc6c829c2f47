"""Output helpers for the operator commands: plain tables for people, JSON for scripts, and the
database session every operator command runs in."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from payhook.config import PayhookSettings, parse_duration
from payhook.errors import ConfigurationError, StorageUnavailableError
from payhook.storage import Store

__all__ = [
    "TimeParam",
    "echo_json",
    "echo_table",
    "run_on_database",
    "short_time",
]

T = TypeVar("T")

_MISSING_TABLE = re.compile(r"no such table|does not exist|UndefinedTable", re.IGNORECASE)


def echo_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A left-aligned plain-text table on stdout ("-" for empty cells)."""
    cells = [[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    for row in [list(headers), *cells]:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def short_time(value: str | None) -> str:
    """``2026-11-28T01:02:03.456Z`` -> ``2026-11-28 01:02:03Z`` for tables."""
    if not value:
        return "-"
    text = value.replace("T", " ")
    return re.sub(r"\.\d+(?=Z|[+-]\d\d:\d\d$)", "", text)


class TimeParam(click.ParamType[datetime]):
    """An RFC 3339 time (``2026-11-28T09:00:00+08:00``) or an age (``90m``, ``6h``, ``3d``)."""

    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not a time (use 2026-11-28T09:00:00Z or an age like 6h)")
        if parsed.tzinfo is None:
            self.fail(f"{text!r} needs an offset (Z or +08:00)")
        return parsed.astimezone(UTC)


def _database_problem(settings: PayhookSettings) -> str | None:
    url = make_url(settings.database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if Path(database).exists():
        return None
    return (
        f"the database file {database} does not exist "
        "(run `payhook db upgrade` or start `payhook serve` first)"
    )


def run_on_database(settings: PayhookSettings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` against the configured database (no server needed) and close it.

    Raises:
        ConfigurationError: the database is missing or has no payhook tables.
        StorageUnavailableError: the database cannot be reached.
    """
    problem = _database_problem(settings)
    if problem:
        raise ConfigurationError(problem)

    async def run() -> T:
        store = Store(settings.database_url)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (StorageUnavailableError, SQLAlchemyError) as exc:
        cause = f"{exc} {exc.__cause__ or ''}"
        if _MISSING_TABLE.search(cause):
            raise ConfigurationError(
                "the database has no payhook tables (run `payhook db upgrade`)"
            ) from None
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        raise StorageUnavailableError(f"the database {url} is unavailable") from None
