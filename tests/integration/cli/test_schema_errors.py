"""Issue 17 leftovers: a schema payhook cannot upgrade (from a newer payhook, or a migration
that fails) is one line and exit 1 from every command that opens it, never an alembic or
uvicorn traceback; migrating prints payhook's own ``applied …`` lines, not alembic's."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from payhook import __version__
from payhook.operations import upgrade_database
from tests.integration.cli.test_startup import config, error_line, payhook

APPLIED = [
    "applied 0001: initial schema",
    "applied 0002: delivery lease in its own column",
    "applied 0003: SQLite: no trade index on payhook_events",
    "applied 0004: bounded refused-callback audit; indexes for retention",
    "applied 0005: partial index on the refused rows left in payhook_notifications",
]


def database_at(tmp_path: Path, revision: str) -> Path:
    """A config whose SQLite database has every table of the head schema but says it is at
    ``revision``."""
    database = tmp_path / "payhook.db"
    url = f"sqlite+aiosqlite:///{database}"
    asyncio.run(upgrade_database(url))
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE payhook_alembic_version SET version_num = ?", (revision,))
    return config(tmp_path, url)


@pytest.mark.parametrize(
    "command", [("serve", "--port", "0"), ("db", "upgrade"), ("check-config", "--connect")]
)
def test_schema_from_a_newer_payhook_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = database_at(tmp_path, "0099")
    result = payhook(*command, "--config", str(path))
    line = error_line(result)
    assert "schema is at revision 0099" in line
    assert "newer payhook" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert "listening" not in result.stderr


@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("db", "upgrade")])
def test_failing_migration_is_one_line_naming_it(tmp_path: Path, command: tuple[str, ...]) -> None:
    # Says 0003 while 0004's table exists: applying 0004 again fails in the database.
    path = database_at(tmp_path, "0003")
    result = payhook(*command, "--config", str(path))
    line = error_line(result)
    assert "migration 0004 (bounded refused-callback audit" in line
    assert "payhook_refused_callbacks already exists" in line
    assert "Traceback" not in result.stdout + result.stderr


def test_db_upgrade_prints_payhook_lines_only(tmp_path: Path) -> None:
    path = config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}")
    result = payhook("db", "upgrade", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        *APPLIED,
        "database upgraded to 0005 (5 migrations applied)",
    ]
    assert result.stderr == ""


def test_db_upgrade_shows_alembic_at_debug(tmp_path: Path) -> None:
    path = config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}")
    result = payhook("db", "upgrade", "--config", str(path), env={"PAYHOOK_LOG_LEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert "Running upgrade 0003 -> 0004" in result.stderr


def test_serve_prints_applied_migrations_not_alembic(tmp_path: Path) -> None:
    path = config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    with subprocess.Popen(
        [sys.executable, "-m", "payhook", "serve", "--port", "0", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if "Application startup complete" in line:
                break
        proc.send_signal(signal.SIGTERM)
        lines += proc.stderr.read().splitlines()
        proc.wait(timeout=60)
    assert lines[: len(APPLIED)] == APPLIED, lines
    assert lines[len(APPLIED)].startswith(
        f"payhook {__version__} listening on http://127.0.0.1:"
    ), lines
    assert not [line for line in lines if "alembic" in line], lines
