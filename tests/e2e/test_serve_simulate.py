"""End to end: the real `payhook serve` process, driven by `payhook simulate`, delivering to a
real subscriber that verifies signatures with the reference `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from payhook.storage._engine import create_engine
from payhook.storage._tables import deliveries, events
from tests._ports import free_port
from tests._server import ServerThread
from tests._subscriber import Subscriber

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def payhook(*args: str, config: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payhook", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, str]]:
    sub = Subscriber(secret=SECRET)
    with ServerThread(sub.app()) as server:
        yield sub, f"{server.url}/webhooks/payments"


@pytest.fixture
def config(tmp_path: Path, database_url: str, subscriber: tuple[Subscriber, str]) -> Path:
    """The sample config with this test's database and subscriber."""
    shutil.copytree(ROOT / "samples" / "keys", tmp_path / "keys")
    text = (ROOT / "samples" / "payhook.toml").read_text()
    text = re.sub(r"^database_url = .*$", f'database_url = "{database_url}"', text, flags=re.M)
    text = text.replace("http://127.0.0.1:9100/webhooks/payments", subscriber[1])
    text = text.replace('events = ["payment.order.paid", "payment.refund.*"]', 'events = ["*"]')
    path = tmp_path / "payhook.toml"
    path.write_text(text)
    return path


@pytest.fixture
def server(config: Path, tmp_path: Path) -> Iterator[str]:
    """`payhook serve` as a real process (its output in a file: a pipe nobody reads could
    fill up and block it); yields its base URL."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "payhook", "serve", "--config", str(config), "--port",
             str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"payhook serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def stored(database_url: str) -> tuple[list[dict[str, object]], int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            bodies = [json.loads(b) for b in (await conn.execute(select(events.c.body))).scalars()]
            count = len((await conn.execute(select(deliveries.c.id))).all())
        return bodies, count
    finally:
        await engine.dispose()


def wait_for(predicate: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("channel", "reply"),
    [("alipay", "HTTP 200\nsuccess"), ("wechat", "HTTP 204"), ("wechat-legacy", "HTTP 200\n<xml>")],
    ids=["alipay", "wechatpay-v3", "wechatpay-v2"],
)
def test_simulate_paid_end_to_end(
    server: str,
    config: Path,
    database_url: str,
    subscriber: tuple[Subscriber, str],
    channel: str,
    reply: str,
) -> None:
    """A simulated paid callback is acknowledged, stored once and delivered signed."""
    sub, _ = subscriber
    result = payhook(
        "simulate", channel, "--order", "1001", "--amount", "88.88",
        "--url", f"{server}/notify/{channel}", config=config,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(reply)
    again = payhook(
        "simulate", channel, "--order", "1001", "--amount", "88.88",
        "--url", f"{server}/notify/{channel}", config=config,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    bodies, delivery_count = asyncio.run(stored(database_url))
    assert len(bodies) == 1
    assert delivery_count == 1
    event = bodies[0]
    assert event["type"] == "payment.order.paid"
    data = event["data"]
    assert isinstance(data, dict)
    assert (data["order_id"], data["amount"], data["currency"]) == ("1001", 8888, "CNY")
    wait_for(lambda: len(sub.received) >= 1)
    got = sub.received[0]
    assert got.verified
    assert got.headers["webhook-id"] == event["id"]
    assert got.event == event
    # The one delivery row is recorded as sent: nothing is left that could be sent again.
    wait_for(lambda: metric(server, "payhook_deliveries_total", subscription="orders") == 1.0)
    assert metric(server, "payhook_deliveries_pending", subscription="orders") is None
    assert sub.event_ids() == [event["id"]]


def test_refund_end_to_end(server: str, config: Path, database_url: str) -> None:
    """An Alipay refund after the payment becomes a payment.refund.succeeded with its share."""
    for args in (("--event", "paid"), ("--event", "refund", "--refund-amount", "10.00")):
        result = payhook(
            "simulate", "alipay", "--order", "2002", "--amount", "88.88", *args,
            "--url", f"{server}/notify/alipay", config=config,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    bodies, _ = asyncio.run(stored(database_url))
    types = sorted(str(b["type"]) for b in bodies)
    assert types == ["payment.order.paid", "payment.refund.succeeded"]
    refund = next(b for b in bodies if b["type"] == "payment.refund.succeeded")
    data = refund["data"]
    assert isinstance(data, dict)
    assert (data["refund_amount"], data["refunded_total"]) == (1000, 1000)


def test_check_config_and_bad_config(config: Path, tmp_path: Path) -> None:
    """check-config prints a summary without secrets; a bad file exits 1 with one line."""
    ok = payhook("check-config", config=config)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    for secret in ("0123456789abcdef0123456789abcdef", SECRET, "192006250b4c09247ec02edce69f6a2d"):
        assert secret not in ok.stdout + ok.stderr
    config.write_text(config.read_text() + "\nbogus_key = 1\n")
    bad = payhook("check-config", config=config)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0
    assert "bogus_key: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "payhook", "simulate"], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2


def metric(url: str, name: str, **labels: str) -> float | None:
    """The value of one sample on /metrics, or None when absent."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_follow_callbacks_and_deliveries(
    server: str, config: Path, subscriber: tuple[Subscriber, str]
) -> None:
    """Callback, event and delivery metrics change as a callback is accepted and delivered."""
    sub, _ = subscriber
    assert metric(server, "payhook_callbacks_total", channel="alipay", outcome="accepted") is None
    result = payhook(
        "simulate", "alipay", "--order", "3003", "--amount", "1.00",
        "--url", f"{server}/notify/alipay", config=config,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(sub.received) >= 1)
    assert metric(server, "payhook_callbacks_total", channel="alipay", outcome="accepted") == 1.0
    assert metric(server, "payhook_events_total", type="payment.order.paid") == 1.0
    wait_for(lambda: metric(server, "payhook_deliveries_total", subscription="orders") == 1.0)
    assert metric(server, "payhook_deliveries_pending", subscription="orders") is None


@pytest.fixture
def receiver_only(config: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`payhook serve --no-dispatcher`; yields its base URL and its log file."""
    port = free_port()
    log = tmp_path / "receiver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "payhook", "serve", "--config", str(config), "--port",
             str(port), "--no-dispatcher"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), 90)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_worker_command_delivers(
    receiver_only: str, config: Path, subscriber: tuple[Subscriber, str]
) -> None:
    """With the receiver alone nothing is sent; `payhook worker` then delivers the backlog
    and stops cleanly on SIGTERM."""
    sub, _ = subscriber
    receiver, log = receiver_only
    result = payhook(
        "simulate", "alipay", "--order", "4004", "--amount", "2.00",
        "--url", f"{receiver}/notify/alipay", config=config,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert metric(receiver, "payhook_deliveries_pending", subscription="orders") == 1.0
    # The receiver has logged the callback: a dispatcher, had it one, started before that
    # (at start-up, before the first request) and would have logged so.
    wait_for(lambda: "action=callback_accepted" in log.read_text(errors="replace"))
    assert "dispatcher started" not in log.read_text(errors="replace")
    assert sub.received == []
    worker_log = log.with_name("worker.log")
    with worker_log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "payhook", "worker", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: len(sub.received) >= 1 or worker.poll() is not None, 90)
        assert sub.received, worker_log.read_text()
        assert sub.received[0].verified
        assert sub.received[0].event["data"]["order_id"] == "4004"
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0, worker_log.read_text()
    wait_for(lambda: metric(receiver, "payhook_deliveries_pending", subscription="orders") is None)
    assert len(sub.received) == 1
