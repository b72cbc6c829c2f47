"""Admin API subscriptions: CRUD, validation with stable codes, secrets shown once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from payhook._hook import PayHook
from payhook.storage._subscriptions import get_subscription
from tests.integration.admin._helpers import ORDERS_SECRET, delivery_ids, paid

pytestmark = pytest.mark.anyio

NEW_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


async def create(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("name", "crm")
    body.setdefault("url", "https://crm.example/hooks/payhook")
    return await client.post("/admin/subscriptions", json=body)


async def test_create_shows_a_generated_secret_once(
    hook: PayHook, client: httpx.AsyncClient
) -> None:
    """A created subscription's generated secret is in the 201 answer and nowhere afterwards."""
    response = await create(client, events=["payment.order.paid", "payment.refund.*"])
    assert response.status_code == 201
    created = response.json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # the reference library accepts it
    assert created["name"] == "crm"
    assert created["kind"] == "http"
    assert created["source"] == "api"
    assert created["enabled"] is True
    assert created["events"] == ["payment.order.paid", "payment.refund.*"]
    stored = await get_subscription(hook.store.engine, "crm")
    assert stored.active_secrets(hook.clock.now()) == (secret,)
    for path in ("/admin/subscriptions", "/admin/subscriptions/crm"):
        later = await client.get(path)
        assert later.status_code == 200
        assert secret not in later.text
        assert secret.removeprefix("whsec_") not in later.text
    one = (await client.get("/admin/subscriptions/crm")).json()
    assert one["secret"] == "whsec_********"
    assert one["secrets"] == [{"expires_at": None}]


async def test_create_with_given_secret(hook: PayHook, client: httpx.AsyncClient) -> None:
    """A secret given at creation is used as is and echoed only in the creation answer."""
    response = await create(client, secret=NEW_SECRET, enabled=False)
    assert response.status_code == 201
    assert response.json()["secret"] == NEW_SECRET
    assert response.json()["enabled"] is False
    stored = await get_subscription(hook.store.engine, "crm")
    assert stored.active_secrets(hook.clock.now()) == (NEW_SECRET,)


async def test_new_subscription_gets_new_events(hook: PayHook, client: httpx.AsyncClient) -> None:
    """A subscription created over the API receives matching events from then on."""
    await create(client, events=["payment.refund.*"])
    await create(client, name="paid-only", events=["payment.order.paid"])
    event_id = await paid(hook, "1001")
    got = (await client.get(f"/admin/events/{event_id}")).json()
    assert sorted(d["subscription"] for d in got["deliveries"]) == ["orders", "paid-only"]


async def test_patch_toggle_update_rotate_delete(hook: PayHook, client: httpx.AsyncClient) -> None:
    """PATCH toggles enabled, changes URL and filters, rotates the secret; DELETE removes it."""
    first_secret = (await create(client)).json()["secret"]
    off = await client.patch("/admin/subscriptions/crm", json={"enabled": False})
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    assert off.json()["disabled_reason"]
    event_id = await paid(hook, "1001")
    assert len(await delivery_ids(hook, event_id)) == 1, "a disabled subscription got a delivery"
    on = await client.patch("/admin/subscriptions/crm", json={"enabled": True})
    assert on.json()["enabled"] is True
    assert on.json()["disabled_reason"] is None

    changed = await client.patch(
        "/admin/subscriptions/crm",
        json={"url": "http://10.0.0.7:8080/hook", "events": ["payment.refund.*"]},
    )
    assert changed.status_code == 200
    assert changed.json()["url"] == "http://10.0.0.7:8080/hook"
    assert changed.json()["events"] == ["payment.refund.*"]

    rotated = await client.patch(
        "/admin/subscriptions/crm", json={"secret": NEW_SECRET, "grace_period_s": 3600}
    )
    assert rotated.status_code == 200
    assert NEW_SECRET not in rotated.text
    assert first_secret not in rotated.text
    assert rotated.json()["secret"] == "whsec_********"
    assert len(rotated.json()["secrets"]) == 2
    assert rotated.json()["secrets"][1]["expires_at"] is not None
    stored = await get_subscription(hook.store.engine, "crm")
    assert stored.active_secrets(hook.clock.now()) == (NEW_SECRET, first_secret)

    noop = await client.patch("/admin/subscriptions/crm", json={})
    assert noop.status_code == 200
    deleted = await client.delete("/admin/subscriptions/crm")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for response in (
        await client.get("/admin/subscriptions/crm"),
        await client.patch("/admin/subscriptions/crm", json={"enabled": True}),
        await client.delete("/admin/subscriptions/crm"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "subscription_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "ftp://crm.example/hook"}, 422, "invalid_url"),
        ({"url": "https://"}, 422, "invalid_url"),
        ({"url": "javascript:alert(1)"}, 422, "invalid_url"),
        ({"url": "crm.example/hook"}, 422, "invalid_url"),
        ({"url": "https://crm.example/a b"}, 422, "invalid_url"),
        ({"url": "https://crm.example:99999/hook"}, 422, "invalid_url"),
        ({"secret": "whsec_c2hvcnQ="}, 422, "weak_secret"),
        ({"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 422, "invalid_secret"),
        ({"secret": "whsec_!!!not-base64!!!"}, 422, "invalid_secret"),
        ({"events": ["Payment.Order.Paid"]}, 422, "invalid_events"),
        ({"events": ["payment.*.paid"]}, 422, "invalid_events"),
        ({"events": []}, 422, "invalid_events"),
        ({"events": "payment.order.paid"}, 422, "invalid_body"),
        ({"name": "has space"}, 422, "invalid_name"),
        ({"name": ""}, 422, "invalid_name"),
        ({"name": "x" * 129}, 422, "invalid_body"),
        ({"enabled": "yes"}, 422, "invalid_body"),
        ({"colour": "blue"}, 422, "invalid_body"),
        ({"name": "orders"}, 409, "subscription_exists"),
    ],
    ids=[
        "ftp-url",
        "url-without-host",
        "javascript-url",
        "url-without-scheme",
        "url-with-space",
        "url-bad-port",
        "weak-secret",
        "secret-without-prefix",
        "secret-not-base64",
        "filter-upper-case",
        "filter-inner-wildcard",
        "no-filters",
        "filters-not-a-list",
        "name-with-space",
        "empty-name",
        "name-too-long",
        "enabled-not-bool",
        "unknown-field",
        "name-taken",
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    """Invalid subscriptions are refused with a stable code, and never echo a secret."""
    response = await create(client, **body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if "secret" in body:
        assert body["secret"] not in response.text
    listed = (await client.get("/admin/subscriptions")).json()["items"]
    assert [s["name"] for s in listed] == ["orders"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "gopher://x"}, "invalid_url"),
        ({"events": ["*", "NOPE"]}, "invalid_events"),
        ({"secret": "whsec_c2hvcnQ="}, "weak_secret"),
        ({"grace_period_s": -1}, "invalid_body"),
        ({"name": "renamed"}, "invalid_body"),
    ],
    ids=["bad-url", "bad-filter", "weak-secret", "negative-grace", "rename"],
)
async def test_patch_validation(client: httpx.AsyncClient, body: dict[str, Any], code: str) -> None:
    """PATCH validates like creation and leaves the subscription unchanged on error."""
    await create(client)
    before = (await client.get("/admin/subscriptions/crm")).json()
    response = await client.patch("/admin/subscriptions/crm", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert (await client.get("/admin/subscriptions/crm")).json() == before


async def test_config_subscription_is_only_toggled(
    hook: PayHook, client: httpx.AsyncClient
) -> None:
    """A subscription from the config file can be disabled and enabled, not edited or deleted."""
    orders = (await client.get("/admin/subscriptions/orders")).json()
    assert orders["source"] == "config"
    assert orders["secret"] == "whsec_********"
    for body in ({"url": "https://elsewhere.example/"}, {"secret": NEW_SECRET}, {"events": ["*"]}):
        refused = await client.patch("/admin/subscriptions/orders", json=body)
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "subscription_managed_by_config"
    gone = await client.delete("/admin/subscriptions/orders")
    assert gone.status_code == 409
    assert gone.json()["error"]["code"] == "subscription_managed_by_config"
    off = await client.patch("/admin/subscriptions/orders", json={"enabled": False})
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    stored = await get_subscription(hook.store.engine, "orders")
    assert stored.active_secrets(hook.clock.now()) == (ORDERS_SECRET,)
    assert ORDERS_SECRET not in off.text


async def test_handler_subscription_is_only_toggled(database_url: str) -> None:
    """An in-process handler's subscription shows no secret and cannot get a URL."""
    from tests.integration.admin._helpers import TOKEN, make_hook

    hook = make_hook(database_url)

    @hook.on("payment.order.paid", name="mark-paid")
    async def mark_paid(_event: object) -> None:
        return None

    await hook.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hook.app),
            base_url="http://payhook.test",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as client:
            got = (await client.get("/admin/subscriptions/mark-paid")).json()
            assert got["kind"] == "handler"
            assert got["secret"] is None
            refused = await client.patch(
                "/admin/subscriptions/mark-paid", json={"url": "https://x.example/"}
            )
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "subscription_is_handler"
            off = await client.patch("/admin/subscriptions/mark-paid", json={"enabled": False})
            assert off.status_code == 200
            assert off.json()["enabled"] is False
    finally:
        await hook.stop()


async def test_methods_and_unknown_paths(client: httpx.AsyncClient) -> None:
    """Wrong methods are 405 with Allow; unknown admin paths are a JSON 404."""
    put = await client.put("/admin/subscriptions/orders", json={})
    assert put.status_code == 405
    assert put.json()["error"]["code"] == "method_not_allowed"
    assert put.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    missing = await client.get("/admin/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
