"""Shared helpers for the outbound benchmarks: CPU pinning, the 204 sink, fresh databases.

Method (shared/docs/performance-anchors.md): the process under test gets one core to
itself; the sink and PostgreSQL sit on the other core ("the other side of the wire");
configurations run in rounds taken round-robin and the median is reported, with CPU time
per operation beside the throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ALL_CPUS = set(range(os.cpu_count() or 1))

# A raw ASGI app: reads the body, answers 204 at once (no framework on the sink side).
SINK_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_time() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    """This process's resident set size in MiB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` (missing ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def postgres_cpu() -> float:
    """CPU seconds used so far by all PostgreSQL processes (server side of the claim)."""
    return process_cpu(_postgres_pids())


def pin_self(cpu: int) -> None:
    """Run this process on one core (when the machine has it)."""
    if cpu in ALL_CPUS:
        os.sched_setaffinity(0, {cpu})


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def postgres_pinned(cpu: int) -> Iterator[None]:
    """Pin every PostgreSQL process (and so the backends it forks later) to ``cpu``."""
    pinned = []
    if cpu in ALL_CPUS and len(ALL_CPUS) > 1:
        for pid in _postgres_pids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, {cpu})
                pinned.append(pid)
    try:
        yield
    finally:
        for pid in pinned:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, ALL_CPUS)


@contextlib.contextmanager
def sink(cpu: int = 0) -> Iterator[str]:
    """A uvicorn sink answering 204, pinned to ``cpu``; yields its URL."""
    folder = Path("/tmp") / f"payhook-sink-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "sinkapp.py").write_text(SINK_APP)
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "sinkapp:app", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if cpu in ALL_CPUS and len(ALL_CPUS) > 1:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, cwd=folder)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the sink did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        proc.terminate()
        proc.wait(10)
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def fresh_postgres(server_url: str, prefix: str) -> str:
    """Create and migrate a new database on ``server_url``; returns its SQLAlchemy URL."""
    from payhook.storage._engine import create_engine
    from payhook.storage._migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def drop_postgres(server_url: str, url: str) -> None:
    """Drop a database made by :func:`fresh_postgres`."""
    name = make_url(url).database
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def median_range(values: list[float]) -> str:
    """``median [min-max]`` with sensible rounding."""
    digits = 0 if statistics.median(values) >= 100 else 2
    return (
        f"{statistics.median(values):,.{digits}f} "
        f"[{min(values):,.{digits}f}-{max(values):,.{digits}f}]"
    )


def run(coro: object) -> object:
    """``asyncio.run`` with uvloop when available (as the server runs)."""
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
