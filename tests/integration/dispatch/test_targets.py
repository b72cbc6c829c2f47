"""Subscription targets at delivery time: credentials in the URL are used but never shown, and
refused addresses are refused after name resolution (a name cannot smuggle a target in)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._hook import PayHook
from payhook.config import DispatcherSettings, PayhookSettings
from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import (
    add_subscription,
    attempt_rows,
    delivery_rows,
    seed_events,
)
from tests.integration.dispatch._subscriber import Subscriber

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(schedule_s=(1.0, 4.0), jitter=0.0)
PASSWORD = "s3cret-Pw-4471"
TOKEN = "tok-9f8e7d6c5b4a"


def _dispatcher(engine: AsyncEngine, clock: FakeClock, *, refuse_private: bool) -> Dispatcher:
    return Dispatcher(
        engine=engine,
        policy=POLICY,
        clock=clock,
        request_timeout_s=5.0,
        listen=False,
        refuse_private_targets=refuse_private,
    )


@pytest.fixture
async def garbage_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers every request with a broken status line
    (aiohttp's error then quotes the request URL)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_credentials_in_the_url_reach_the_subscriber(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """The stored URL is used whole: basic auth from its userinfo, its query as given."""
    clock = FakeClock()
    base = subscriber.url("creds").removeprefix("http://")
    url = f"http://payhook:{PASSWORD}@{base}?token={TOKEN}&v=1"
    sub = await add_subscription(engine, name="creds", url=url, now=clock.now())
    await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())

    assert await _dispatcher(engine, clock, refuse_private=False).run_until_idle() == 1

    [got] = subscriber.on("creds")
    expected = base64.b64encode(f"payhook:{PASSWORD}".encode()).decode()
    assert got.headers["Authorization"] == f"Basic {expected}"
    assert got.query == f"token={TOKEN}&v=1"


async def test_a_delivery_error_shows_no_credentials(
    engine: AsyncEngine, garbage_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The attempt's error and the log lines quote the URL masked."""
    caplog.set_level(logging.DEBUG, logger="payhook")
    clock = FakeClock()
    url = f"http://payhook:{PASSWORD}@127.0.0.1:{garbage_server}/broken?token={TOKEN}&v=1"
    sub = await add_subscription(engine, name="broken", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())

    assert await _dispatcher(engine, clock, refuse_private=False).run_until_idle() == 1

    [attempt] = await attempt_rows(engine, seeded.delivery_ids[0])
    assert attempt.error_class == "http"
    assert "token=***&v=1" in attempt.error
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=***&v=1" in logged
    for secret in (PASSWORD, TOKEN):
        assert secret not in attempt.error
        assert secret not in logged


async def test_private_targets_are_refused_at_connect_time_with_the_switch(
    engine: AsyncEngine, subscriber: Subscriber
) -> None:
    """``localhost`` resolves to loopback: with the switch on nothing reaches the subscriber
    and the attempt records the refusal as a connect error; with it off the same delivery
    succeeds."""
    clock = FakeClock()
    port = subscriber.base_url.rsplit(":", 1)[1]
    subscriber.url("local")
    url = f"http://localhost:{port}/local"
    sub = await add_subscription(engine, name="local", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
    delivery_id = seeded.delivery_ids[0]

    assert await _dispatcher(engine, clock, refuse_private=True).run_until_idle() == 1

    assert subscriber.on("local") == []
    row = (await delivery_rows(engine))[delivery_id]
    assert row.status == "failed"
    [attempt] = await attempt_rows(engine, delivery_id)
    assert attempt.error_class == "connect"
    assert attempt.status_code is None
    assert "refused target" in attempt.error
    assert "loopback" in attempt.error

    clock.advance(2.0)
    assert await _dispatcher(engine, clock, refuse_private=False).run_until_idle() == 1
    assert len(subscriber.on("local")) == 1
    assert (await delivery_rows(engine))[delivery_id].status == "succeeded"


async def test_metadata_targets_are_refused_at_connect_time(engine: AsyncEngine) -> None:
    """A stored link-local target (from before the rule, or written behind payhook's back) is
    never connected to, whatever the switch says."""
    clock = FakeClock()
    url = "http://169.254.169.254:80/latest/meta-data/iam"
    sub = await add_subscription(engine, name="imds", url=url, now=clock.now())
    seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())

    assert await _dispatcher(engine, clock, refuse_private=False).run_until_idle() == 1

    [attempt] = await attempt_rows(engine, seeded.delivery_ids[0])
    assert attempt.error_class == "connect"
    assert "refused target: 169.254.169.254 is a link-local address" in attempt.error


async def test_the_switch_reaches_the_dispatcher_from_the_config(
    sqlite_database_url: str, subscriber: Subscriber
) -> None:
    """``[dispatcher] refuse_private_targets`` in the settings is what the hook's dispatcher
    enforces."""
    clock = FakeClock()
    settings = PayhookSettings(
        database_url=sqlite_database_url,
        dispatcher=DispatcherSettings(refuse_private_targets=True),
    )
    hook = PayHook(settings, clock=clock, run_dispatcher=False)
    await hook.start()
    try:
        engine = hook.store.engine
        port = subscriber.base_url.rsplit(":", 1)[1]
        subscriber.url("hooked")
        url = f"http://localhost:{port}/hooked"
        sub = await add_subscription(engine, name="hooked", url=url, now=clock.now())
        seeded = await seed_events(engine, 1, subscription_ids=[sub], now=clock.now())
        assert await hook.build_dispatcher().run_until_idle() == 1
        assert subscriber.on("hooked") == []
        [attempt] = await attempt_rows(engine, seeded.delivery_ids[0])
        assert "refused target" in attempt.error
    finally:
        await hook.stop()
