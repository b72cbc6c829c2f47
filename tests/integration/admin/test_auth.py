"""Admin API authentication: bearer token or 401, and no admin tree at all without a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from payhook._hook import PayHook
from tests.integration.admin._helpers import TOKEN, make_hook

pytestmark = pytest.mark.anyio


@pytest.fixture
async def anonymous(hook: PayHook) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``hook.app`` that sends no credentials by itself."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=hook.app), base_url="http://payhook.test"
    ) as c:
        yield c


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        (f"Basic {TOKEN}", 401),
        (TOKEN, 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("Bearer wrong-token-0123456789", 401),
        (f"Bearer {TOKEN}x", 401),
        (f"Bearer {TOKEN[:-1]}", 401),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
    ],
    ids=[
        "no-header",
        "basic-scheme",
        "no-scheme",
        "scheme-only",
        "empty-token",
        "wrong-token",
        "token-plus-one",
        "token-prefix",
        "right-token",
        "scheme-case-insensitive",
    ],
)
async def test_auth_table(
    anonymous: httpx.AsyncClient, authorization: str | None, status: int
) -> None:
    """Only the exact bearer token opens the admin API; everything else is a JSON 401."""
    headers = {"authorization": authorization} if authorization is not None else {}
    response = await anonymous.get("/admin/events", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json() == {
            "error": {
                "code": "unauthorized",
                "message": "Send the admin token as 'Authorization: Bearer <admin_token>'.",
            }
        }
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text
    else:
        assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/openapi.json"),
        ("GET", "/admin/subscriptions"),
        ("POST", "/admin/subscriptions"),
        ("DELETE", "/admin/subscriptions/orders"),
        ("GET", "/admin/no-such-endpoint"),
        ("GET", "/admin/"),
    ],
    ids=["openapi", "list-subscriptions", "create", "delete", "unknown-path", "root"],
)
async def test_every_admin_path_needs_the_token(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    """The whole /admin tree answers 401 without the token, even paths that do not exist."""
    response = await anonymous.request(method, path, headers={"authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_delete_without_token_changes_nothing(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """A refused request has no effect."""
    await client.post(
        "/admin/subscriptions", json={"name": "crm", "url": "https://crm.example/hook"}
    )
    refused = await anonymous.delete("/admin/subscriptions/crm")
    assert refused.status_code == 401
    assert (await client.get("/admin/subscriptions/crm")).status_code == 200


async def test_no_token_means_no_admin_tree(database_url: str) -> None:
    """Without admin_token every /admin path is 404 (with or without credentials)."""
    hook = make_hook(database_url, admin_token=None)
    await hook.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hook.app), base_url="http://payhook.test"
        ) as c:
            for path in ("/admin/events", "/admin/openapi.json", "/admin/subscriptions"):
                assert (await c.get(path)).status_code == 404
                bearer = {"authorization": f"Bearer {TOKEN}"}
                assert (await c.get(path, headers=bearer)).status_code == 404
            assert (await c.get("/healthz")).status_code == 200
    finally:
        await hook.stop()


async def test_health_and_metrics_need_no_token(anonymous: httpx.AsyncClient) -> None:
    """The probes and /metrics stay open while /admin is guarded."""
    assert (await anonymous.get("/healthz")).status_code == 200
    assert (await anonymous.get("/readyz")).status_code == 200
    assert (await anonymous.get("/metrics")).status_code == 200
