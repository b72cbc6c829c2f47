"""Worker memory: resident set size after 10k and after 100k deliveries (goal: within 1.2x).

Command (from the repository root; PostgreSQL at 127.0.0.1:5432, user postgres)::

    .venv/bin/python bench/dispatch_memory.py                 # 10k, then 90k more
    .venv/bin/python bench/dispatch_memory.py --first 10000 --total 100000 --database sqlite

One dispatcher (``run()``, as ``payhook worker`` runs it, concurrency 64) delivers to a
local 204 sink (a separate process, so its memory is not counted). The outbox is seeded
with ``--first`` deliveries, the worker runs until they have all succeeded, and its RSS
(``VmRSS`` of this process, after a ``gc.collect()``) is taken; then the rest up to
``--total`` is seeded in chunks while it keeps running, and RSS is taken again at the end.
Also printed: the Python heap (``tracemalloc``, when ``--tracemalloc``) and the growth
per 10k deliveries. The worker is pinned to core 1, the sink and PostgreSQL to core 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._outbound_common import (
    DEFAULT_PG,
    drop_postgres,
    fresh_postgres,
    pin_self,
    postgres_pinned,
    rss_mib,
    run,
    sink,
)
from bench.outbound import seed
from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.storage._engine import create_engine
from payhook.storage._migrate import upgrade
from payhook.storage._signal import OutboxSignal


async def succeeded(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM payhook_deliveries WHERE status = 'succeeded'")
            )
            or 0
        )


async def wait_done(engine: Any, target: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while await succeeded(engine) < target:
        if time.monotonic() > deadline:
            raise RuntimeError("the dispatcher did not finish in time")
        await asyncio.sleep(0.25)


async def main_async(args: argparse.Namespace) -> None:
    if args.database == "postgresql":
        url = await fresh_postgres(args.pg_url, "payhook_bench_mem")
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/mem.db"
    engine = create_engine(url)
    try:
        if args.database == "sqlite":
            await upgrade(engine)
        with sink(cpu=0) as sink_url:
            if args.tracemalloc:
                tracemalloc.start()
            signal = OutboxSignal()
            dispatcher = Dispatcher(
                engine=engine,
                policy=RetryPolicy(schedule_s=(60.0,)),
                concurrency=64,
                per_subscription_concurrency=64,
                signal=signal,
                listen=False,
            )
            start_rss = rss_mib()
            await seed(engine, args.first, sink_url)
            task = asyncio.create_task(dispatcher.run())
            signal.notify()
            t0 = time.perf_counter()
            await wait_done(engine, args.first, 600)
            first_s = time.perf_counter() - t0
            gc.collect()
            rss_first = rss_mib()
            heap_first = tracemalloc.get_traced_memory()[0] / 2**20 if args.tracemalloc else 0
            print(f"after {args.first:,}: RSS {rss_first:.1f} MiB ({first_s:.1f} s)", flush=True)
            done = args.first
            while done < args.total:
                # seed() replaces the outbox content; count successes per chunk.
                chunk = min(args.chunk, args.total - done)
                await seed(engine, chunk, sink_url)
                signal.notify()
                await wait_done(engine, chunk, 600)
                done += chunk
                print(f"  {done:,} delivered, RSS {rss_mib():.1f} MiB", flush=True)
            await dispatcher.stop(grace_s=5)
            await task
            gc.collect()
            rss_total = rss_mib()
            heap_total = tracemalloc.get_traced_memory()[0] / 2**20 if args.tracemalloc else 0
    finally:
        await engine.dispose()
        if args.database == "postgresql":
            await drop_postgres(args.pg_url, url)
    print()
    print(f"database: {args.database}; RSS before the first delivery: {start_rss:.1f} MiB")
    print("| after | RSS MiB | Python heap MiB |")
    print("|---|---|---|")
    print(f"| {args.first:,} deliveries | {rss_first:.1f} | {heap_first:.1f} |")
    print(f"| {args.total:,} deliveries | {rss_total:.1f} | {heap_total:.1f} |")
    print(f"ratio {args.total:,} / {args.first:,}: {rss_total / rss_first:.3f} (goal <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--first", type=int, default=10_000)
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=30_000)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    pin_self(1)
    with postgres_pinned(0):
        run(main_async(args))


if __name__ == "__main__":
    main()
