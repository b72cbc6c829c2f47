"""Issue 17 item 5: in-process handlers keep one subscription whatever the module path the app
was started under; subscriptions no process registers are named at start; a paused
subscription's waiting deliveries do not count as stuck ones on /metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from payhook._hook import PayHook
from payhook.config import PayhookSettings, SubscriptionSettings
from payhook.errors import ConfigurationError, SubscriptionIsHandlerError
from payhook.events import Event
from payhook.operations import Operations
from payhook.testing import FakeClock
from tests._server import ServerThread
from tests.integration.admin._helpers import delivery_ids, paid

pytestmark = pytest.mark.anyio

ORDERS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def handler_in(module: str, seen: list[str] | None = None) -> Callable[[Event], object]:
    """A ``mark_paid`` function as if defined at the top of ``module`` (``__main__`` when the
    shop runs as ``python app.py``, ``app`` under ``uvicorn app:app``)."""

    async def mark_paid(event: Event) -> None:
        if seen is not None:
            seen.append(event.id)

    mark_paid.__module__ = module
    mark_paid.__qualname__ = "mark_paid"
    return mark_paid


def make_hook(database_url: str, clock: FakeClock | None = None, **kwargs: object) -> PayHook:
    settings = PayhookSettings(
        database_url=database_url,
        subscriptions=(
            SubscriptionSettings(
                name="orders",
                url="http://127.0.0.1:9/webhooks/payments",
                events=("*",),
                secret=ORDERS_SECRET,
            ),
        ),
    )
    return PayHook(settings, clock=clock, run_dispatcher=False, **kwargs)  # type: ignore[arg-type]


async def handler_subscriptions(hook: PayHook) -> dict[str, tuple[str, bool]]:
    """Stored handler subscriptions: name -> (id, enabled)."""
    subs = await hook.operations.subscriptions()
    return {s.name: (s.id, s.enabled) for s in subs if s.kind == "handler"}


async def test_one_subscription_whatever_the_module_path(database_url: str) -> None:
    """The shop started as `python app.py` and then as `uvicorn app:app` keeps one handler
    subscription, named after the function: no orphan."""
    for module in ("__main__", "app", "__main__"):
        hook = make_hook(database_url)
        hook.on("payment.order.paid")(handler_in(module))
        assert list(hook.handlers) == ["handler:mark_paid"]
        await hook.start()
        try:
            assert list(await handler_subscriptions(hook)) == ["handler:mark_paid"]
        finally:
            await hook.stop()


def test_two_functions_with_one_name_need_name_eq(sqlite_database_url: str) -> None:
    """Two functions whose derived names collide are refused at registration, with the fix;
    an explicit name= resolves it, and a name that cannot be a subscription is refused."""
    hook = make_hook(sqlite_database_url)
    hook.on("payment.order.paid")(handler_in("shop.orders"))
    with pytest.raises(ConfigurationError, match=r"handler:mark_paid.*name="):
        hook.on("payment.refund.*")(handler_in("shop.refunds"))
    hook.on("payment.refund.*", name="handler:refunds.mark_paid")(handler_in("shop.refunds"))
    assert sorted(hook.handlers) == ["handler:mark_paid", "handler:refunds.mark_paid"]
    with pytest.raises(ConfigurationError, match="name="):
        hook.on("*")(lambda event: None)


async def test_old_name_of_this_handler_is_renamed_with_its_deliveries(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A row named by the old rule (handler:<module>.<function>) for this very handler takes
    the new name, in place: same subscription, and its waiting deliveries reach the handler."""
    clock = FakeClock()
    old = make_hook(database_url, clock)
    # What an earlier payhook stored for the shop run as `uvicorn app:app`.
    old.on("payment.order.paid", name="handler:app.mark_paid")(handler_in("app"))
    await old.start()
    try:
        event_id = await paid(old, "1001")
        waiting = await delivery_ids(old, event_id)
        before = await handler_subscriptions(old)
    finally:
        await old.stop()

    seen: list[str] = []
    hook = make_hook(database_url, clock)
    hook.on("payment.order.paid")(handler_in("app", seen))
    caplog.set_level(logging.INFO, logger="payhook")
    await hook.start()
    try:
        after = await handler_subscriptions(hook)
        assert after == {"handler:mark_paid": before["handler:app.mark_paid"]}
        renamed = [r for r in caplog.records if getattr(r, "action", "") == "handler_renamed"]
        assert len(renamed) == 1
        assert "'handler:app.mark_paid' to 'handler:mark_paid'" in renamed[0].getMessage()
        dispatcher = hook.build_dispatcher()
        assert await dispatcher.run_until_idle() >= 1
        assert seen == [event_id]
        found = await hook.operations.deliveries_of_events([event_id], with_attempts=False)
        handled = [d for d in found[event_id] if d.subscription == "handler:mark_paid"]
        assert [(d.id in waiting, d.status) for d in handled] == [(True, "succeeded")]
    finally:
        await hook.stop()


async def test_no_rename_onto_a_name_in_use(sqlite_database_url: str) -> None:
    """An old-style name that another handler of this process uses today stays that one's."""
    hook = make_hook(sqlite_database_url)
    hook.on("*", name="handler:app.mark_paid")(handler_in("elsewhere"))
    hook.on("payment.order.paid")(handler_in("app"))
    await hook.start()
    try:
        subs = await handler_subscriptions(hook)
        assert sorted(subs) == ["handler:app.mark_paid", "handler:mark_paid"]
    finally:
        await hook.stop()


async def test_unregistered_handler_subscriptions_are_named_at_start(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An app with handlers warns once per enabled handler subscription it does not register
    (with its backlog and the fix); a process without handlers says it in one INFO line."""
    clock = FakeClock()
    seed = make_hook(database_url, clock)
    seed.on("*", name="handler:__main__.mark_paid")(handler_in("__main__"))
    await seed.start()
    try:
        await paid(seed, "1001")
    finally:
        await seed.stop()
    clock.advance(7200)

    caplog.set_level(logging.INFO, logger="payhook")
    hook = make_hook(database_url, clock)
    hook.on("payment.order.paid")(handler_in("app"))
    await hook.start()
    await hook.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "'handler:__main__.mark_paid' is enabled but not registered" in text
    assert "1 deliveries wait for it (the oldest for 2.0 h)" in text
    assert "payhook subscriptions disable handler:__main__.mark_paid" in text
    assert getattr(warnings[0], "subscription", None) == "handler:__main__.mark_paid"

    caplog.clear()
    served = make_hook(database_url, clock)  # what `payhook serve` / `worker` build
    await served.start()
    await served.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [info] = [r for r in caplog.records if getattr(r, "action", "") == "handlers_elsewhere"]
    assert "2 enabled handler subscription(s)" in info.getMessage()
    assert "handler:__main__.mark_paid, handler:mark_paid" in info.getMessage()

    # Enabled, it may not be deleted; disabled, it is no longer named, and may be deleted
    # with its deliveries.
    async with Operations.open(database_url) as ops:
        with pytest.raises(SubscriptionIsHandlerError, match="disable it first"):
            await ops.delete_subscription("handler:__main__.mark_paid")
        await ops.update_subscription("handler:__main__.mark_paid", enabled=False)
    caplog.clear()
    hook = make_hook(database_url, clock)
    hook.on("payment.order.paid")(handler_in("app"))
    await hook.start()
    try:
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        await hook.operations.delete_subscription("handler:__main__.mark_paid")
        assert list(await handler_subscriptions(hook)) == ["handler:mark_paid"]
    finally:
        await hook.stop()


def _sample(text: str, name: str, subscription: str) -> float | None:
    prefix = f'{name}{{subscription="{subscription}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def test_paused_subscription_is_not_a_stuck_one_on_metrics(database_url: str) -> None:
    """/metrics on a real server: the waiting deliveries of a disabled subscription are in
    payhook_deliveries_paused / payhook_oldest_paused_delivery_age_seconds, not in the
    pending gauges the stuck-delivery alarm reads; enabled again, they are pending again."""
    import asyncio

    clock = FakeClock()
    asyncio.run(_seed_and_pause(database_url, clock))
    clock.advance(600)
    hook = make_hook(database_url, clock)
    hook.on("payment.order.paid")(handler_in("app"))  # not run: run_dispatcher=False
    paused = "handler:mark_paid"
    with ServerThread(hook.app) as server:
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert _sample(text, "payhook_oldest_pending_delivery_age_seconds", "orders") == 600
        assert _sample(text, "payhook_deliveries_pending", "orders") == 1
        assert _sample(text, "payhook_oldest_pending_delivery_age_seconds", paused) is None
        assert _sample(text, "payhook_deliveries_pending", paused) is None
        assert _sample(text, "payhook_deliveries_paused", paused) == 1
        assert _sample(text, "payhook_oldest_paused_delivery_age_seconds", paused) == 600
        assert _sample(text, "payhook_deliveries_paused", "orders") is None

        asyncio.run(_toggle(database_url, paused, enabled=True))
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert _sample(text, "payhook_oldest_pending_delivery_age_seconds", paused) == 600
        assert _sample(text, "payhook_deliveries_paused", paused) is None


async def _seed_and_pause(database_url: str, clock: FakeClock) -> None:
    """One event with a delivery to "orders" and to the handler, then the handler paused."""
    seed = make_hook(database_url, clock)
    seed.on("payment.order.paid")(handler_in("app"))
    await seed.start()
    try:
        await paid(seed, "1001")
        await seed.operations.update_subscription("handler:mark_paid", enabled=False)
    finally:
        await seed.stop()


async def _toggle(database_url: str, name: str, *, enabled: bool) -> None:
    async with Operations.open(database_url) as ops:
        await ops.update_subscription(name, enabled=enabled)


@pytest.mark.timeout(600)  # three CLI processes; slow on a loaded machine
def test_cli_deletes_an_orphan_once_disabled(tmp_path: Path) -> None:
    """`payhook subscriptions delete` refuses an enabled handler subscription (one line,
    exit 1) and deletes it once disabled, with its deliveries."""
    import asyncio

    from tests.integration.cli.test_startup import error_line, payhook

    url = f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}"
    orphan = "handler:__main__.mark_paid"

    async def seed() -> None:
        hook = make_hook(url)
        hook.on("*", name=orphan)(handler_in("__main__"))
        await hook.start()
        try:
            await paid(hook, "1001")
        finally:
            await hook.stop()

    asyncio.run(seed())
    config = tmp_path / "payhook.toml"
    config.write_text(f'database_url = "{url}"\n')
    args = ("--config", str(config))
    refused = payhook("subscriptions", "delete", orphan, "--yes", *args)
    assert "disable it first" in error_line(refused)
    assert payhook("subscriptions", "disable", orphan, *args).returncode == 0
    deleted = payhook("subscriptions", "delete", orphan, "--yes", *args)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"subscription {orphan} deleted with its deliveries"

    async def remaining() -> tuple[list[str], list[str]]:
        async with Operations.open(url) as ops:
            subs = [s.name for s in await ops.subscriptions()]
            page = await ops.list_deliveries(with_attempts=False)
            return subs, [d.subscription for d in page.items]

    assert asyncio.run(remaining()) == (["orders"], ["orders"])
