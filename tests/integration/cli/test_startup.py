"""Issue 17: what the first hour shows. A database that cannot be opened reads as the same one
line from every command; serve takes its port before anything else starts and refuses to run
without a configuration file; ``db upgrade`` says what it applied; a closed pipe ends quietly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests._db import postgres_url
from tests._ports import free_port

COMMANDS = (
    ("serve", "--port", "0"),
    ("worker",),
    ("db", "upgrade"),
    ("events", "list"),
    ("check-config", "--connect"),
)


def payhook(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "payhook", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**base, **(env or {})},
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a command that exited 1 (no traceback, no log lines)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def config(folder: Path, database_url: str) -> Path:
    path = folder / "payhook.toml"
    path.write_text(f'database_url = "{database_url}"\n')
    return path


def same_line_from_every_command(path: Path) -> str:
    lines = {name: error_line(payhook(*name, "--config", str(path))) for name in COMMANDS}
    assert len(set(lines.values())) == 1, lines
    return next(iter(lines.values()))


def test_server_down_is_one_line_naming_where(tmp_path: Path) -> None:
    port = free_port()
    path = config(tmp_path, f"postgresql+asyncpg://payhook:s3cret-pw@127.0.0.1:{port}/shop")
    line = same_line_from_every_command(path)
    assert f"127.0.0.1:{port}" in line
    assert "'shop'" in line
    assert "connection refused" in line
    assert "s3cret-pw" not in line
    assert "***" in line


def test_missing_database_is_one_line_naming_it(tmp_path: Path) -> None:
    url = postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server")
    from sqlalchemy.engine import make_url

    name = f"absent_{uuid.uuid4().hex[:8]}"
    path = config(tmp_path, make_url(url).set(database=name).render_as_string(False))
    line = same_line_from_every_command(path)
    assert f"database '{name}' does not exist" in line


def test_check_config_connect_reports_the_schema(tmp_path: Path) -> None:
    path = config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}")
    fresh = payhook("check-config", "--connect", "--config", str(path))
    assert fresh.returncode == 0, fresh.stderr
    assert "does not exist yet (5 migrations pending" in fresh.stdout
    assert not (tmp_path / "payhook.db").exists()

    upgraded = payhook("db", "upgrade", "--config", str(path))
    assert upgraded.returncode == 0, upgraded.stderr
    out = upgraded.stdout.splitlines()
    assert out[:5] == [
        "applied 0001: initial schema",
        "applied 0002: delivery lease in its own column",
        "applied 0003: SQLite: no trade index on payhook_events",
        "applied 0004: bounded refused-callback audit; indexes for retention",
        "applied 0005: partial index on the refused rows left in payhook_notifications",
    ]
    assert "up to date" not in upgraded.stdout
    again = payhook("db", "upgrade", "--config", str(path))
    assert again.stdout.strip() == "database is up to date (nothing to apply)"

    found = payhook("check-config", "--connect", "--config", str(path))
    assert found.returncode == 0, found.stderr
    assert "reachable" in found.stdout
    assert "schema: 0005, up to date" in found.stdout


def test_port_in_use_starts_nothing(tmp_path: Path) -> None:
    database = tmp_path / "payhook.db"
    path = config(tmp_path, f"sqlite+aiosqlite:///{database}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = payhook("serve", "--config", str(path), "--port", str(port))
    line = error_line(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "--port" in line
    assert "listening" not in result.stderr
    assert not database.exists(), "serve migrated a database before it had its port"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_no_config_file_refuses_to_run(tmp_path: Path, command: str) -> None:
    line = error_line(payhook(command, cwd=tmp_path))
    assert str(tmp_path / "payhook.toml") in line
    assert "--config" in line
    assert "PAYHOOK_CONFIG" in line
    assert list(tmp_path.iterdir()) == [], "a database was created on built-in defaults"


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    for args in (("check-config",), ("--help",)):
        with subprocess.Popen(
            [sys.executable, "-m", "payhook", *args, "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=base,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stderr is not None
            proc.stdout.close()  # `| head -0`: nobody reads
            stderr = proc.stderr.read().decode()
            proc.wait(timeout=60)
        assert "BrokenPipe" not in stderr, stderr
        assert "Traceback" not in stderr, stderr
        assert "Exception ignored" not in stderr, stderr


def test_host_logging_line_in_the_docs_prints_payhook_fields() -> None:
    """docs/operations.md's line for hosts whose formatter prints only the message."""
    import io
    import logging
    import re

    docs = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    section = docs.split("### Logging when payhook is embedded", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    saved = root.handlers[:]
    root.handlers[:] = [handler]
    try:
        exec(block.group(1), {"logging": logging})  # noqa: S102 - the documented line
        logging.getLogger("payhook.dispatch").warning(
            "delivery failed", extra={"event_id": "evt_1", "subscription": "orders"}
        )
    finally:
        root.handlers[:] = saved
    assert "delivery failed event_id=evt_1 subscription=orders" in stream.getvalue()


def test_simulate_posts_to_payhook_url_and_says_how_to_move_it() -> None:
    """``simulate`` posts to ``$PAYHOOK_URL`` (else serve's default address), and a server that
    does not answer names both ways to point it elsewhere."""
    samples = Path(__file__).resolve().parents[3] / "samples" / "payhook.toml"
    port = free_port()
    args = ("simulate", "alipay", "--config", str(samples), "--order", "1", "--amount", "1.00")
    line = error_line(payhook(*args, env={"PAYHOOK_URL": f"http://127.0.0.1:{port}"}))
    assert f"cannot reach http://127.0.0.1:{port}/notify/alipay" in line
    assert "--url" in line
    assert "PAYHOOK_URL" in line
