"""Run one dispatcher in its own process, for the crash and multi-worker tests.

Usage: ``python -m tests.integration.dispatch._worker_main DATABASE_URL [options]``.
SIGTERM stops it gracefully; it prints ``attempts=<n>`` on the way out. These tests need a
lease margin of a second or two, which ``payhook worker`` does not expose (its lease is
``request_timeout`` + 30 s); the real command is killed with SIGKILL in
``tests/faults/test_crash.py`` and drains a backlog in ``tests/e2e``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.storage._engine import create_engine


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--lease-margin", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-subscription", type=int, default=8)
    parser.add_argument("--schedule", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--no-listen", action="store_true")
    return parser.parse_args()


async def _main(args: argparse.Namespace) -> None:
    engine = create_engine(args.database_url)
    dispatcher = Dispatcher(
        engine=engine,
        policy=RetryPolicy(schedule_s=tuple(args.schedule)),
        request_timeout_s=args.request_timeout,
        lease_margin_s=args.lease_margin,
        poll_interval_s=args.poll_interval,
        concurrency=args.concurrency,
        per_subscription_concurrency=args.per_subscription,
        listen=not args.no_listen,
    )
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    loop.add_signal_handler(
        signal.SIGTERM, lambda: stopping.append(asyncio.create_task(dispatcher.stop()))
    )
    print("ready", flush=True)
    try:
        await dispatcher.run()
    finally:
        await engine.dispose()
    print(f"attempts={dispatcher.attempts_made}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_main(_parse()))
