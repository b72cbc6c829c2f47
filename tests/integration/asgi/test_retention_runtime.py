"""The hourly prune of ``serve`` and ``worker`` (contract §14), with the interval shortened:
it runs after start and then again and again, logs and counts what it removed, survives a
failing database, and stops with the process."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from payhook._hook import PayHook
from payhook.config import PayhookSettings
from payhook.storage._engine import create_engine
from payhook.storage._tables import events
from payhook.testing import FakeClock
from tests._server import ServerThread
from tests.integration.storage._retention_seed import Seeder, ids

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
_DEADLINE_S = 60.0  # a guard against a hang only: the tests wait for positive signals


def _hook(database_url: str, **kwargs: object) -> PayHook:
    return PayHook(
        PayhookSettings(database_url=database_url),
        clock=FakeClock(START),
        run_dispatcher=False,
        prune_interval_s=0.02,
        prune_first_delay_s=0,
        **kwargs,  # type: ignore[arg-type]
    )


async def _seed(database_url: str, work: Callable[[Seeder], object]) -> None:
    engine = create_engine(database_url)
    try:
        result = work(Seeder(engine, now=START))
        if asyncio.iscoroutine(result):
            await result
    finally:
        await engine.dispose()


async def _old_events(seed: Seeder, finished: int, pending: int = 0) -> None:
    for _ in range(finished):
        await seed.event(1000, ("succeeded",), attempt_ages=(999,))
    for _ in range(pending):
        await seed.event(1000, ("pending",))


def _metric(body: str, name: str, table: str) -> float:
    match = re.search(rf'^{name}\{{table="{table}"\}} (\S+)$', body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _wait_for_metric(url: str, table: str, at_least: float) -> str:
    deadline = time.monotonic() + _DEADLINE_S
    while True:
        body = httpx.get(f"{url}/metrics", timeout=10).text
        if _metric(body, "payhook_retention_pruned_rows_total", table) >= at_least:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"no prune of {table} reported:\n{body}")
        time.sleep(0.02)


def test_serve_prunes_after_start_and_again_every_interval(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="payhook")
    asyncio.run(_seed(database_url, lambda s: _old_events(s, finished=2, pending=1)))
    hook = _hook(database_url)
    with ServerThread(hook.app) as server:
        body = _wait_for_metric(server.url, "payhook_events", 2)
        assert _metric(body, "payhook_retention_pruned_rows_total", "payhook_deliveries") == 2
        assert "payhook_retention_last_success_timestamp_seconds" in body
        # More old rows later: the next run (an hour later in production) takes them too.
        asyncio.run(_seed(database_url, lambda s: _old_events(s, finished=1)))
        _wait_for_metric(server.url, "payhook_events", 3)

    removed = [r for r in caplog.records if r.getMessage().startswith("retention: removed")]
    assert removed
    assert all(r.levelno == logging.INFO for r in removed)
    assert "payhook_events 2" in removed[0].getMessage()
    assert removed[0].__dict__["action"] == "retention_pruned"
    # The old event whose delivery is still pending stays.
    left = asyncio.run(_event_ids(database_url))
    assert len(left) == 1


async def _event_ids(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return {str(i) for i in await ids(engine, events)}
    finally:
        await engine.dispose()


async def _until(check: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DEADLINE_S
    while not check():
        if loop.time() > deadline:
            raise AssertionError("the condition was not reached")
        await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_worker_survives_a_failing_prune_and_stops_cleanly(
    sqlite_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A prune the database refuses is a warning and a counted failure, not a crash; the
    next run succeeds once the fault is gone; stop() ends the task."""
    caplog.set_level(logging.INFO, logger="payhook")
    url = sqlite_database_url

    async def seed(s: Seeder) -> None:
        for _ in range(3):
            await s.refused(30)
        async with s.engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TRIGGER test_fault BEFORE DELETE ON payhook_refused_callbacks "
                    "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                )
            )

    await _seed(url, seed)
    # What `payhook worker` runs: no dispatcher in the hook, no migration.
    hook = _hook(url, migrate=False)
    registry = hook.metrics.registry

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    await hook.start()
    try:
        await _until(lambda: sample("payhook_retention_failures_total") >= 2)
        assert sample("payhook_retention_pruned_rows_total", table="payhook_refused_callbacks") == 0

        async def heal(s: Seeder) -> None:
            async with s.engine.begin() as conn:
                await conn.execute(text("DROP TRIGGER test_fault"))

        await _seed(url, heal)
        await _until(
            lambda: (
                sample("payhook_retention_pruned_rows_total", table="payhook_refused_callbacks")
                == 3
            )
        )
    finally:
        await hook.stop()
    pruner_task_left = [t for t in asyncio.all_tasks() if "Pruner.run" in repr(t)]
    assert pruner_task_left == []
    failed = [r for r in caplog.records if r.getMessage().startswith("retention: prune failed")]
    assert failed
    assert all(r.levelno == logging.WARNING for r in failed)
    assert "injected fault" not in failed[0].getMessage()  # the class, not the SQL
    assert "IntegrityError" in failed[0].getMessage()
