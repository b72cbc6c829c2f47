"""Issue 16 item 6: a flood of refused 60 KB callbacks while valid ones keep arriving.

payhook under a real uvicorn on a SQLite file; several clients send refused Alipay callbacks
(a validly signed body padded to ~60 KB, so the signature no longer matches) while valid
callbacks arrive one after another. Contract §14: every valid callback is answered
``success`` and stored with its delivery; the refused ones are audited as bounded records
(growing the database by far less than their size), and every one that is not audited is
counted in ``payhook_refused_audits_dropped_total``. Latency is measured by
``bench/flood.py``, never asserted here.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from payhook._hook import PayHook
from payhook.config import PayhookSettings, SubscriptionSettings
from payhook.providers import build_simulator
from payhook.storage._engine import create_engine
from payhook.storage._tables import deliveries, events, notifications, refused_callbacks
from tests._server import ServerThread
from tests.integration.asgi.test_refund_notify import alipay_channel

FLOOD_CLIENTS = 6
VALID_CALLBACKS = 40
# At least this many refused callbacks are sent (the flood goes on until the valid ones are
# done): 300 x 60 KB = 18 MB, which stored whole (as before the fix) breaks the 5 MB bound.
MIN_REFUSED = 300
PAD = 60_000
MAX_GROWTH = 5 * 1024 * 1024


def db_bytes(db: Path) -> int:
    """The database file plus its WAL."""
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


@pytest.fixture
def hook(sqlite_database_url: str) -> PayHook:
    settings = PayhookSettings(
        database_url=sqlite_database_url,
        channels=(alipay_channel(),),
        subscriptions=(
            SubscriptionSettings(
                name="orders",
                url="http://127.0.0.1:9/unused",
                events=("*",),
                secret="whsec_" + "A" * 43,
            ),
        ),
    )
    return PayHook(settings, run_dispatcher=False)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {
                table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
                for table in (events, deliveries, notifications, refused_callbacks)
            }
    finally:
        await engine.dispose()


async def excerpt_sizes(database_url: str) -> list[int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            texts = (await conn.execute(select(refused_callbacks.c.excerpt))).scalars()
            return [len(text.encode("utf-8")) for text in texts]
    finally:
        await engine.dispose()


def test_refused_flood_never_costs_a_valid_callback(
    hook: PayHook, sqlite_database_url: str
) -> None:
    db = Path(sqlite_database_url.removeprefix("sqlite+aiosqlite:///"))
    simulator = build_simulator(hook.settings.channel("alipay"))

    def valid(n: int) -> tuple[bytes, dict[str, str]]:
        callback = simulator.build(
            order_id=f"FLOOD-{n}", amount=8888, event="paid", refund_amount=None,
            now=hook.clock.now(),
        )  # fmt: skip
        return callback.body, dict(callback.headers)

    # A refused callback: a real notification padded past its signature, ~60 KB.
    body, headers = valid(-1)
    refused_body = body + b"&pad=" + b"x" * PAD

    async def run(url: str) -> tuple[list[tuple[int, str]], int, list[int]]:
        done = asyncio.Event()
        refused_statuses: list[int] = []

        async def flood(client: httpx.AsyncClient) -> None:
            while not done.is_set() or len(refused_statuses) < MIN_REFUSED:
                reply = await client.post(
                    f"{url}/notify/alipay", content=refused_body, headers=headers
                )
                refused_statuses.append(reply.status_code)

        async def send_valid(client: httpx.AsyncClient) -> list[tuple[int, str]]:
            replies = []
            try:
                for n in range(VALID_CALLBACKS):
                    body, headers = valid(n)
                    reply = await client.post(f"{url}/notify/alipay", content=body, headers=headers)
                    replies.append((reply.status_code, reply.text))
            finally:
                done.set()
            return replies

        limits = httpx.Limits(max_connections=FLOOD_CLIENTS + 1)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            # Start the flood first, so every valid callback meets it.
            flooders = [asyncio.ensure_future(flood(client)) for _ in range(FLOOD_CLIENTS)]
            while len(refused_statuses) < FLOOD_CLIENTS:
                await asyncio.sleep(0.01)
            replies = await send_valid(client)
            await asyncio.gather(*flooders)
        return replies, len(refused_statuses), sorted(set(refused_statuses))

    with ServerThread(hook.app) as server:
        # A first valid callback, so the database and its WAL exist before measuring.
        body0, headers0 = valid(10_000)
        assert (
            httpx.post(f"{server.url}/notify/alipay", content=body0, headers=headers0).text
            == "success"
        )
        before = db_bytes(db)
        replies, refused_sent, refused_statuses = asyncio.run(run(server.url))
        # Every refused callback is audited or counted as dropped; wait for the audit to
        # catch up (it is written behind the answers), then read the counters.
        deadline = time.monotonic() + 60
        while True:
            text = httpx.get(f"{server.url}/metrics").text
            refused = metric(text, "payhook_callbacks_total", outcome="refused")
            dropped = metric(text, "payhook_refused_audits_dropped_total")
            written = asyncio.run(counts(sqlite_database_url))["payhook_refused_callbacks"]
            if written + dropped >= refused or time.monotonic() > deadline:
                break
            asyncio.run(asyncio.sleep(0.01))
    after = db_bytes(db)

    print(
        f"refused sent {refused_sent}, audited {written}, dropped {dropped:.0f}, "
        f"database grew {(after - before) / 1e6:.2f} MB"
    )
    assert replies == [(200, "success")] * VALID_CALLBACKS
    assert after - before <= MAX_GROWTH, f"grew {(after - before) / 1e6:.1f} MB"
    assert refused_statuses == [400]  # Alipay's failure answer for a bad signature
    assert refused_sent >= MIN_REFUSED
    assert refused == refused_sent
    final = asyncio.run(counts(sqlite_database_url))
    assert final["payhook_events"] == VALID_CALLBACKS + 1
    assert final["payhook_deliveries"] == VALID_CALLBACKS + 1
    assert final["payhook_notifications"] == VALID_CALLBACKS + 1  # no refused copy among them
    # Each refused callback: a bounded record, or a counted drop; nothing lost silently.
    assert final["payhook_refused_callbacks"] + dropped == refused_sent
    assert final["payhook_refused_callbacks"] >= 1
    assert max(asyncio.run(excerpt_sizes(sqlite_database_url))) <= 2048
    assert metric(text, "payhook_refused_audits_dropped_total", cause="write_failed") == 0
