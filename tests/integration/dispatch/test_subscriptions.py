"""Subscriptions: config upsert, rotation with grace, handler registration and CRUD."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    SubscriptionIsHandlerError,
    WeakSecretError,
)
from payhook.storage._subscriptions import (
    SubscriptionSpec,
    create_subscription,
    delete_subscription,
    ensure_handler_subscription,
    get_subscription,
    list_subscriptions,
    rotate_secret,
    update_subscription,
    upsert_config_subscriptions,
)
from payhook.testing import FakeClock
from tests.integration.dispatch._seed import SECRET, SECRET_2

pytestmark = pytest.mark.anyio

WEAK = "whsec_c2hvcnQ="


def _spec(**kwargs: object) -> SubscriptionSpec:
    options: dict[str, object] = {
        "name": "orders",
        "url": "http://127.0.0.1:9000/hooks",
        "events": ("payment.order.paid", "payment.refund.*"),
        "secret": SECRET,
    }
    options.update(kwargs)
    return SubscriptionSpec(**options)  # type: ignore[arg-type]


async def test_upsert_creates_then_updates(engine: AsyncEngine) -> None:
    """The first start creates the subscription; later starts apply URL and filter changes."""
    clock = FakeClock()
    result = await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    assert result.created == ("orders",)
    sub = await get_subscription(engine, "orders")
    assert (sub.kind, sub.source, sub.enabled) == ("http", "config", True)
    assert sub.events == ("payment.order.paid", "payment.refund.*")
    assert sub.active_secrets(clock.now()) == (SECRET,)

    again = await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    assert again.created == again.updated == ()

    changed = await upsert_config_subscriptions(
        engine, [_spec(url="https://hooks.internal/p", events=("*",))], clock=clock
    )
    assert changed.updated == ("orders",)
    sub = await get_subscription(engine, "orders")
    assert sub.url == "https://hooks.internal/p"
    assert sub.events == ("*",)


async def test_changed_secret_rotates_with_grace(engine: AsyncEngine) -> None:
    """A new configured secret is primary; the old one stays active for the grace period."""
    clock = FakeClock()
    await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    result = await upsert_config_subscriptions(
        engine, [_spec(secret=SECRET_2)], clock=clock, grace_s=3600
    )
    assert result.rotated == ("orders",)
    sub = await get_subscription(engine, "orders")
    assert sub.active_secrets(clock.now()) == (SECRET_2, SECRET)
    assert sub.active_secrets(clock.now() + timedelta(seconds=3601)) == (SECRET_2,)
    view = sub.public_dict(clock.now())
    assert SECRET not in repr(view)
    assert SECRET_2 not in repr(view)
    assert view["secrets"][0]["expires_at"] is None
    assert view["secrets"][1]["expires_at"] is not None
    # Restarting with the same config does not extend the old secret's life.
    clock.advance(1800)
    assert (
        await upsert_config_subscriptions(engine, [_spec(secret=SECRET_2)], clock=clock)
    ).rotated == ()
    sub = await get_subscription(engine, "orders")
    assert sub.active_secrets(clock.now() + timedelta(seconds=1801)) == (SECRET_2,)


async def test_config_enable_disable_and_removal(engine: AsyncEngine) -> None:
    """Config can disable and re-enable; removal disables; a 410 holds until an operator acts."""
    clock = FakeClock()
    await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    await upsert_config_subscriptions(engine, [_spec(enabled=False)], clock=clock)
    assert (await get_subscription(engine, "orders")).enabled is False
    await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    assert (await get_subscription(engine, "orders")).enabled is True

    removed = await upsert_config_subscriptions(engine, [], clock=clock)
    assert removed.disabled == ("orders",)
    sub = await get_subscription(engine, "orders")
    assert sub.enabled is False
    assert sub.disabled_reason == "removed from the configuration"
    await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    assert (await get_subscription(engine, "orders")).enabled is True

    await update_subscription(
        engine, "orders", enabled=False, disabled_reason="HTTP 410 Gone", clock=clock
    )
    await upsert_config_subscriptions(engine, [_spec()], clock=clock)
    sub = await get_subscription(engine, "orders")
    assert sub.enabled is False
    assert sub.disabled_reason == "HTTP 410 Gone"


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([_spec(), _spec()], "share a name"),
        ([_spec(secret=WEAK)], "at least 24"),
        ([_spec(secret="hunter2hunter2hunter2hunter2hunter2")], "whsec_"),
        ([_spec(url="ftp://example.test/x")], "http"),
        ([_spec(url="http:///nohost")], "http"),
        ([_spec(url="http://exa mple.test/")], "http"),
        ([_spec(events=())], "at least one"),
        ([_spec(events=("payment.*.paid",))], "filter"),
        ([_spec(events="payment.order.paid")], "list"),
        ([_spec(name="bad name")], "name"),
    ],
    ids=[
        "duplicate", "weak-secret", "no-prefix", "ftp", "no-host", "space", "no-events",
        "bad-filter", "string-events", "bad-name",
    ],
)  # fmt: skip
async def test_invalid_config_is_refused(
    engine: AsyncEngine, specs: list[SubscriptionSpec], message: str
) -> None:
    """Invalid declarations raise ConfigurationError without echoing secrets; nothing is stored."""
    with pytest.raises(ConfigurationError, match=message) as info:
        await upsert_config_subscriptions(engine, specs)
    assert "hunter2" not in str(info.value)
    assert "c2hvcnQ" not in str(info.value)
    assert await list_subscriptions(engine) == []


async def test_handler_subscriptions(engine: AsyncEngine) -> None:
    """Handlers register as kind 'handler' with no URL or secret; names never change kind."""
    first = await ensure_handler_subscription(engine, "mark_paid", ["payment.order.paid"])
    assert (first.kind, first.url, first.secrets, first.source) == ("handler", None, (), "code")
    again = await ensure_handler_subscription(engine, "mark_paid", ["payment.*"])
    assert again.id == first.id
    assert again.events == ("payment.*",)
    await upsert_config_subscriptions(engine, [_spec()])
    with pytest.raises(ConflictError):
        await ensure_handler_subscription(engine, "orders", ["*"])
    with pytest.raises(ConflictError):
        await upsert_config_subscriptions(engine, [_spec(name="mark_paid")])
    with pytest.raises(SubscriptionIsHandlerError):
        await update_subscription(engine, "mark_paid", url="http://127.0.0.1/x")


async def test_crud_and_rotation(engine: AsyncEngine) -> None:
    """Create (with a generated secret), list, update, rotate and delete over the API verbs."""
    clock = FakeClock()
    sub, secret = await create_subscription(
        engine, name="ledger", url="https://ledger.internal/h", events=["*"], clock=clock
    )
    assert secret.startswith("whsec_")
    assert sub.active_secrets(clock.now()) == (secret,)
    assert secret not in repr(sub)
    assert sub.source == "api"
    with pytest.raises(ConflictError):
        await create_subscription(engine, name="ledger", url="http://x.test/", events=["*"])
    assert [s.name for s in await list_subscriptions(engine)] == ["ledger"]

    updated = await update_subscription(
        engine, "ledger", url="http://127.0.0.1:9/h", events=["payment.order.*"], clock=clock
    )
    assert (updated.url, updated.events) == ("http://127.0.0.1:9/h", ("payment.order.*",))
    disabled = await update_subscription(engine, "ledger", enabled=False, clock=clock)
    assert disabled.disabled_reason == "disabled by an operator"
    assert (await update_subscription(engine, "ledger", enabled=True)).disabled_reason is None

    rotated, new_secret = await rotate_secret(engine, "ledger", None, 60, clock=clock)
    assert new_secret != secret
    assert rotated.active_secrets(clock.now()) == (new_secret, secret)
    immediate, third = await rotate_secret(engine, "ledger", SECRET, 0, clock=clock)
    assert third == SECRET
    assert immediate.active_secrets(clock.now()) == (SECRET,)
    with pytest.raises(WeakSecretError):
        await rotate_secret(engine, "ledger", WEAK)

    await delete_subscription(engine, "ledger")
    with pytest.raises(NotFoundError):
        await get_subscription(engine, "ledger")
    with pytest.raises(NotFoundError):
        await delete_subscription(engine, "ledger")
    with pytest.raises(NotFoundError):
        await update_subscription(engine, "ledger", enabled=True)
