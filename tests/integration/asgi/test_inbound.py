"""The notify endpoint over real TCP: replies, limits, refusals and database outages."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from payhook._hook import PayHook
from payhook.config import PayhookSettings
from payhook.errors import DecryptionError, NotificationError, SignatureError, SignatureProbeError
from payhook.events import EventDraft, EventType
from payhook.providers import Outcome, ParsedNotification, RawNotification, Reply
from payhook.storage import Store
from payhook.storage._engine import create_engine
from payhook.storage._tables import events, notifications, refused_callbacks
from tests._faults import locked_sqlite
from tests._server import ServerThread

SECRET_LOOKING = "s3cr3t-provider-key-value"


class FakeProvider:
    """A provider whose body says what to do: ``ok:<key>``, ``bad``, ``probe``, ``malformed``…"""

    kind = "fake"
    channel = "fake"

    def verify(self, raw: RawNotification) -> ParsedNotification:
        body = raw.body.decode("latin-1")
        if body.startswith("ok:"):
            key = body[3:]
            draft = EventDraft(
                type=EventType.ORDER_PAID,
                key=f"fake:m:{key}:paid",
                provider="alipay",
                merchant_id="m",
                order_id=key,
                transaction_id=key,
                amount=100,
            )
            return ParsedNotification(notification_id=key, events=(draft,), order_id=key)
        if body == "bad":
            raise SignatureError("signature does not match")
        if body == "probe":
            raise SignatureProbeError()
        if body == "decrypt":
            raise DecryptionError("check the APIv3 key")
        if body == "crash":
            raise RuntimeError(SECRET_LOOKING)
        raise NotificationError("malformed body")

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        status = {
            Outcome.ACCEPTED: 200,
            Outcome.REFUSED_AUTH: 401,
            Outcome.REFUSED_MALFORMED: 400,
            Outcome.KEY_MISCONFIGURED: 500,
            Outcome.STORAGE_UNAVAILABLE: 503,
        }[outcome]
        return Reply(status=status, body=outcome.value.encode(), content_type="text/plain")


@pytest.fixture
def served(database_url: str) -> Iterator[tuple[str, str]]:
    """payhook with one fake channel, served by uvicorn; yields (base URL, database URL)."""
    settings = PayhookSettings(database_url=database_url, max_body_bytes=2048)
    hook = PayHook(settings, run_dispatcher=False)
    hook.providers["fake"] = FakeProvider()

    async def _noop() -> None:
        return None

    hook._sync_subscriptions = _noop  # type: ignore[method-assign]
    with ServerThread(hook.app) as server:
        yield server.url, database_url


async def stored_events(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(events)) or 0)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("body", "status", "reply"),
    [
        (b"ok:1001", 200, b"accepted"),
        (b"bad", 401, b"refused_auth"),
        (b"probe", 401, b"refused_auth"),
        (b"malformed", 400, b"refused_malformed"),
        (b"decrypt", 500, b"key_misconfigured"),
        (b"crash", 400, b"refused_malformed"),
        (b"", 400, b"refused_malformed"),
    ],
    ids=["accepted", "bad-signature", "probe", "malformed", "key-misconfigured", "adapter-crash",
         "empty"],
)  # fmt: skip
def test_replies(
    served: tuple[str, str],
    body: bytes,
    status: int,
    reply: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every outcome is answered in the provider's own format; only accepted ones are stored."""
    url, database_url = served
    response = httpx.post(f"{url}/notify/fake", content=body)
    assert (response.status_code, response.content) == (status, reply)
    assert asyncio.run(stored_events(database_url)) == (1 if status == 200 else 0)
    assert SECRET_LOOKING not in response.text


def test_duplicates_all_acknowledged(served: tuple[str, str]) -> None:
    """Concurrent copies all get the success answer and make one event."""
    url, database_url = served

    async def send() -> list[int]:
        async with httpx.AsyncClient() as client:
            responses = await asyncio.gather(
                *(client.post(f"{url}/notify/fake", content=b"ok:dup") for _ in range(20))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(send()) == [200] * 20
    assert asyncio.run(stored_events(database_url)) == 1


def test_unknown_channel(served: tuple[str, str]) -> None:
    """An unknown channel is 404."""
    url, _ = served
    assert httpx.post(f"{url}/notify/nope", content=b"ok:1").status_code == 404


@pytest.mark.parametrize("path", ["/notify/fake/", "/notify/fake/x", "/notify/", "/notify"])
def test_other_paths_under_notify_are_unknown_channels(served: tuple[str, str], path: str) -> None:
    """A trailing slash or any other path under /notify: the plain 404, no redirect."""
    url, database_url = served
    response = httpx.post(url + path, content=b"ok:slash", headers={"host": "evil.example"})
    assert (response.status_code, response.content) == (404, b"unknown channel")
    assert "location" not in response.headers
    assert asyncio.run(stored_events(database_url)) == 0


def test_a_query_string_is_refused(served: tuple[str, str]) -> None:
    """A callback with a query string is refused in the provider's format and counted with
    reason query_string; nothing is stored. The same body without it is accepted."""
    url, database_url = served
    response = httpx.post(f"{url}/notify/fake?paid=1", content=b"ok:q1")
    assert (response.status_code, response.content) == (400, b"refused_malformed")
    assert asyncio.run(stored_events(database_url)) == 0
    text = httpx.get(f"{url}/metrics").text
    assert (
        'payhook_callbacks_total{channel="fake",outcome="refused",reason="query_string"} 1.0'
        in text
    )
    assert httpx.post(f"{url}/notify/fake", content=b"ok:q1").status_code == 200
    assert asyncio.run(stored_events(database_url)) == 1


def test_body_limit(served: tuple[str, str]) -> None:
    """Bodies over max_body_bytes get 413, with or without a content-length."""
    url, database_url = served
    big = b"ok:" + b"x" * 4096
    assert httpx.post(f"{url}/notify/fake", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"ok:" + b"y" * 500

    response = httpx.post(f"{url}/notify/fake", content=chunks())
    assert response.status_code == 413
    assert asyncio.run(stored_events(database_url)) == 0


def test_health_ready_metrics(served: tuple[str, str]) -> None:
    """Health, readiness and metrics answer without auth; metrics count callbacks."""
    url, _ = served
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}
    httpx.post(f"{url}/notify/fake", content=b"ok:m1")
    httpx.post(f"{url}/notify/fake", content=b"bad")
    text = httpx.get(f"{url}/metrics").text
    assert 'payhook_callbacks_total{channel="fake",outcome="accepted",reason=""} 1.0' in text
    assert (
        'payhook_callbacks_total{channel="fake",outcome="refused",reason="bad_signature"} 1.0'
        in text
    )
    assert 'payhook_events_total{type="payment.order.paid"} 1.0' in text


def test_admin_off_without_token(served: tuple[str, str]) -> None:
    """With no admin token the whole /admin tree is 404."""
    url, _ = served
    assert httpx.get(f"{url}/admin/events").status_code == 404


def test_database_down_gets_failure(sqlite_database_url: str) -> None:
    """A database that cannot take writes gets the provider's failure reply, never success;
    payhook recovers by itself when it can write again."""
    settings = PayhookSettings(database_url=sqlite_database_url)
    hook = PayHook(settings, run_dispatcher=False)
    hook.providers["fake"] = FakeProvider()

    async def _noop() -> None:
        return None

    hook._sync_subscriptions = _noop  # type: ignore[method-assign]
    db = Path(sqlite_database_url.removeprefix("sqlite+aiosqlite:///"))
    with ServerThread(hook.app) as server:
        assert httpx.post(f"{server.url}/notify/fake", content=b"ok:before").status_code == 200
        with locked_sqlite(db):
            response = httpx.post(f"{server.url}/notify/fake", content=b"ok:during")
            assert (response.status_code, response.content) == (503, b"storage_unavailable")
        response = httpx.post(f"{server.url}/notify/fake", content=b"ok:during")
        assert response.status_code == 200
    assert asyncio.run(stored_events(sqlite_database_url)) == 2


def test_audit_rows(served: tuple[str, str]) -> None:
    """Accepted and duplicate callbacks leave audit rows with their verdict; a refused one
    leaves a bounded record in its own table, never a row among the callbacks."""
    url, database_url = served
    httpx.post(f"{url}/notify/fake", content=b"ok:a")
    httpx.post(f"{url}/notify/fake", content=b"ok:a")
    bad = httpx.post(
        f"{url}/notify/fake", content=b"bad", headers={"authorization": f"Bearer {SECRET_LOOKING}"}
    )
    assert bad.status_code == 401
    refused = wait_for_refused(database_url, 1)
    assert sorted(asyncio.run(verdicts(database_url))) == ["accepted", "duplicate"]
    assert len(refused) == 1
    row = refused[0]
    assert (row.channel, row.reason, row.remote_addr, row.size) == (
        "fake",
        "bad_signature",
        "127.0.0.1",
        3,
    )
    assert row.digest == hashlib.sha256(b"bad").hexdigest()
    assert row.excerpt.endswith("\n\nbad")
    assert "authorization: ***" in row.excerpt
    assert SECRET_LOOKING not in row.excerpt


def test_every_refusal_is_audited(served: tuple[str, str]) -> None:
    """Refused, undecryptable, crashing and too-large callbacks are all audited, bounded; a
    too-large body is audited with what was read of it."""
    url, database_url = served
    for body in (b"bad", b"probe", b"malformed", b"decrypt", b"crash", b""):
        httpx.post(f"{url}/notify/fake", content=body)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\xff" * 500  # not UTF-8, sent without a content-length

    assert httpx.post(f"{url}/notify/fake", content=chunks()).status_code == 413
    assert httpx.post(f"{url}/notify/fake", content=b"x" * 4096).status_code == 413
    rows = wait_for_refused(database_url, 8)
    reasons = sorted(row.reason for row in rows)
    assert reasons == sorted(
        ["bad_signature", "signature_probe", "malformed", "decryption_failed", "adapter_error",
         "malformed", "too_large", "too_large"]
    )  # fmt: skip
    assert all(len(row.excerpt.encode("utf-8")) <= 2048 for row in rows)
    streamed, declared = sorted(
        (row for row in rows if row.reason == "too_large"), key=lambda row: -row.size
    )
    # Read up to the first chunk past max_body_bytes (2048): its size is what was read.
    assert 2048 < streamed.size <= 5000
    assert streamed.digest == hashlib.sha256(b"\xff" * streamed.size).hexdigest()
    assert "\\xff" in streamed.excerpt
    assert streamed.excerpt.endswith("\u2026")
    # Refused on its content-length before a byte was read.
    assert (declared.size, declared.digest) == (0, hashlib.sha256(b"").hexdigest())
    assert "content-length: 4096" in declared.excerpt
    assert asyncio.run(stored_events(database_url)) == 0


async def verdicts(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(notifications.c.verdict))).scalars())
    finally:
        await engine.dispose()


async def refused_rows(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(select(refused_callbacks)))
    finally:
        await engine.dispose()


def wait_for_refused(database_url: str, count: int) -> list[Any]:
    """The refused-callback rows once ``count`` are written (the audit is written in the
    background, after the answer)."""
    deadline = time.monotonic() + 30
    while True:
        rows = asyncio.run(refused_rows(database_url))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_dropped_audits_are_counted(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the audit budget a refused callback is still answered, and the record it does
    not get is counted by channel and cause."""
    monkeypatch.setattr(Store, "audit_burst", 2)
    monkeypatch.setattr(Store, "audit_rate_per_s", 0.0)
    hook = PayHook(PayhookSettings(database_url=database_url), run_dispatcher=False)
    hook.providers["fake"] = FakeProvider()

    async def _noop() -> None:
        return None

    hook._sync_subscriptions = _noop  # type: ignore[method-assign]
    with ServerThread(hook.app) as server:
        for _ in range(5):
            assert httpx.post(f"{server.url}/notify/fake", content=b"bad").status_code == 401
        text = httpx.get(f"{server.url}/metrics").text
        rows = wait_for_refused(database_url, 2)
    assert 'payhook_refused_audits_dropped_total{cause="rate",channel="fake"} 3.0' in text, text
    assert len(rows) == 2
