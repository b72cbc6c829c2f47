"""Admin API events: listing newest first, filters, keyset pagination, inspection, replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from payhook._hook import PayHook
from payhook.events import EventType
from tests.integration.admin._helpers import delivery_ids, draft, paid, record

pytestmark = pytest.mark.anyio


async def all_pages(client: httpx.AsyncClient, path: str, limit: int) -> list[str]:
    """Every id of a listing, following next_cursor."""
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": limit}
    while True:
        page = (await client.get(path, params=params)).json()
        ids.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            return ids
        params["cursor"] = page["next_cursor"]


async def test_newest_first_with_filters(hook: PayHook, client: httpx.AsyncClient) -> None:
    """Events come newest first and filter by order id, type (exact or prefix) and channel."""
    first = await paid(hook, "1001")
    await asyncio.sleep(0.002)  # ids sort by millisecond
    second = await paid(hook, "1002")
    await asyncio.sleep(0.002)
    refund = (
        await record(hook, draft("1001", event_type=EventType.REFUND_SUCCEEDED, amount=100))
    ).event_ids[0]
    listed = (await client.get("/admin/events")).json()
    assert [e["id"] for e in listed["items"]] == [refund, second, first]
    assert listed["next_cursor"] is None
    assert listed["items"][1]["data"]["order_id"] == "1002"
    assert listed["items"][1]["data"]["amount"] == 8888

    async def ids(**params: str) -> list[str]:
        response = await client.get("/admin/events", params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["items"]]

    assert await ids(order_id="1001") == [refund, first]
    assert await ids(type="payment.order.paid") == [second, first]
    assert await ids(type="payment.refund.*") == [refund]
    assert await ids(type="payment.*", order_id="1002") == [second]
    assert await ids(type="*") == [refund, second, first]
    assert await ids(channel="alipay") == [refund, second, first]
    assert await ids(channel="wechat") == []
    assert await ids(order_id="no-such-order") == []


async def test_time_range(hook: PayHook, client: httpx.AsyncClient) -> None:
    """since is inclusive, until exclusive, both RFC 3339 with an offset."""
    event_id = await paid(hook, "1001")
    created = (await client.get(f"/admin/events/{event_id}")).json()["created_at"]
    at = created.replace("Z", "+00:00")

    async def count(**params: str) -> int:
        response = await client.get("/admin/events", params=params)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    assert await count(since=at) == 1
    assert await count(until=at) == 0
    later = hook.clock.now() + timedelta(hours=1)
    assert await count(since=later.isoformat()) == 0
    assert await count(until=later.isoformat()) == 1
    beijing = (hook.clock.now() + timedelta(hours=1)).astimezone().isoformat()
    assert await count(until=beijing) == 1
    assert await count(since=later.isoformat(), until=at) == 0, "an empty range matches nothing"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_parameter"),
        ({"limit": "501"}, "invalid_parameter"),
        ({"limit": "ten"}, "invalid_parameter"),
        ({"type": "Payment.Order.Paid"}, "invalid_parameter"),
        ({"since": "yesterday"}, "invalid_parameter"),
        ({"since": "2026-11-28T09:00:00"}, "invalid_parameter"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "ZGx2XzAxbThmejFheHo4d2Zha2ZnZWY2dDBwa3Qw"}, "invalid_cursor"),
        ({"order": "1001"}, "invalid_parameter"),
        ({"order_id": ""}, "invalid_parameter"),
    ],
    ids=[
        "limit-zero",
        "limit-too-big",
        "limit-not-int",
        "bad-type-filter",
        "since-not-a-time",
        "since-without-offset",
        "garbage-cursor",
        "delivery-cursor-on-events",
        "unknown-parameter",
        "empty-order-id",
    ],
)
async def test_bad_query_parameters(
    client: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    """Bad query parameters are a 400 with a stable code naming the parameter."""
    response = await client.get("/admin/events", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_pagination_walks_everything_once(hook: PayHook, client: httpx.AsyncClient) -> None:
    """Following next_cursor visits every event exactly once, newest first."""
    stored = [await paid(hook, f"O-{i}") for i in range(7)]
    # Ids sort by creation time (to the millisecond), so id order is "newest first".
    newest_first = sorted(stored, reverse=True)
    assert await all_pages(client, "/admin/events", limit=3) == newest_first
    assert await all_pages(client, "/admin/events", limit=7) == newest_first
    assert await all_pages(client, "/admin/events", limit=500) == newest_first


async def test_pagination_stable_under_concurrent_inserts(
    hook: PayHook, client: httpx.AsyncClient
) -> None:
    """New events arriving while a client pages never repeat, shift or hide older ones."""
    before = [await paid(hook, f"OLD-{i}") for i in range(9)]
    seen: list[str] = []
    inserted: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page_task = asyncio.create_task(client.get("/admin/events", params=params))
        # Writes race the read, and more land between every two pages.
        inserted.extend(
            await asyncio.gather(*(paid(hook, f"NEW-{len(inserted) + i}") for i in range(2)))
        )
        page = (await page_task).json()
        seen.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(inserted) >= 10
    assert len(seen) == len(set(seen)), "an event was listed twice"
    old_seen = [event_id for event_id in seen if event_id in before]
    assert old_seen == sorted(before, reverse=True), "an older event was skipped or reordered"
    assert seen == sorted(seen, reverse=True)
    # A fresh walk shows everything.
    assert await all_pages(client, "/admin/events", limit=4) == sorted(
        before + inserted, reverse=True
    )


async def test_event_with_its_deliveries(hook: PayHook, client: httpx.AsyncClient) -> None:
    """GET /admin/events/{id} is the wire body plus its deliveries and their attempts."""
    event_id = await paid(hook, "1001")
    response = await client.get(f"/admin/events/{event_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == event_id
    assert body["type"] == "payment.order.paid"
    assert body["data"]["order_id"] == "1001"
    [delivery] = body["deliveries"]
    assert delivery["event_id"] == event_id
    assert delivery["subscription"] == "orders"
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == []


@pytest.mark.parametrize(
    "event_id",
    ["evt_00000000000000000000000000", "evt_x", "dlv_00000000000000000000000000", "../etc"],
    ids=["well-formed-unknown", "malformed", "delivery-id", "path-ish"],
)
async def test_unknown_event(client: httpx.AsyncClient, event_id: str) -> None:
    """An unknown event id is a 404 event_not_found, for reads and replays alike."""
    for response in (
        await client.get(f"/admin/events/{event_id}"),
        await client.post(f"/admin/events/{event_id}/replay"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] in ("event_not_found", "not_found")


async def test_replay_keeps_the_event_id(hook: PayHook, client: httpx.AsyncClient) -> None:
    """A replay adds new deliveries of the same event (same id, same body), no new event."""
    event_id = await paid(hook, "1001")
    [original] = await delivery_ids(hook, event_id)
    before = (await client.get(f"/admin/events/{event_id}")).json()
    response = await client.post(f"/admin/events/{event_id}/replay")
    assert response.status_code == 202
    result = response.json()
    assert result["event_id"] == event_id
    [replayed] = result["deliveries"]
    assert replayed["id"] != original
    assert replayed["event_id"] == event_id
    assert replayed["status"] == "pending"
    assert replayed["subscription"] == "orders"
    events = (await client.get("/admin/events")).json()["items"]
    assert [e["id"] for e in events] == [event_id]
    after = (await client.get(f"/admin/events/{event_id}")).json()
    assert {k: v for k, v in after.items() if k != "deliveries"} == {
        k: v for k, v in before.items() if k != "deliveries"
    }
    assert [d["id"] for d in after["deliveries"]] == [original, replayed["id"]]


async def test_replay_to_one_subscription(hook: PayHook, client: httpx.AsyncClient) -> None:
    """A replay naming a subscription sends only there; an unknown name is a 404."""
    created = await client.post(
        "/admin/subscriptions",
        json={"name": "crm", "url": "https://crm.example/hook", "events": ["payment.*"]},
    )
    assert created.status_code == 201
    event_id = await paid(hook, "1001")
    assert len(await delivery_ids(hook, event_id)) == 2
    response = await client.post(f"/admin/events/{event_id}/replay", json={"subscription": "crm"})
    assert response.status_code == 202
    assert [d["subscription"] for d in response.json()["deliveries"]] == ["crm"]
    assert len(await delivery_ids(hook, event_id)) == 3
    missing = await client.post(f"/admin/events/{event_id}/replay", json={"subscription": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "subscription_not_found"
    bad = await client.post(f"/admin/events/{event_id}/replay", json={"subscription": 1})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_body"
    assert len(await delivery_ids(hook, event_id)) == 3
