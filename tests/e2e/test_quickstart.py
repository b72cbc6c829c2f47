"""The README's quickstart, run as printed: its command lines are read from README.md (not
copied here) and run in a copy of the repository's ``samples/`` through the shell, one process
per terminal, until the sample subscriber logs a verified delivery.

Only the ports move (the test must not depend on 8000 and 9100 being free), through what the
commands honour: ``PAYHOOK_PORT`` (serve), ``SUBSCRIBER_PORT`` (the subscriber) and
``PAYHOOK_URL`` (simulate); and the subscription ``url`` in the copied configuration.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests._ports import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
_TERMINAL = re.compile(r"^#\s*terminal\s+(\d+)", re.IGNORECASE)


def quickstart_terminals(readme: str) -> list[list[str]]:
    """The command lines of the quickstart's code block, grouped by ``# terminal N``."""
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README.md's quickstart has no ```sh block"
    terminals: list[list[str]] = []
    for line in block.group(1).splitlines():
        line = line.strip()
        if _TERMINAL.match(line):
            terminals.append([])
        elif line and not line.startswith("#"):
            assert terminals, f"{line!r} comes before any '# terminal N' comment"
            terminals[-1].append(line)
    return terminals


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def answers(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the process exited ({proc.returncode}):\n{log.read_text()}")
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A repository root with ``samples/`` copied and ``.venv`` pointing at this Python's."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "payhook").exists():
        pytest.skip(f"no payhook script in {venv / 'bin'}")
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    for leftover in ("payhook.db", "subscriber/subscriber.db"):
        (tmp_path / "samples" / leftover).unlink(missing_ok=True)
    (tmp_path / ".venv").symlink_to(venv)
    return tmp_path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_readme_quickstart_reaches_a_verified_delivery(
    workdir: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    terminals = quickstart_terminals((ROOT / "README.md").read_text())
    assert len(terminals) == 3, terminals
    (serve,), (subscriber,), simulate = terminals

    serve_port, sub_port = free_port(), free_port()
    config = workdir / "samples" / "payhook.toml"
    text = config.read_text()
    assert "http://127.0.0.1:9100/webhooks/payments" in text  # the subscriber's default address
    config.write_text(text.replace("127.0.0.1:9100/", f"127.0.0.1:{sub_port}/"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    env.update(
        PAYHOOK_PORT=str(serve_port),
        SUBSCRIBER_PORT=str(sub_port),
        PAYHOOK_URL=f"http://127.0.0.1:{serve_port}",
    )

    logs = {}
    for name, line, port in (("serve", serve, serve_port), ("subscriber", subscriber, sub_port)):
        logs[name] = workdir / f"{name}.log"
        with logs[name].open("wb") as handle:
            proc = subprocess.Popen(  # noqa: S602 - the README's line, as a user types it
                line,
                shell=True,
                cwd=workdir,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(proc)
        wait_for(
            lambda port=port, proc=proc, log=logs[name]: answers(
                f"http://127.0.0.1:{port}/", proc, log
            ),
            f"{line!r} to answer",
        )

    for line in simulate:
        done = subprocess.run(  # noqa: S602
            line, shell=True, cwd=workdir, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{line!r}: {done.stdout}{done.stderr}"
        assert done.stdout.startswith("HTTP 2"), done.stdout

    def delivered() -> bool:
        return logs["subscriber"].read_text().count("verified delivery ") >= len(simulate)

    wait_for(delivered, "the subscriber to log a verified delivery for each callback", 60)
    log = logs["subscriber"].read_text()
    assert re.search(r"verified delivery \S+: payment\.order\.paid order 1001", log), log
    assert "bad signature" not in log
