"""Admin API and subscription targets: URLs are shown with their credentials masked in every
answer (the stored URL is kept whole), and refused targets answer 422 refused_target."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from payhook._hook import PayHook
from payhook.config import DispatcherSettings
from payhook.storage._subscriptions import get_subscription
from tests.integration.admin._helpers import TOKEN, make_hook

pytestmark = pytest.mark.anyio

PASSWORD = "pw-Zx81-not-for-eyes"
TOKEN_VALUE = "tok-5521-not-for-eyes"
URL = f"https://crm:{PASSWORD}@crm.example/hooks?access_token={TOKEN_VALUE}&v=2"
SHOWN = "https://crm:***@crm.example/hooks?access_token=***&v=2"


async def test_credentials_are_masked_in_every_answer(
    hook: PayHook, client: httpx.AsyncClient
) -> None:
    """Create, list, get and patch answers show the masked URL; deliveries keep the whole one."""
    created = await client.post("/admin/subscriptions", json={"name": "crm", "url": URL})
    assert created.status_code == 201
    assert created.json()["url"] == SHOWN
    answers = [
        created,
        await client.get("/admin/subscriptions"),
        await client.get("/admin/subscriptions/crm"),
        await client.patch("/admin/subscriptions/crm", json={"events": ["payment.*"]}),
    ]
    assert [s["url"] for s in answers[1].json()["items"] if s["name"] == "crm"] == [SHOWN]
    assert answers[2].json()["url"] == SHOWN
    assert answers[3].json()["url"] == SHOWN
    stored = await get_subscription(hook.store.engine, "crm")
    assert stored.url == URL

    moved = URL.replace("crm.example", "crm2.example").replace(PASSWORD, PASSWORD + "2")
    answers.append(await client.patch("/admin/subscriptions/crm", json={"url": moved}))
    assert answers[-1].status_code == 200
    assert answers[-1].json()["url"] == SHOWN.replace("crm.example", "crm2.example")
    assert (await get_subscription(hook.store.engine, "crm")).url == moved
    for answer in answers:
        assert PASSWORD not in answer.text
        assert TOKEN_VALUE not in answer.text


async def test_a_masked_url_is_not_taken_back(hook: PayHook, client: httpx.AsyncClient) -> None:
    """PATCHing the URL as shown would store *** as the password: refused, nothing changes."""
    await client.post("/admin/subscriptions", json={"name": "crm", "url": URL})
    answer = await client.patch("/admin/subscriptions/crm", json={"url": SHOWN})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_url"
    assert (await get_subscription(hook.store.engine, "crm")).url == URL


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
async def test_metadata_targets_are_refused(
    hook: PayHook, client: httpx.AsyncClient, url: str
) -> None:
    """Create and patch both answer 422 refused_target in the API's error format."""
    answer = await client.post("/admin/subscriptions", json={"name": "imds", "url": url})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "refused_target"
    assert error["message"].startswith("url: refused target: ")
    assert (await client.get("/admin/subscriptions/imds")).status_code == 404

    ok = await client.post(
        "/admin/subscriptions", json={"name": "crm", "url": "https://crm.example/h"}
    )
    assert ok.status_code == 201
    answer = await client.patch("/admin/subscriptions/crm", json={"url": url})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "refused_target"
    assert (await get_subscription(hook.store.engine, "crm")).url == "https://crm.example/h"


@pytest.fixture
async def strict_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API of a payhook with ``[dispatcher] refuse_private_targets = true``."""
    h = make_hook(
        database_url,
        subscriptions=(),
        dispatcher=DispatcherSettings(refuse_private_targets=True),
    )
    await h.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=h.app),
            base_url="http://payhook.test",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as c:
            yield c
    finally:
        await h.stop()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hook", "http://localhost:9000/hook", "http://10.1.2.3/h"],
)
async def test_private_targets_are_refused_with_the_switch(
    client: httpx.AsyncClient, strict_client: httpx.AsyncClient, url: str
) -> None:
    """Allowed by default (internal subscribers); refused on create and patch when asked."""
    assert (
        await client.post("/admin/subscriptions", json={"name": "inside", "url": url})
    ).status_code == 201
    answer = await strict_client.post("/admin/subscriptions", json={"name": "inside", "url": url})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "refused_target"
    assert "refuse_private_targets" in answer.json()["error"]["message"]
    public = {"name": "crm", "url": "https://crm.example/h"}
    assert (await strict_client.post("/admin/subscriptions", json=public)).status_code == 201
    answer = await strict_client.patch("/admin/subscriptions/crm", json={"url": url})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "refused_target"
