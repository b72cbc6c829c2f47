"""Admin API deliveries: listing with attempts and filters, retry, and bulk recovery."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from payhook._hook import PayHook
from tests.integration.admin._helpers import delivery_ids, fail, paid, succeed

pytestmark = pytest.mark.anyio


async def one_delivery(hook: PayHook, order_id: str) -> str:
    """Store a paid event for ``order_id``; returns its only delivery's id."""
    [delivery_id] = await delivery_ids(hook, await paid(hook, order_id))
    return delivery_id


async def test_list_with_attempts_and_filters(hook: PayHook, client: httpx.AsyncClient) -> None:
    """Deliveries list newest first with their attempts, filtered by status, order and event."""
    ok = await one_delivery(hook, "1001")
    dead = await one_delivery(hook, "1002")
    waiting = await one_delivery(hook, "1003")
    await fail(hook, ok, dead=False, status_code=503)
    await succeed(hook, ok)
    await fail(hook, dead, dead=True)
    response = await client.get("/admin/deliveries")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [d["id"] for d in items] == sorted([ok, dead, waiting], reverse=True)
    by_id = {d["id"]: d for d in items}
    assert [a["status_code"] for a in by_id[ok]["attempts"]] == [503, 204]
    assert by_id[ok]["status"] == "succeeded"
    assert by_id[ok]["attempt_count"] == 2
    assert by_id[dead]["status"] == "dead"
    assert by_id[dead]["attempts"][0]["error_class"] == "http"
    assert by_id[dead]["attempts"][0]["response_body"] == "boom"
    assert by_id[dead]["next_attempt_at"] is None
    assert by_id[waiting]["status"] == "pending"
    assert by_id[waiting]["next_attempt_at"] is not None
    assert by_id[waiting]["order_id"] == "1003"

    async def ids(**params: str) -> list[str]:
        got = await client.get("/admin/deliveries", params=params)
        assert got.status_code == 200, got.text
        return [d["id"] for d in got.json()["items"]]

    assert await ids(status="dead") == [dead]
    assert await ids(status="succeeded") == [ok]
    assert await ids(status="pending") == [waiting]
    assert await ids(status="failed") == []
    assert await ids(order_id="1002") == [dead]
    assert await ids(subscription="orders", order_id="1001") == [ok]
    assert await ids(subscription="nobody") == []
    event_id = by_id[waiting]["event_id"]
    assert await ids(event_id=event_id) == [waiting]
    assert await ids(since=(hook.clock.now() + timedelta(minutes=1)).isoformat()) == []


async def test_delivery_pagination(hook: PayHook, client: httpx.AsyncClient) -> None:
    """next_cursor walks every delivery once; an event cursor is refused here."""
    made = [await one_delivery(hook, f"O-{i}") for i in range(5)]
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = (await client.get("/admin/deliveries", params=params)).json()
        seen.extend(d["id"] for d in page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == sorted(made, reverse=True)
    events_page = (await client.get("/admin/events", params={"limit": 1})).json()
    refused = await client.get("/admin/deliveries", params={"cursor": events_page["next_cursor"]})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "params",
    [{"status": "exploded"}, {"limit": "-1"}, {"until": "soon"}, {"subscriptions": "orders"}],
    ids=["unknown-status", "negative-limit", "bad-until", "unknown-parameter"],
)
async def test_bad_delivery_queries(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    """Bad delivery query parameters are a 400 invalid_parameter."""
    response = await client.get("/admin/deliveries", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"


async def test_get_one_delivery(hook: PayHook, client: httpx.AsyncClient) -> None:
    """GET /admin/deliveries/{id} shows one delivery; unknown ids are 404 delivery_not_found."""
    delivery_id = await one_delivery(hook, "1001")
    got = await client.get(f"/admin/deliveries/{delivery_id}")
    assert got.status_code == 200
    assert got.json()["id"] == delivery_id
    for missing in ("dlv_00000000000000000000000000", "nope"):
        response = await client.get(f"/admin/deliveries/{missing}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "delivery_not_found"


async def test_retry_requeues_a_dead_delivery(hook: PayHook, client: httpx.AsyncClient) -> None:
    """Retrying a dead delivery makes it pending and due now; its attempts stay recorded."""
    delivery_id = await one_delivery(hook, "1001")
    await fail(hook, delivery_id, dead=True)
    response = await client.post(f"/admin/deliveries/{delivery_id}/retry")
    assert response.status_code == 202
    body = response.json()
    assert body["id"] == delivery_id
    assert body["status"] == "pending"
    assert body["attempt_count"] == 0
    assert len(body["attempts"]) == 1
    assert body["next_attempt_at"] is not None
    assert body["next_attempt_at"] <= hook.clock.now().isoformat().replace("+00:00", "Z")
    missing = await client.post("/admin/deliveries/dlv_00000000000000000000000000/retry")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "delivery_not_found"


async def test_bulk_recovery_counts_with_dry_run(hook: PayHook, client: httpx.AsyncClient) -> None:
    """Recovery re-queues exactly the dead deliveries since T; dry-run only counts them."""
    now = hook.clock.now()
    recent = [await one_delivery(hook, f"R-{i}") for i in range(3)]
    old = await one_delivery(hook, "OLD")
    alive = await one_delivery(hook, "ALIVE")
    for delivery_id in recent:
        await fail(hook, delivery_id, dead=True, at=now - timedelta(hours=1))
    await fail(hook, old, dead=True, at=now - timedelta(days=3))
    await fail(hook, alive, dead=False, at=now - timedelta(hours=1))
    since = (now - timedelta(hours=2)).isoformat()
    path = "/admin/subscriptions/orders/recover"

    dry = await client.post(path, json={"since": since, "dry_run": True})
    assert dry.status_code == 200
    assert dry.json()["count"] == 3
    assert dry.json()["dry_run"] is True
    dead = (await client.get("/admin/deliveries", params={"status": "dead"})).json()["items"]
    assert len(dead) == 4, "a dry run changed something"

    done = await client.post(path, json={"since": since})
    assert done.status_code == 200
    assert done.json() == {
        "subscription": "orders",
        "since": done.json()["since"],
        "dry_run": False,
        "count": 3,
    }
    pending = (await client.get("/admin/deliveries", params={"status": "pending"})).json()["items"]
    assert sorted(d["id"] for d in pending) == sorted(recent)
    dead = (await client.get("/admin/deliveries", params={"status": "dead"})).json()["items"]
    assert [d["id"] for d in dead] == [old]
    again = await client.post(path, json={"since": since, "dry_run": True})
    assert again.json()["count"] == 0


async def test_bulk_recovery_accepts_an_age(hook: PayHook, client: httpx.AsyncClient) -> None:
    """``since`` may be an age such as "1h", as on the command line (issue 17, item 8)."""
    now = hook.clock.now()
    recent = await one_delivery(hook, "RECENT")
    old = await one_delivery(hook, "OLD")
    await fail(hook, recent, dead=True, at=now - timedelta(minutes=30))
    await fail(hook, old, dead=True, at=now - timedelta(hours=3))
    path = "/admin/subscriptions/orders/recover"

    dry = await client.post(path, json={"since": "1h", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["count"] == 1
    done = await client.post(path, json={"since": "1h"})
    assert done.status_code == 200, done.text
    assert done.json()["count"] == 1
    since = done.json()["since"]
    assert (now - timedelta(hours=1, minutes=1)).isoformat() < since.replace("Z", "+00:00")
    pending = (await client.get("/admin/deliveries", params={"status": "pending"})).json()
    assert [d["id"] for d in pending["items"]] == [recent]
    wide = await client.post(path, json={"since": "1d"})
    assert wide.json()["count"] == 1  # the old one; the recent one is pending now


async def test_listing_since_an_age(hook: PayHook, client: httpx.AsyncClient) -> None:
    """Listings read ``since``/``until`` with the same parser: ages work there too."""
    delivery_id = await one_delivery(hook, "1001")
    got = await client.get("/admin/deliveries", params={"since": "1h"})
    assert got.status_code == 200, got.text
    assert [d["id"] for d in got.json()["items"]] == [delivery_id]
    none = await client.get("/admin/deliveries", params={"until": "1h"})
    assert none.json()["items"] == []


RECOVER = "/admin/subscriptions/orders/recover"
SINCE = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/admin/subscriptions/nope/recover", {"since": SINCE}, 404, "subscription_not_found"),
        (RECOVER, {}, 422, "invalid_body"),
        (RECOVER, {"since": "last week"}, 400, "invalid_parameter"),
        (RECOVER, {"since": "1 h"}, 400, "invalid_parameter"),
        (RECOVER, {"since": "-1h"}, 400, "invalid_parameter"),
        (RECOVER, {"since": "2026-01-01T00:00:00"}, 400, "invalid_parameter"),
        (RECOVER, {"since": SINCE, "dry_run": "yes"}, 422, "invalid_body"),
        (RECOVER, {"since": SINCE, "x": 1}, 422, "invalid_body"),
    ],
    ids=[
        "unknown-subscription",
        "no-since",
        "since-not-a-time",
        "since-age-with-space",
        "since-negative-age",
        "since-naive",
        "dry-run-not-bool",
        "unknown-field",
    ],
)
async def test_bad_recovery_requests(
    client: httpx.AsyncClient, path: str, body: dict[str, object], status: int, code: str
) -> None:
    """Recovery requests are validated with stable codes."""
    response = await client.post(path, json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_not_json_and_too_large(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is invalid_json; one over 64 KiB is body_too_large."""
    path = "/admin/subscriptions/orders/recover"
    garbage = await client.post(
        path, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == "invalid_json"
    array = await client.post(path, json=[1, 2])
    assert array.status_code == 422
    huge = await client.post(path, content=b" " * (65 * 1024) + b"{}")
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "body_too_large"
