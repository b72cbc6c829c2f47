"""Database outage under a steady callback stream, on PostgreSQL and on SQLite.

PostgreSQL: the test's own database is closed to connections (``ALLOW_CONNECTIONS false``)
and every session on it is terminated, as when the server goes down; other databases on the
cluster (other tests running in parallel) are untouched. SQLite: another process holds the
write lock (``tests._faults.locked_sqlite``), as when the file cannot be written.

While the database is away: every callback gets the provider's failure reply (503/500),
never success; the process stays up (``/healthz``), says it is not ready (``/readyz``); and the
dispatcher, which has due deliveries all along (the subscriber fails them), backs off instead
of spinning: its CPU time is measured over a quiet window. When the database returns,
everything recovers without a restart and nothing is lost.

Run: ``.venv/bin/pytest tests/faults/test_db_outage.py -m slow -s``
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from payhook.storage._engine import create_engine
from payhook.storage._tables import events
from tests import _db
from tests._faults import locked_sqlite
from tests._server import ServerThread
from tests._subscriber import Subscriber
from tests.conftest import require_postgres
from tests.faults._callbacks import Callbacks
from tests.faults._driver import Driver, Exchange, fact_key, summary
from tests.faults._payhook import SUBSCRIBER_SECRET, PayhookServe, write_config

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SCHEDULE = ("200ms", "500ms", "1s", "1s", *(["2s"] * 12))
BEFORE_S = 3.0
OUTAGE_TRAFFIC_S = 7.0
QUIET_S = 6.0
# A dispatcher that backs off uses a few per cent of a core at most; a spinning one uses ~100 %.
MAX_OUTAGE_CPU_SHARE = 0.10
DELIVERY_WAIT_S = 90.0


class Outage(Protocol):
    """Takes the database away and gives it back."""

    async def cut(self) -> None: ...

    async def restore(self) -> None: ...


class PostgresOutage:
    """Closes one database of the cluster to connections and kills its sessions."""

    def __init__(self, server_url: str, database: str) -> None:
        self._dsn = _db._dsn(server_url)
        self._database = database

    async def _allow(self, allowed: bool) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            flag = "true" if allowed else "false"
            await conn.execute(f'ALTER DATABASE "{self._database}" ALLOW_CONNECTIONS {flag}')
            if not allowed:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    self._database,
                )
        finally:
            await conn.close()

    async def cut(self) -> None:
        await self._allow(False)

    async def restore(self) -> None:
        await self._allow(True)


class SqliteOutage:
    """Holds an exclusive lock on the SQLite file from a thread of its own."""

    def __init__(self, db: Path) -> None:
        self._db = db
        self._locked = threading.Event()
        self._release = threading.Event()
        self._thread: threading.Thread | None = None

    def _hold(self) -> None:
        with locked_sqlite(self._db):
            self._locked.set()
            self._release.wait(timeout=300)

    async def cut(self) -> None:
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._locked.wait, 30)
        assert self._locked.is_set(), "could not lock the SQLite file"

    async def restore(self) -> None:
        self._release.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)


async def _cpu_over(serve: PayhookServe, seconds: float) -> float:
    before = serve.cpu_seconds()
    await asyncio.sleep(seconds)
    return serve.cpu_seconds() - before


async def _pause_and_measure(driver: Driver, serve: PayhookServe, seconds: float) -> float:
    driver.running.clear()
    while driver.in_flight():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let the last answers' work finish
    try:
        return await _cpu_over(serve, seconds)
    finally:
        driver.running.set()


async def _outage_run(
    serve: PayhookServe, outage: Outage, sub: Subscriber, database_url: str
) -> dict[str, Any]:
    driver = Driver(Callbacks(serve.config), serve.url, concurrency=12, rate_per_s=30, seed=3)
    runner = asyncio.create_task(driver.run())
    await asyncio.sleep(BEFORE_S)
    sub.fail_next = 10**9  # deliveries fail from now on: the dispatcher has due work all along
    cpu_up = await _pause_and_measure(driver, serve, QUIET_S)

    await outage.cut()
    cut_done = time.monotonic()
    await asyncio.sleep(OUTAGE_TRAFFIC_S)
    healthz = httpx.get(f"{serve.url}/healthz", timeout=10).status_code
    readyz = httpx.get(f"{serve.url}/readyz", timeout=30).status_code
    cpu_down = await _pause_and_measure(driver, serve, QUIET_S)
    await asyncio.sleep(1.0)
    restore_start = time.monotonic()
    await outage.restore()
    restored = time.monotonic()
    sub.fail_next = 0

    await asyncio.sleep(3.0)
    driver.producing = False
    await asyncio.wait_for(runner, timeout=120)
    # From giving the database back to the first callback acknowledged again.
    recovered_s = (
        min(
            (e.answered for e in driver.exchanges if e.success and e.answered >= restore_start),
            default=restored,
        )
        - restore_start
    )

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            bodies = [json.loads(b) for b in (await conn.execute(select(events.c.body))).scalars()]
    finally:
        await engine.dispose()
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while time.monotonic() < deadline:
        if {b["id"] for b in bodies} <= set(sub.event_ids()):
            break
        await asyncio.sleep(0.5)
    return {
        "alive": serve.alive(),
        "driver": driver,
        "bodies": bodies,
        "cut_done": cut_done,
        "restore_start": restore_start,
        "healthz": healthz,
        "readyz": readyz,
        "cpu_up": cpu_up,
        "cpu_down": cpu_down,
        "recovered_s": recovered_s,
    }


def _during(run: dict[str, Any]) -> list[Exchange]:
    driver: Driver = run["driver"]
    return [
        e
        for e in driver.exchanges
        if e.sent >= run["cut_done"] and e.answered <= run["restore_start"]
    ]


def _check(database: str, run: dict[str, Any], serve: PayhookServe, sub: Subscriber) -> None:
    driver: Driver = run["driver"]
    bodies: list[dict[str, Any]] = run["bodies"]
    during = _during(run)
    per_fact = collections.Counter(
        (b["data"]["channel"], b["data"]["order_id"], b["type"]) for b in bodies
    )
    received = set(sub.event_ids())
    figures = {
        "database": database,
        **summary(driver),
        "callbacks_during_outage": len(during),
        "during_outage_replies": dict(
            collections.Counter(str(e.status) if e.status is not None else e.error for e in during)
        ),
        "healthz_during": run["healthz"],
        "readyz_during": run["readyz"],
        "cpu_s_quiet_db_up": round(run["cpu_up"], 3),
        "cpu_s_quiet_db_down": round(run["cpu_down"], 3),
        "quiet_window_s": QUIET_S,
        "first_success_after_restore_s": round(run["recovered_s"], 2),
        "events": len(bodies),
        "events_delivered": len({b["id"] for b in bodies} & received),
        "restarts": serve.starts - 1,
    }
    print("FIGURES db_outage", json.dumps(figures))
    assert during, "no callback was sent during the outage"
    assert [e for e in during if e.success] == [], "success answered while the database was down"
    # A client-side transport error is no answer from the server, and the driver sends the
    # callback again; every answer (and every timeout) must be a failure reply.
    judged = [e for e in during if not e.client_side_error]
    assert judged, figures["during_outage_replies"]
    assert all(e.failure_reply for e in judged), figures["during_outage_replies"]
    assert run["healthz"] == 200
    if database == "postgresql":
        # SQLite stays readable while another process holds the write lock (WAL), so its
        # /readyz answers 200 even though writes fail: see docs/reliability.md.
        assert run["readyz"] == 503
    assert run["cpu_down"] < MAX_OUTAGE_CPU_SHARE * QUIET_S, "the process spins during the outage"
    assert run["alive"]
    assert serve.starts == 1, "recovery needed a restart"
    assert all(s.acked for s in driver.states.values())
    assert set(per_fact) == {fact_key(s.fact) for s in driver.states.values()}
    assert max(per_fact.values()) == 1
    assert figures["events_delivered"] == len(bodies)


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, str]]:
    """A real subscriber (told to fail while the database is away)."""
    sub = Subscriber(secret=SUBSCRIBER_SECRET)
    with ServerThread(sub.app()) as server:
        yield sub, f"{server.url}/webhooks/payments"


def _serve(tmp_path: Path, url: str, sub_url: str) -> PayhookServe:
    config = write_config(
        tmp_path,
        database_url=url,
        subscriber_url=sub_url,
        retry_schedule=SCHEDULE,
        request_timeout="2s",
        poll_interval="200ms",
    )
    return PayhookServe(config, log=tmp_path / "serve.log")


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_database_outage_fails_callbacks_and_recovers_without_restart(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    subscriber: tuple[Subscriber, str],
    database: str,
) -> None:
    """Down: only failure replies, no spinning. Back: no restart, nothing lost, all delivered."""
    sub, sub_url = subscriber
    outage: Outage
    if database == "sqlite":
        db = tmp_path / "payhook.db"
        url = f"sqlite+aiosqlite:///{db}"
        outage = SqliteOutage(db)
    else:
        url = str(request.getfixturevalue("postgres_database_url"))
        name = make_url(url).database
        assert name
        outage = PostgresOutage(require_postgres(), name)
    serve = _serve(tmp_path, url, sub_url)
    serve.start()
    try:
        run = asyncio.run(_outage_run(serve, outage, sub, url))
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(outage.restore())
        serve.stop()
    _check(database, run, serve, sub)
