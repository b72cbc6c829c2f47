"""Outbound benchmark: outbox -> dispatcher -> a local 204 subscriber, against a bare client.

Command (from the repository root; PostgreSQL at 127.0.0.1:5432, user postgres)::

    .venv/bin/python bench/outbound.py --rounds 3 --deliveries 20000
    .venv/bin/python bench/outbound.py --latency 300          # idle commit-to-receipt latency
    .venv/bin/python bench/outbound.py --database sqlite      # the same on a SQLite file

Per round, taken round-robin (bare, dispatcher, bare, dispatcher, ...):

- ``bare``: one aiohttp ``ClientSession`` (``TCPConnector(limit=C)``) and C workers POST the
  same signed 1 KB event bodies, with the same Standard Webhooks headers (signed per
  request, as the dispatcher does), to the sink: the ceiling;
- ``dispatcher``: the outbox is seeded (outside the timing) with N pending deliveries of
  1 KB events to one subscription, then ``Dispatcher.run_until_idle()`` claims, signs,
  POSTs and records them all (concurrency C, per-subscription cap C so the cap does not
  bind: the figure is the pipeline, not the fairness limit).

The process under test is pinned to core 1; the sink (raw ASGI under uvicorn, uvloop,
httptools) and PostgreSQL to core 0. Reports deliveries/s, client CPU µs per delivery and
the ratio dispatcher/bare of the same round; the median over rounds is the figure.

Garbage collector: ``payhook worker`` (and ``serve``) call
``payhook._runtime.prepare_long_running_process()`` once set up: ``gc.freeze()`` and higher
collection thresholds (``GC_THRESHOLDS``). The benchmark runs the whole process with those
thresholds and freezes before *each* timed run, bare and dispatcher alike (the seeded bodies
are frozen for both); ``--no-gc-freeze`` measures both with CPython's defaults instead.

``--latency N``: an idle dispatcher (``run()``, LISTEN on, poll interval 1 s) and an
in-process aiohttp subscriber; N times, one event + delivery is committed with
``pg_notify`` in the transaction (as the intake path does) and the time from the commit's
return to the subscriber's receipt is taken. Reports p50/p90/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._outbound_common import (
    DEFAULT_PG,
    cpu_time,
    drop_postgres,
    fresh_postgres,
    median_range,
    pin_self,
    postgres_pinned,
    run,
    sink,
)

from payhook._runtime import GC_THRESHOLDS
from payhook.dispatch import Dispatcher, RetryPolicy, build_headers
from payhook.events import new_id
from payhook.signing import parse_secret
from payhook.storage._engine import create_engine
from payhook.storage._tables import deliveries, events, subscriptions

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the public test vector
PAD = "x" * 560  # makes each event body about 1,0xx bytes


def now() -> datetime:
    return datetime.now(UTC)


def event_body(event_id: str, i: int) -> bytes:
    body = {
        "id": event_id,
        "type": "payment.order.paid",
        "created_at": "2026-11-28T01:02:03.456Z",
        "data": {
            "provider": "alipay", "channel": "alipay", "merchant_id": "2021000000000001",
            "order_id": f"ORDER-{i}", "transaction_id": f"2026112822001{i:08d}",
            "amount": 8888, "currency": "CNY", "paid_at": "2026-11-28T09:00:00+08:00",
            "payer_id": "2088102177846880", "refund_id": None, "refund_amount": None,
            "refunded_total": None, "status": None, "raw": {"pad": PAD},
        },
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


async def seed(engine: Any, n: int, url: str) -> list[tuple[str, bytes]]:
    """Fresh outbox: one subscription, n events, n pending due deliveries."""
    stamp = now()
    ms = int(stamp.timestamp() * 1000)
    async with engine.begin() as conn:
        for table in ("payhook_delivery_attempts", "payhook_deliveries", "payhook_events"):
            await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - constant names
        await conn.execute(text("DELETE FROM payhook_subscriptions"))
        sub_id = new_id("sub")
        await conn.execute(
            subscriptions.insert().values(
                id=sub_id, name="bench", kind="http", url=url, events='["*"]',
                secrets=json.dumps([{"secret": SECRET, "expires_at": None}]), enabled=True,
                source="api", created_at=stamp, updated_at=stamp,
            )
        )  # fmt: skip
    pairs = []
    for start in range(0, n, 5000):
        ev_rows, dl_rows = [], []
        for i in range(start, min(n, start + 5000)):
            event_id = new_id("evt", now_ms=ms)
            body = event_body(event_id, i)
            pairs.append((event_id, body))
            ev_rows.append(
                {
                    "id": event_id, "event_key": f"bench:{event_id}", "type": "payment.order.paid",
                    "channel": "alipay", "provider": "alipay", "merchant_id": "2021000000000001",
                    "order_id": f"ORDER-{i}", "transaction_id": None, "refund_id": None,
                    "refunded_total": None, "created_at": stamp, "body": body,
                }
            )  # fmt: skip
            dl_rows.append(
                {
                    "id": new_id("dlv", now_ms=ms), "event_id": event_id,
                    "subscription_id": sub_id, "status": "pending", "attempt_count": 0,
                    "next_attempt_at": stamp, "created_at": stamp, "updated_at": stamp,
                }
            )  # fmt: skip
        async with engine.begin() as conn:
            await conn.execute(events.insert(), ev_rows)
            await conn.execute(deliveries.insert(), dl_rows)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE payhook_deliveries"))
    return pairs


async def bare(url: str, pairs: list[tuple[str, bytes]], concurrency: int) -> tuple[float, float]:
    """Post every body with C workers on one session; returns (per second, CPU µs per post)."""
    keys = [parse_secret(SECRET)]
    queue = list(reversed(pairs))
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while queue:
            event_id, body = queue.pop()
            headers = build_headers(
                event_id=event_id, body=body, timestamp=int(time.time()), secret_keys=keys
            )
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 204:
                    raise RuntimeError(f"sink answered {resp.status}")
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu0, t0 = cpu_time(), time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, cpu_time() - cpu0
    return done / wall, cpu / done * 1e6


async def dispatcher_round(
    engine: Any, n: int, concurrency: int, *, gc_freeze: bool = False
) -> tuple[float, float, int]:
    """Run the dispatcher over n due deliveries; returns (per second, CPU µs, count)."""
    if gc_freeze:  # as payhook worker does once started
        gc.collect()
        gc.freeze()
    dispatcher = Dispatcher(
        engine=engine,
        policy=RetryPolicy(schedule_s=(60.0,)),
        concurrency=concurrency,
        per_subscription_concurrency=concurrency,
        listen=False,
    )
    cpu0, t0 = cpu_time(), time.perf_counter()
    count = await dispatcher.run_until_idle()
    wall, cpu = time.perf_counter() - t0, cpu_time() - cpu0
    async with engine.connect() as conn:
        ok = await conn.scalar(
            text("SELECT count(*) FROM payhook_deliveries WHERE status = 'succeeded'")
        )
    if gc_freeze:
        gc.unfreeze()
    if ok != n or count != n:
        raise RuntimeError(f"only {ok} of {n} deliveries succeeded ({count} attempts)")
    return count / wall, cpu / count * 1e6, count


async def throughput(args: argparse.Namespace, url: str, sink_url: str) -> None:
    engine = create_engine(url, pool_size=8) if "postgresql" in url else create_engine(url)
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "dispatcher": []}
    ratios = []
    try:
        for round_no in range(1, args.rounds + 1):
            pairs = await seed(engine, args.deliveries, sink_url)
            if args.gc_freeze:
                gc.collect()
                gc.freeze()
            b = await bare(sink_url, pairs, args.concurrency)
            if args.gc_freeze:
                gc.unfreeze()
            d_rate, d_cpu, _ = await dispatcher_round(
                engine, args.deliveries, args.concurrency, gc_freeze=args.gc_freeze
            )
            results["bare"].append(b)
            results["dispatcher"].append((d_rate, d_cpu))
            ratios.append(d_rate / b[0])
            print(
                f"round {round_no}: bare {b[0]:,.0f}/s ({b[1]:.0f} µs CPU), dispatcher "
                f"{d_rate:,.0f}/s ({d_cpu:.0f} µs CPU), ratio {d_rate / b[0]:.2f}",
                flush=True,
            )
    finally:
        await engine.dispose()
    print()
    print(
        f"database: {args.database}, {args.deliveries:,} deliveries, concurrency {args.concurrency}"
    )
    print("| run | per s median [min-max] | client CPU µs per delivery |")
    print("|---|---|---|")
    for name, rows in results.items():
        print(
            f"| {name} | {median_range([r[0] for r in rows])} | "
            f"{median_range([r[1] for r in rows])} |"
        )
    print(f"ratio dispatcher/bare (same round): median {statistics.median(ratios):.2f} "
          f"[{min(ratios):.2f}-{max(ratios):.2f}]")  # fmt: skip


async def latency(args: argparse.Namespace, url: str) -> None:
    """Commit-to-receipt latency on an idle system (LISTEN/NOTIFY or the in-process signal)."""
    from payhook.storage._signal import OutboxSignal

    engine = create_engine(url)
    arrived: dict[str, float] = {}
    got = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrived[request.headers["webhook-id"]] = time.perf_counter()
        got.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook_url = f"http://127.0.0.1:{port}/hook"
    await seed(engine, 0, hook_url)
    async with engine.connect() as conn:
        sub_id = await conn.scalar(text("SELECT id FROM payhook_subscriptions"))
    pg = engine.dialect.name == "postgresql"
    signal = OutboxSignal()
    dispatcher = Dispatcher(
        engine=engine, policy=RetryPolicy(schedule_s=(60.0,)), poll_interval_s=1.0,
        signal=None if pg else signal, listen=pg,
    )  # fmt: skip
    task = asyncio.create_task(dispatcher.run())
    if dispatcher.listener is None and pg:
        await asyncio.sleep(0.5)
    if dispatcher.listener is not None:
        await asyncio.wait_for(dispatcher.listener.connected.wait(), 10)
    samples = []
    try:
        for i in range(args.latency):
            await asyncio.sleep(0.02)
            stamp = now()
            event_id = new_id("evt")
            got.clear()
            async with engine.begin() as conn:
                await conn.execute(
                    events.insert().values(
                        id=event_id, event_key=f"lat:{event_id}", type="payment.order.paid",
                        channel="alipay", provider="alipay", merchant_id="1", created_at=stamp,
                        body=event_body(event_id, i),
                    )
                )  # fmt: skip
                await conn.execute(
                    deliveries.insert().values(
                        id=new_id("dlv"), event_id=event_id, subscription_id=sub_id,
                        status="pending", attempt_count=0, next_attempt_at=stamp,
                        created_at=stamp, updated_at=stamp,
                    )
                )  # fmt: skip
                if pg:
                    await conn.execute(text("SELECT pg_notify('payhook_outbox', '')"))
            committed = time.perf_counter()
            if not pg:
                signal.notify()
            while event_id not in arrived:
                await asyncio.wait_for(got.wait(), 5)
                got.clear()
            samples.append((arrived[event_id] - committed) * 1000)
    finally:
        await dispatcher.stop(grace_s=1)
        await task
        await runner.cleanup()
        await engine.dispose()
    samples.sort()

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    print(f"database: {args.database}, {len(samples)} events, one at a time, idle system")
    print(f"commit -> subscriber receipt, ms: p50 {pct(50):.2f}, p90 {pct(90):.2f}, "
          f"p99 {pct(99):.2f}, max {samples[-1]:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--deliveries", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=int, default=0, help="measure latency over N events")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="CPython's garbage collector defaults instead of payhook worker's settings",
    )
    args = parser.parse_args()
    if args.gc_freeze:  # the worker's settings, for both sides of the comparison
        gc.set_threshold(*GC_THRESHOLDS)

    async def go() -> None:
        if args.database == "postgresql":
            url = await fresh_postgres(args.pg_url, "payhook_bench_out")
        else:
            import tempfile

            from payhook.storage._engine import create_engine as ce
            from payhook.storage._migrate import upgrade

            url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
            engine = ce(url)
            await upgrade(engine)
            await engine.dispose()
        try:
            if args.latency:
                await latency(args, url)
            else:
                with sink(cpu=0) as sink_url:
                    await throughput(args, url, sink_url)
        finally:
            if args.database == "postgresql":
                await drop_postgres(args.pg_url, url)

    pin_self(1)
    with postgres_pinned(0):
        run(go())


if __name__ == "__main__":
    main()
