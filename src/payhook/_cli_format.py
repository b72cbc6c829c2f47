"""Output helpers for the operator commands: plain tables for people, JSON for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["echo_json", "echo_table", "short_time"]


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
