"""A whole flow with every secret configured: none of them shows in the logs (at DEBUG) or in any
admin API answer. A secret created over the API appears once, in the answer that created it."""

from __future__ import annotations

import base64
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from payhook._hook import PayHook
from payhook.config import load_settings
from payhook.dispatch import Dispatcher, RetryPolicy
from payhook.providers import build_simulator
from tests._server import ServerThread
from tests._subscriber import Subscriber
from tests.integration.admin._helpers import ORDERS_SECRET

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "admin-Q3v9-secret-token-7781"
API_V3_KEY = "k3Y7w9Z2m4N6p8R0t1V3x5B7d9F1h3J5"
API_V2_KEY = "4d2c8a6f0e1b3d5c7a9e2f4b6d8c0a1e"
ROTATED = "whsec_" + base64.b64encode(b"rotated-secret-32-bytes-long!!!!").decode()


def pem_body(path: Path) -> list[str]:
    """The base64 lines of a PEM file (what a leak of the key would show)."""
    return [line for line in path.read_text().splitlines() if line and "-----" not in line]


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, str]]:
    """A subscriber that fails its first delivery (so attempts record a failure)."""
    sub = Subscriber(secret=ORDERS_SECRET, fail_next=1)
    with ServerThread(sub.app()) as server:
        yield sub, f"{server.url}/webhooks/payments"


@pytest.fixture
def config(tmp_path: Path, database_url: str, subscriber: tuple[Subscriber, str]) -> Path:
    """The sample configuration with its sandbox keys and test secrets everywhere."""
    shutil.copytree(ROOT / "samples" / "keys", tmp_path / "keys")
    path = tmp_path / "payhook.toml"
    path.write_text(
        f"""
database_url = "{database_url}"
admin_token = "{ADMIN_TOKEN}"
log_level = "DEBUG"

[dispatcher]
retry_schedule = ["0s", "0s"]

[[channels]]
name = "alipay"
provider = "alipay"
app_id = "2021000000000001"
alipay_public_key_file = "keys/alipay_public.pem"
simulator_private_key_file = "keys/sandbox/alipay_private.pem"

[[channels]]
name = "wechat"
provider = "wechatpay_v3"
mch_id = "1900000001"
api_v3_key = "{API_V3_KEY}"
wechatpay_public_key_id = "PUB_KEY_ID_0119000000012026112800000000000000"
wechatpay_public_key_file = "keys/wechatpay_public.pem"
simulator_private_key_file = "keys/sandbox/wechatpay_private.pem"

[[channels]]
name = "wechat-legacy"
provider = "wechatpay_v2"
mch_id = "1900000002"
api_key = "{API_V2_KEY}"

[[subscriptions]]
name = "orders"
url = "{subscriber[1]}"
events = ["*"]
secret = "{ORDERS_SECRET}"
"""
    )
    return path


def dispatcher(hook: PayHook) -> Dispatcher:
    """A burst-mode dispatcher for ``hook``'s database with instant retries."""
    return Dispatcher(
        engine=hook.store.engine,
        policy=RetryPolicy(schedule_s=(0.0, 0.0), jitter=0.0),
        clock=hook.clock,
        request_timeout_s=5.0,
        signal=hook.store.signal,
    )


def secrets_of(config: Path) -> list[str]:
    """Every secret in the configuration, in the forms a leak could take."""
    keys = config.parent / "keys" / "sandbox"
    return [
        ADMIN_TOKEN,
        API_V3_KEY,
        API_V2_KEY,
        ORDERS_SECRET,
        ORDERS_SECRET.removeprefix("whsec_"),
        ROTATED,
        ROTATED.removeprefix("whsec_"),
        *pem_body(keys / "alipay_private.pem"),
        *pem_body(keys / "wechatpay_private.pem"),
    ]


async def test_no_secret_in_logs_or_admin_answers(
    config: Path, subscriber: tuple[Subscriber, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Callbacks, deliveries, retries, replays and every admin endpoint leak no secret."""
    # payhook's own loggers at DEBUG; dependencies at INFO, the level the issue sets the bar at
    # (aiosqlite logs SQL parameters at DEBUG).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="payhook")
    settings = load_settings(config)
    hook = PayHook(settings, run_dispatcher=False)
    answers: list[str] = []
    await hook.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hook.app),
            base_url="http://payhook.test",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as client:
            # Callbacks on every channel, accepted, duplicated and refused.
            for channel in settings.channels:
                simulator = build_simulator(channel)
                first = None
                for event, order in (("paid", "1001"), ("paid", "1001"), ("refund", "1001")):
                    callback = simulator.build(
                        order_id=f"{channel.name}-{order}", amount=8888, event=event,
                        refund_amount=100 if event == "refund" else None, now=hook.clock.now(),
                    )  # fmt: skip
                    reply = await client.post(
                        f"/notify/{channel.name}",
                        content=callback.body,
                        headers=dict(callback.headers),
                    )
                    assert reply.status_code in (200, 204), reply.text
                    first = first or callback
                assert first is not None
                bad = first.body.replace(b"88.88", b"99.99").replace(b"8888", b"9999")
                tampered = await client.post(
                    f"/notify/{channel.name}",
                    content=bad if bad != first.body else first.body + b" ",
                    headers=dict(first.headers),
                )
                assert tampered.status_code in (400, 401)
            # Deliveries: the first fails, then the retry succeeds.
            assert await dispatcher(hook).run_until_idle() >= 2
            assert subscriber[0].received

            # Every admin endpoint, successes and errors.
            events = (await client.get("/admin/events", params={"limit": 500})).json()["items"]
            assert len(events) == 6
            deliveries = (await client.get("/admin/deliveries")).json()["items"]
            assert any(d["attempts"] and d["attempts"][0]["status_code"] == 500 for d in deliveries)
            responses = [
                await client.get("/admin/events"),
                await client.get("/admin/deliveries", params={"status": "succeeded"}),
                await client.get("/admin/subscriptions"),
                await client.get("/admin/subscriptions/orders"),
                await client.get("/admin/openapi.json"),
                await client.post(f"/admin/events/{events[0]['id']}/replay"),
                await client.post(f"/admin/deliveries/{deliveries[0]['id']}/retry"),
                await client.post(
                    "/admin/subscriptions/orders/recover",
                    json={"since": "2020-01-01T00:00:00Z", "dry_run": True},
                ),
                await client.patch("/admin/subscriptions/orders", json={"secret": ROTATED}),
                await client.post(
                    "/admin/subscriptions",
                    json={"name": "weak", "url": "https://x.example/", "secret": "whsec_c2hvcnQ="},
                ),
                await client.get("/admin/events", headers={"authorization": "Bearer wrong"}),
                await client.get("/metrics"),
            ]
            responses += [await client.get(f"/admin/events/{e['id']}") for e in events]
            responses += [await client.get(f"/admin/deliveries/{d['id']}") for d in deliveries]
            created = await client.post(
                "/admin/subscriptions", json={"name": "crm", "url": "https://crm.example/hook"}
            )
            assert created.status_code == 201
            fresh = created.json()["secret"]
            rotated = await client.patch(
                "/admin/subscriptions/crm", json={"secret": ROTATED, "grace_period_s": 60}
            )
            assert rotated.status_code == 200
            responses += [rotated, await client.get("/admin/subscriptions/crm")]
            responses += [await client.get("/admin/subscriptions")]
            answers = [r.text for r in responses]
            assert all(r.status_code < 500 for r in responses)
            assert await dispatcher(hook).run_until_idle() >= 1
    finally:
        await hook.stop()

    secrets = [*secrets_of(config), fresh, fresh.removeprefix("whsec_")]
    for text in answers:
        assert [s[:8] for s in secrets if s in text] == []
    assert fresh in created.text, "the creation answer shows the secret once"
    logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert "payhook" in logs
    assert [s[:8] for s in secrets if s in logs] == []
