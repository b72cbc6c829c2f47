"""Both samples end to end: the shop (payhook mounted at /payments, an in-process handler that
marks orders paid) and the subscriber (standardwebhooks verification, dedup by webhook-id),
as real processes, driven by provider-exact callbacks from payhook's simulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from payhook.config import load_settings
from payhook.providers import build_simulator
from tests._ports import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Process:
    """A sample running as its own process."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the sample exited:\n{self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}/nothing", timeout=1).status_code == 404
        except httpx.TransportError:
            return False


def start(script: Path, port: int, env: dict[str, str], log: Path) -> Process:
    """Start ``script --port PORT`` with ``env`` and wait until it answers."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    full_env.update(env)
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port)],
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=log.parent,
    )
    process = Process(proc=proc, url=f"http://127.0.0.1:{port}", log=log)
    wait_for(process.up, f"{script.name} to start", timeout_s=90)
    return process


def stop(process: Process) -> None:
    process.proc.terminate()
    try:
        process.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.proc.kill()


@pytest.fixture
def samples(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """The subscriber and the shop running, the shop's payhook on ``database_url``."""
    shutil.copytree(ROOT / "samples" / "keys", tmp_path / "keys")
    (tmp_path / "shop").mkdir()
    sub_port, shop_port = free_port(), free_port()
    text = (ROOT / "samples" / "shop" / "payhook.toml").read_text()
    text = text.replace("http://127.0.0.1:9100/", f"http://127.0.0.1:{sub_port}/")
    text = re.sub(r"^retry_schedule .*$", 'retry_schedule = ["0.2s", "0.5s"]', text, flags=re.M)
    config = tmp_path / "shop" / "payhook.toml"
    config.write_text(text)
    subscriber = start(
        ROOT / "samples" / "subscriber" / "app.py",
        sub_port,
        {"SUBSCRIBER_DB": str(tmp_path / "subscriber.db")},
        tmp_path / "subscriber.log",
    )
    try:
        shop = start(
            ROOT / "samples" / "shop" / "app.py",
            shop_port,
            {
                "SHOP_DB": str(tmp_path / "shop.db"),
                "PAYHOOK_CONFIG": str(config),
                "PAYHOOK_DATABASE_URL": database_url,
            },
            tmp_path / "shop" / "shop.log",
        )
        try:
            yield {"shop": shop, "subscriber": subscriber, "config": config}
        finally:
            stop(shop)
    finally:
        stop(subscriber)


def notify(
    shop: Process, config: Path, channel: str, order_id: str, amount_fen: int
) -> httpx.Response:
    """POST a paid callback for ``order_id`` exactly as the provider would."""
    simulator = build_simulator(load_settings(config).channel(channel))
    callback = simulator.build(
        order_id=order_id, amount=amount_fen, event="paid", refund_amount=None,
        now=datetime.now(UTC),
    )  # fmt: skip
    return httpx.post(
        f"{shop.url}/payments/notify/{channel}",
        content=callback.body,
        headers=dict(callback.headers),
        timeout=10,
    )


def test_shop_and_subscriber_end_to_end(samples: dict[str, Any]) -> None:
    """A paid order is marked paid once in the shop and reaches the subscriber once."""
    shop, subscriber, config = samples["shop"], samples["subscriber"], samples["config"]
    created = httpx.post(f"{shop.url}/orders", json={"id": "1001", "amount": "88.88"}, timeout=30)
    assert created.status_code == 201
    assert created.json()["status"] == "pending"

    for _ in range(3):  # Alipay re-sends; every copy gets "success"
        reply = notify(shop, config, "alipay", "1001", 8888)
        assert reply.status_code == 200
        assert reply.text == "success"

    def paid() -> bool:
        return bool(httpx.get(f"{shop.url}/orders/1001", timeout=30).json()["status"] == "paid")

    wait_for(paid, "the order to be marked paid")

    def delivered() -> bool:
        return len(httpx.get(f"{subscriber.url}/received", timeout=30).json()["processed"]) >= 1

    wait_for(delivered, "the subscriber to get the event")
    time.sleep(1.0)  # room for a duplicate to show up, if payhook sent one
    order = httpx.get(f"{shop.url}/orders/1001", timeout=30).json()
    assert order["status"] == "paid"
    assert order["handled_events"] == 1
    assert order["amount_fen"] == 8888
    got = httpx.get(f"{subscriber.url}/received", timeout=30).json()
    assert got["received"] == [{"webhook_id": order["paid_event_id"], "verified": True}]
    assert got["processed"] == [
        {
            "webhook_id": order["paid_event_id"],
            "type": "payment.order.paid",
            "order_id": "1001",
            "amount": 8888,
        }
    ]


def test_shop_checks_the_amount(samples: dict[str, Any]) -> None:
    """A payment of another amount is not marked paid: the order is flagged for review."""
    shop, config = samples["shop"], samples["config"]
    httpx.post(f"{shop.url}/orders", json={"id": "2002", "amount": "10.00"}, timeout=30)
    reply = notify(shop, config, "wechat", "2002", 1)
    assert reply.status_code == 204

    def handled() -> bool:
        return bool(httpx.get(f"{shop.url}/orders/2002", timeout=30).json()["handled_events"] == 1)

    wait_for(handled, "the handler to see the payment")
    order = httpx.get(f"{shop.url}/orders/2002", timeout=30).json()
    assert order["status"] == "needs_review"
    assert order["paid_event_id"] is None
    assert "paid 1 fen, expected 1000" in order["note"]
