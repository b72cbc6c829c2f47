"""The last log lines of `payhook serve` and `payhook worker` survive SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.faults._payhook import free_port, write_config

pytestmark = pytest.mark.e2e


def _config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}",
        subscriber_url="http://127.0.0.1:9/unused",
    )


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    return subprocess.Popen(
        [sys.executable, "-m", "payhook", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _terminate(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise AssertionError(f"the process did not stop on SIGTERM:\n{stderr}") from None
    return proc.returncode, stderr


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, "payhook serve exited at start"
        assert time.monotonic() < deadline, "payhook serve did not become ready"
        time.sleep(0.05)


def test_serve_writes_its_last_lines_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM: uvicorn shuts down gracefully and re-raises the signal; every INFO line up to
    "Finished server process" is on stderr, and the process still ends by SIGTERM."""
    config = _config(tmp_path)
    port = free_port()
    proc = _start(["serve", "--config", str(config), "--port", str(port)], tmp_path)
    _wait_ready(f"http://127.0.0.1:{port}", proc)
    returncode, stderr = _terminate(proc)
    assert returncode == -signal.SIGTERM, stderr
    for line in (
        "payhook started",
        "Shutting down",
        "dispatcher stopped",
        "Application shutdown complete.",
        "Finished server process",
    ):
        assert line in stderr, f"{line!r} missing from stderr:\n{stderr}"
    assert stderr.rstrip().splitlines()[-1].endswith(f"Finished server process [{proc.pid}]")


def test_worker_writes_its_last_lines_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM stops `payhook worker` with exit code 0 and "dispatcher stopped" on stderr."""
    config = _config(tmp_path)
    migrate = subprocess.run(
        [sys.executable, "-m", "payhook", "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    proc = _start(["worker", "--config", str(config)], tmp_path)
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while "payhook worker running" not in "".join(seen):  # echoed after the handlers are set
        assert proc.poll() is None, "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)
        seen.append(proc.stderr.readline())
    returncode, rest = _terminate(proc)
    stderr = "".join(seen) + rest
    assert returncode == 0, stderr
    assert "dispatcher started" in stderr
    assert stderr.rstrip().splitlines()[-1].endswith("dispatcher stopped action=dispatcher_stopped")
