"""Worker memory: resident set size after 10k and after 100k deliveries (goal: within 1.2x).

Command (from the repository root; PostgreSQL at 127.0.0.1:5432, user postgres)::

    .venv/bin/python bench/dispatch_memory.py                 # 10k, then up to 100k
    .venv/bin/python bench/dispatch_memory.py --first 10000 --total 100000 --database sqlite

The worker is a separate process (``python bench/dispatch_memory.py --worker URL``: one
dispatcher in ``run()`` mode, as ``payhook worker`` runs it, concurrency 64, LISTEN on
PostgreSQL, poll interval 0.2 s, the same garbage-collector settings) pinned to core 1; it
delivers to a local 204 sink (another process) pinned with PostgreSQL to core 0. This
process only seeds the outbox (in chunks of ``--chunk``, so seeding never holds more than
one chunk) and reads the worker's ``VmRSS``
from ``/proc``: once after ``--first`` deliveries have succeeded, then after each chunk up
to ``--total``. The figure is the ratio of the last reading to the first.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._outbound_common import (
    ALL_CPUS,
    DEFAULT_PG,
    drop_postgres,
    fresh_postgres,
    pin_self,
    postgres_pinned,
    run,
    sink,
)
from bench.outbound import seed

from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.storage._engine import create_engine
from payhook.storage._migrate import upgrade


def rss_of(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def succeeded(engine: Any) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM payhook_deliveries WHERE status = 'succeeded'")
        )
    return int(found or 0)


async def wait_done(engine: Any, target: int, timeout_s: float) -> float:
    t0 = time.perf_counter()
    while await succeeded(engine) < target:
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError("the worker did not finish in time")
        await asyncio.sleep(0.1)
    return time.perf_counter() - t0


async def notify(engine: Any) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_notify('payhook_outbox', '')"))


async def worker(url: str) -> None:
    """The measured process: one dispatcher until SIGTERM."""
    engine = create_engine(url)
    dispatcher = Dispatcher(
        engine=engine,
        policy=RetryPolicy(schedule_s=(60.0,)),
        concurrency=64,
        per_subscription_concurrency=64,
        poll_interval_s=0.2,
    )
    loop = asyncio.get_running_loop()
    stopping: list[Any] = []
    loop.add_signal_handler(
        signal.SIGTERM, lambda: stopping.append(asyncio.create_task(dispatcher.stop()))
    )
    try:
        await dispatcher.run()
    finally:
        await engine.dispose()


async def main_async(args: argparse.Namespace) -> None:
    if args.database == "postgresql":
        url = await fresh_postgres(args.pg_url, "payhook_bench_mem")
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/mem.db"
    engine = create_engine(url)
    proc = None
    readings: list[tuple[int, float]] = []
    try:
        if args.database == "sqlite":
            await upgrade(engine)
        with sink(cpu=0) as sink_url:
            await seed(engine, 0, sink_url)  # the subscription, no deliveries yet
            cmd = [sys.executable, __file__, "--worker", url]
            if 1 in ALL_CPUS and len(ALL_CPUS) > 1:
                cmd = ["taskset", "-c", "1", *cmd]
            proc = subprocess.Popen(cmd)
            await asyncio.sleep(2.0)  # imports, engine, LISTEN
            start_rss = rss_of(proc.pid)
            done, todo = 0, args.first
            while done < args.total:
                await seed(engine, todo, sink_url)  # replaces the previous chunk
                await notify(engine)
                took = await wait_done(engine, todo, 600)
                done += todo
                readings.append((done, rss_of(proc.pid)))
                print(f"{done:>9,} delivered: worker RSS {readings[-1][1]:.1f} MiB "
                      f"({todo / took:,.0f}/s)", flush=True)  # fmt: skip
                todo = min(args.chunk, args.total - done)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        await engine.dispose()
        if args.database == "postgresql":
            await drop_postgres(args.pg_url, url)
    first, last = readings[0], readings[-1]
    print()
    print(f"database: {args.database}; worker RSS once started: {start_rss:.1f} MiB")
    print("| after | worker RSS MiB |")
    print("|---|---|")
    for count, rss in readings:
        print(f"| {count:,} deliveries | {rss:.1f} |")
    print(f"ratio {last[0]:,} / {first[0]:,}: {last[1] / first[1]:.3f} (goal <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--first", type=int, default=10_000)
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from payhook._runtime import prepare_long_running_process

        prepare_long_running_process()  # as payhook worker does
        run(worker(args.worker))
        return
    pin_self(0)
    with postgres_pinned(0):
        run(main_async(args))


if __name__ == "__main__":
    main()
