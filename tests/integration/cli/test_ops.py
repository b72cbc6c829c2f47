"""The operator commands through a real subprocess (`python -m payhook …`) against a real
database (SQLite file and PostgreSQL): tables, --json, exit codes, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from payhook.events import EventType
from tests.integration.admin._helpers import (
    ORDERS_SECRET,
    delivery_ids,
    draft,
    fail,
    make_hook,
    paid,
    record,
    succeed,
)

SUBSCRIBER = "http://127.0.0.1:9/webhooks/payments"


def payhook(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m payhook ARGS --config CONFIG``."""
    return subprocess.run(
        [sys.executable, "-m", "payhook", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """Assert a user error: exit code, one line on stderr, no traceback; returns the line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if code == 1:
        assert len(lines) == 1, result.stderr
    return lines[-1]


def write_config(folder: Path, database_url: str) -> Path:
    """A config naming the database and the ``orders`` subscription."""
    path = folder / "payhook.toml"
    path.write_text(
        f'database_url = "{database_url}"\n\n[[subscriptions]]\nname = "orders"\n'
        f'url = "{SUBSCRIBER}"\nevents = ["*"]\nsecret = "{ORDERS_SECRET}"\n'
    )
    return path


async def seed(database_url: str) -> dict[str, Any]:
    """Through the real intake path: order 1001 paid (delivered), 1002 paid (dead), a refund of
    1001 (pending), and order 1003 paid (dead long ago)."""
    hook = make_hook(database_url)
    await hook.start()
    try:
        now = hook.clock.now()
        e1 = await paid(hook, "1001", amount=8888)
        await asyncio.sleep(0.002)
        e2 = await paid(hook, "1002", amount=100)
        await asyncio.sleep(0.002)
        e3 = (
            await record(hook, draft("1001", event_type=EventType.REFUND_SUCCEEDED, amount=500))
        ).event_ids[0]
        e4 = await paid(hook, "1003", amount=1)
        [d1] = await delivery_ids(hook, e1)
        [d2] = await delivery_ids(hook, e2)
        [d3] = await delivery_ids(hook, e3)
        [d4] = await delivery_ids(hook, e4)
        await succeed(hook, d1)
        await fail(hook, d2, dead=True, at=now - timedelta(minutes=30))
        await fail(hook, d4, dead=True, at=now - timedelta(days=5))
        return {"events": [e1, e2, e3, e4], "deliveries": [d1, d2, d3, d4]}
    finally:
        await hook.stop()


async def statuses(database_url: str) -> dict[str, str]:
    """Delivery id -> status."""
    hook = make_hook(database_url)
    try:
        async with hook.store.engine.connect() as conn:
            from sqlalchemy import select

            from payhook.storage._tables import deliveries

            rows = await conn.execute(select(deliveries.c.id, deliveries.c.status))
            return {str(r.id): str(r.status) for r in rows}
    finally:
        await hook.store.close()


@pytest.fixture
def seeded(tmp_path: Path, database_url: str) -> tuple[Path, str, dict[str, Any]]:
    """A config file and a seeded database."""
    return write_config(tmp_path, database_url), database_url, asyncio.run(seed(database_url))


def test_events_list_answers_did_orders_get_it(seeded: tuple[Path, str, dict[str, Any]]) -> None:
    """`events list --order` shows the order's events and where each was delivered."""
    config, _url, ids = seeded
    e1, _e2, e3, _e4 = ids["events"]
    result = payhook(config, "events", "list", "--order", "1001")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED", "TYPE", "CHANNEL", "ORDER", "AMOUNT", "DELIVERIES"]
    assert len(lines) == 3
    assert lines[1].startswith(e3)
    assert "payment.refund.succeeded" in lines[1]
    assert "orders:pending" in lines[1]
    assert "5.00" in lines[1]
    assert lines[2].startswith(e1)
    assert "orders:succeeded" in lines[2]
    assert "88.88" in lines[2]

    as_json = payhook(config, "events", "list", "--type", "payment.order.*", "--json")
    assert as_json.returncode == 0, as_json.stderr
    page = json.loads(as_json.stdout)
    assert page["next_cursor"] is None
    assert sorted(e["data"]["order_id"] for e in page["items"]) == ["1001", "1002", "1003"]
    assert all(e["type"] == "payment.order.paid" for e in page["items"])
    assert {d["status"] for e in page["items"] for d in e["deliveries"]} == {"succeeded", "dead"}


def test_events_pagination_and_show(seeded: tuple[Path, str, dict[str, Any]]) -> None:
    """--limit/--cursor page through events; `events show` prints one with its deliveries."""
    config, _url, ids = seeded
    first = json.loads(payhook(config, "events", "list", "--limit", "3", "--json").stdout)
    assert len(first["items"]) == 3
    rest = payhook(config, "events", "list", "--limit", "3", "--cursor", first["next_cursor"])
    assert rest.returncode == 0
    assert len(rest.stdout.splitlines()) == 2
    table = payhook(config, "events", "list", "--limit", "3")
    assert "--cursor" in table.stderr
    shown = json.loads(payhook(config, "events", "show", ids["events"][1], "--json").stdout)
    assert shown["id"] == ids["events"][1]
    assert shown["deliveries"][0]["status"] == "dead"
    assert shown["deliveries"][0]["attempts"][0]["status_code"] == 500


def test_replay_and_retry(seeded: tuple[Path, str, dict[str, Any]]) -> None:
    """`events replay` adds a delivery of the same event; `deliveries retry` re-queues one."""
    config, url, ids = seeded
    e1 = ids["events"][0]
    replay = payhook(config, "events", "replay", e1, "--json")
    assert replay.returncode == 0, replay.stderr
    body = json.loads(replay.stdout)
    assert body["event_id"] == e1
    [new] = body["deliveries"]
    assert new["event_id"] == e1
    assert new["status"] == "pending"
    targeted = payhook(config, "events", "replay", e1, "--subscription", "orders")
    assert targeted.returncode == 0
    assert targeted.stdout.startswith(f"{e1} queued for orders as dlv_")

    dead = ids["deliveries"][1]
    retry = payhook(config, "deliveries", "retry", dead)
    assert retry.returncode == 0, retry.stderr
    assert retry.stdout.startswith(f"{dead} re-queued")
    assert asyncio.run(statuses(url))[dead] == "pending"


def test_deliveries_list_filters(seeded: tuple[Path, str, dict[str, Any]]) -> None:
    """`deliveries list` filters by status, subscription and order; --json has attempts."""
    config, _url, ids = seeded
    result = payhook(config, "deliveries", "list", "--status", "dead", "--json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    assert sorted(d["id"] for d in items) == sorted([ids["deliveries"][1], ids["deliveries"][3]])
    assert all(d["attempts"] for d in items)
    table = payhook(config, "deliveries", "list", "--order", "1001", "--subscription", "orders")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["ID", "EVENT", "ORDER", "SUBSCRIPTION", "STATUS"]
    assert sorted(line.split()[4] for line in lines[1:]) == ["pending", "succeeded"]
    none = payhook(config, "deliveries", "list", "--subscription", "nobody")
    assert none.returncode == 0
    assert "no deliveries match" in none.stderr


def test_recover_with_dry_run_and_progress(seeded: tuple[Path, str, dict[str, Any]]) -> None:
    """`deliveries recover` counts in a dry run, then re-queues with progress shown."""
    config, url, ids = seeded
    args = ("deliveries", "recover", "--subscription", "orders", "--since", "2h")
    dry = payhook(config, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("1 dead deliveries of orders since ")
    assert asyncio.run(statuses(url))[ids["deliveries"][1]] == "dead"
    wide = json.loads(payhook(config, *args[:-1], "7d", "--dry-run", "--json").stdout)
    assert wide["count"] == 2
    done = payhook(config, *args)
    assert done.returncode == 0, done.stderr
    assert "re-queueing for orders" in done.stderr
    assert done.stdout.strip() == "re-queued 1 dead deliveries of orders"
    after = asyncio.run(statuses(url))
    assert after[ids["deliveries"][1]] == "pending"
    assert after[ids["deliveries"][3]] == "dead"


def test_subscription_commands(tmp_path: Path, seeded: tuple[Path, str, dict[str, Any]]) -> None:
    """add prints the secret once; list masks it; enable/disable/rotate-secret work."""
    config, _url, _ids = seeded
    added = payhook(
        config, "subscriptions", "add", "crm", "--url", "https://crm.example/hook",
        "--event", "payment.refund.*", "--event", "payment.order.paid",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    secret = added.stdout.split("secret: ")[1].strip()
    assert secret.startswith("whsec_")
    listed = payhook(config, "subscriptions", "list")
    assert listed.returncode == 0
    assert secret not in listed.stdout + listed.stderr
    crm = next(line for line in listed.stdout.splitlines() if line.startswith("crm"))
    assert "payment.refund.*,payment.order.paid" in crm
    assert "enabled" in crm
    assert payhook(config, "subscriptions", "disable", "crm").stdout.strip() == (
        "subscription crm disabled"
    )
    as_json = json.loads(payhook(config, "subscriptions", "list", "--json").stdout)
    by_name = {s["name"]: s for s in as_json["items"]}
    assert by_name["crm"]["enabled"] is False
    assert by_name["crm"]["secret"] == "whsec_********"
    assert ORDERS_SECRET not in json.dumps(as_json)
    assert payhook(config, "subscriptions", "enable", "crm").returncode == 0
    rotated = payhook(config, "subscriptions", "rotate-secret", "crm", "--grace", "0")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.split("new secret ")[1].strip()
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    listed = payhook(config, "subscriptions", "list")
    assert new_secret not in listed.stdout
    assert secret not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("events", "replay", "evt_00000000000000000000000000"), "no event"),
        (("events", "show", "nope"), "no event"),
        (("events", "replay", "{event}", "--subscription", "nope"), "no subscription named 'nope'"),
        (("deliveries", "retry", "dlv_00000000000000000000000000"), "no delivery"),
        (("deliveries", "recover", "--subscription", "nope", "--since", "1d"), "no subscription"),
        (("subscriptions", "enable", "nope"), "no subscription"),
        (("subscriptions", "add", "orders", "--url", "https://x.example/"), "already exists"),
        (("subscriptions", "add", "x", "--url", "ftp://x.example/"), "http:// or https://"),
        (("subscriptions", "add", "x", "--url", "https://x/", "--event", "NOPE"), "event filter"),
        (("subscriptions", "add", "x", "--url", "https://x/", "--secret", "whsec_c2hvcnQ="), "24"),
        (("subscriptions", "rotate-secret", "orders"), "config file"),
    ],
    ids=[
        "replay-unknown-event",
        "show-unknown-event",
        "replay-unknown-subscription",
        "retry-unknown-delivery",
        "recover-unknown-subscription",
        "enable-unknown",
        "add-taken-name",
        "add-bad-url",
        "add-bad-filter",
        "add-weak-secret",
        "rotate-config-subscription",
    ],
)
def test_user_errors_are_one_line(
    seeded: tuple[Path, str, dict[str, Any]], args: tuple[str, ...], message: str
) -> None:
    """Unknown ids and invalid values exit 1 with one line on stderr and no traceback."""
    config, _url, ids = seeded
    args = tuple(a.replace("{event}", ids["events"][0]) for a in args)
    line = one_line_error(payhook(config, *args))
    assert line.startswith("error: ")
    assert message in line
    assert "whsec_c2hvcnQ=" not in line


@pytest.mark.parametrize(
    "args",
    [
        ("events", "list", "--limit", "0"),
        ("events", "list", "--since", "yesterday"),
        ("events", "list", "--type", "Payment"),
        ("events", "list", "--cursor", "bogus!"),
        ("events", "replay"),
        ("deliveries", "list", "--status", "lost"),
        ("deliveries", "recover", "--subscription", "orders"),
        ("subscriptions", "add", "x"),
        ("subscriptions", "rotate-secret", "x", "--grace", "forever"),
    ],
    ids=[
        "limit-zero",
        "bad-since",
        "bad-type",
        "bad-cursor",
        "replay-without-id",
        "unknown-status",
        "recover-without-since",
        "add-without-url",
        "bad-grace",
    ],
)
def test_usage_errors_exit_2(
    seeded: tuple[Path, str, dict[str, Any]], args: tuple[str, ...]
) -> None:
    """Bad flags and arguments are usage errors (exit 2)."""
    config, _url, _ids = seeded
    one_line_error(payhook(config, *args), code=2)


def test_database_problems_are_one_line(tmp_path: Path) -> None:
    """A missing SQLite file, one without tables and an unreachable server exit 1 cleanly."""
    missing = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}")
    line = one_line_error(payhook(missing, "events", "list"))
    assert "does not exist" in line
    assert not (tmp_path / "absent.db").exists(), "the command created the database file"
    empty_db = tmp_path / "empty.db"
    sqlite3.connect(empty_db).close()
    empty = write_config(tmp_path, f"sqlite+aiosqlite:///{empty_db}")
    assert "payhook db upgrade" in one_line_error(payhook(empty, "deliveries", "list"))
    down = write_config(tmp_path, "postgresql+asyncpg://payhook:pw-778899@127.0.0.1:1/payhook")
    line = one_line_error(payhook(down, "subscriptions", "list"))
    assert "cannot connect to the database" in line
    assert "127.0.0.1:1" in line
    assert "pw-778899" not in line
