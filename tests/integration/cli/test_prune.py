"""`payhook db prune [--dry-run]` through a real subprocess on a real SQLite file (and the
one-line errors of a database it cannot open, or of an unsafe [retention])."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

from payhook.storage._engine import create_engine
from tests.integration.cli.test_ops import one_line_error, payhook
from tests.integration.storage._retention_seed import TABLES, Seeder, counts


def _config(folder: Path, database_url: str, retention: str = "") -> Path:
    path = folder / "payhook.toml"
    path.write_text(f'database_url = "{database_url}"\n\n[retention]\n{retention}\n')
    return path


async def _seed(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        # Ages against the real clock: the command prunes as of now.
        seed = Seeder(engine, now=datetime.now(UTC))
        await seed.event(1000, ("succeeded", "dead"), attempt_ages=(999, 20))
        await seed.event(1000, ("pending",), attempt_ages=(999,))
        await seed.event(1000, ("failed",))
        await seed.event(100, ("succeeded",), attempt_ages=(60, 1))
        await seed.refused(8)
        await seed.refused(1)
        await seed.notification(9, "refused")
        await seed.notification(450, "accepted")
        return await counts(engine)
    finally:
        await engine.dispose()


async def _counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        return await counts(engine)
    finally:
        await engine.dispose()


EXPECTED = {
    "payhook_refused_callbacks": 1,
    "payhook_notifications": 2,
    # 999 days old (of the finished deliveries), 60 days old, then the 20-day-old ones with
    # their event; the pending delivery's 999-day-old attempt stays.
    "payhook_delivery_attempts": 2 + 1 + 2,
    "payhook_deliveries": 2,
    "payhook_events": 1,
}


def _table(stdout: str) -> dict[str, int]:
    rows = [line.split() for line in stdout.splitlines()[1:]]
    return {name: int(count) for name, count in rows}


def test_dry_run_then_prune_on_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}"
    config = _config(tmp_path, url)
    assert payhook(config, "db", "upgrade").returncode == 0
    before = asyncio.run(_seed(url))

    dry = payhook(config, "db", "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    total = sum(EXPECTED.values())
    assert dry.stdout.splitlines()[0] == (
        f"retention (refused callbacks 7d, attempts 30d, events 400d): would remove {total} rows"
    )
    assert _table(dry.stdout) == EXPECTED
    assert "nothing was deleted" in dry.stderr
    assert asyncio.run(_counts(url)) == before

    as_json = payhook(config, "db", "prune", "--dry-run", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["dry_run"] is True
    assert report["counts"] == EXPECTED
    assert report["total"] == total
    assert set(report["before"]) == {"refused_callbacks", "attempts", "events"}

    done = payhook(config, "db", "prune")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith(f"removed {total} rows")
    assert _table(done.stdout) == EXPECTED
    after = asyncio.run(_counts(url))
    assert {t: before[t] - after[t] for t in TABLES} == EXPECTED

    again = payhook(config, "db", "prune")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0].endswith("removed 0 rows")


def test_windows_come_from_the_config(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}"
    config = _config(tmp_path, url, 'refused_callbacks = "12h"\nattempts = "1000d"')
    assert payhook(config, "db", "upgrade").returncode == 0
    asyncio.run(_seed(url))
    dry = payhook(config, "db", "prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "refused callbacks 12h, attempts 1000d, events 400d" in dry.stdout
    found = _table(dry.stdout)
    assert found["payhook_refused_callbacks"] == 2
    # Only the attempts of the pruned event go (all four); none is older than 1000 days.
    assert found["payhook_delivery_attempts"] == 4


def test_a_missing_sqlite_file_is_one_line_and_not_created(tmp_path: Path) -> None:
    database = tmp_path / "absent.db"
    config = _config(tmp_path, f"sqlite+aiosqlite:///{database}")
    line = one_line_error(payhook(config, "db", "prune"))
    assert "does not exist" in line
    assert not database.exists()


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    config = _config(tmp_path, f"postgresql+asyncpg://payhook:s3cret@127.0.0.1:{port}/payhook")
    result = payhook(config, "db", "prune", "--dry-run")
    line = one_line_error(result)
    assert "cannot connect to the database" in line
    assert "s3cret" not in result.stderr


def test_an_unsafe_events_window_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", 'events = "1d"')
    line = one_line_error(payhook(config, "db", "prune"))
    assert "retention.events: must be at least 2d" in line


def test_check_config_shows_the_windows_and_warns_under_a_year(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    default = payhook(_config(tmp_path, url), "check-config")
    assert default.returncode == 0, default.stderr
    assert "retention: refused callbacks 7d, attempts 30d, events 400d" in default.stdout
    assert "warning" not in default.stderr

    short = payhook(_config(tmp_path, url, 'events = "90d"'), "check-config")
    assert short.returncode == 0, short.stderr
    assert "events 90d" in short.stdout
    assert "warning: [retention] events is under a year" in short.stderr
