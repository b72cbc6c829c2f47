"""Security edges of a real ``payhook serve``: admin token, body limits, stale WeChat Pay v3
callbacks and XML external entities, each over real TCP."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests._server import ServerThread
from tests.faults._callbacks import Callbacks, Fact, is_success
from tests.faults._payhook import ADMIN_TOKEN, CHANNELS
from tests.security.conftest import Served

pytestmark = pytest.mark.e2e

ADMIN_ROUTES = [
    ("GET", "/admin/events"),
    ("GET", "/admin/events/evt_00000000000000000000000000"),
    ("POST", "/admin/events/evt_00000000000000000000000000/replay"),
    ("GET", "/admin/deliveries"),
    ("GET", "/admin/deliveries/dlv_00000000000000000000000000"),
    ("POST", "/admin/deliveries/dlv_00000000000000000000000000/retry"),
    ("GET", "/admin/subscriptions"),
    ("POST", "/admin/subscriptions"),
    ("GET", "/admin/subscriptions/orders"),
    ("PATCH", "/admin/subscriptions/orders"),
    ("DELETE", "/admin/subscriptions/orders"),
    ("POST", "/admin/subscriptions/orders/recover"),
    ("GET", "/admin/openapi.json"),
    ("GET", "/admin/no-such-route"),
]
BAD_AUTH = {
    "none": {},
    "empty-bearer": {"authorization": "Bearer"},
    "wrong-token": {"authorization": "Bearer not-the-admin-token"},
    "token-prefix": {"authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    "token-plus-one": {"authorization": f"Bearer {ADMIN_TOKEN}x"},
    "basic-scheme": {"authorization": f"Basic {ADMIN_TOKEN}"},
    "bare-token": {"authorization": ADMIN_TOKEN},
    "other-header": {"x-admin-token": ADMIN_TOKEN},
}


@pytest.mark.parametrize(
    ("method", "path"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p in ADMIN_ROUTES]
)
def test_admin_requires_the_token(served: Served, method: str, path: str) -> None:
    """Every admin route answers 401 to a missing, wrong or mis-sent token, and never acts."""
    for name, headers in BAD_AUTH.items():
        response = httpx.request(
            method, served.url + path, headers=headers, json={"name": "x"}, timeout=10
        )
        assert response.status_code == 401, (name, response.status_code, response.text[:200])
        assert ADMIN_TOKEN not in response.text
    query = httpx.request(method, f"{served.url}{path}?token={ADMIN_TOKEN}", timeout=10)
    assert query.status_code == 401


def test_admin_accepts_the_token(served: Served) -> None:
    """The right bearer token opens the admin API (the 401s above are not a dead route)."""
    response = httpx.get(
        f"{served.url}/admin/subscriptions",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _post_raw(port: int, head: bytes, body: bytes = b"", *, timeout_s: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


@pytest.mark.parametrize("channel", CHANNELS)
def test_body_limits(served: Served, channel: str) -> None:
    """Bodies over max_body_bytes get 413, announced or chunked; a huge announced length is
    refused at once, without waiting for (or buffering) the body."""
    limit = 8192
    url = f"{served.url}/notify/{channel}"
    over = httpx.post(url, content=b"a" * (limit + 1), timeout=30)
    assert over.status_code == 413, over.text

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 1000 + 2):
            yield b"a" * 1000

    chunked = httpx.post(url, content=chunks(), timeout=30)
    assert chunked.status_code == 413, chunked.text
    at_limit = httpx.post(url, content=b"a" * limit, timeout=30)
    assert at_limit.status_code in (400, 401), at_limit.text  # refused as malformed, not 413
    head = (
        f"POST /notify/{channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {10**12}\r\n\r\n"
    ).encode()
    # No body is sent: a server waiting for it would answer 408 at its read deadline (10 s).
    answer = _post_raw(served.serve.port, head, timeout_s=60)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert served.serve.alive()
    assert served.stored_events() == 0


# Ahead by a 60 s margin: the clock runs on while the callback is built and sent (more than
# a second under load), which would bring a 301 s-ahead callback back into the window.
@pytest.mark.parametrize(
    "age", [timedelta(seconds=301), timedelta(hours=2), timedelta(seconds=-360)],
    ids=["301s-old", "2h-old", "360s-ahead"],
)  # fmt: skip
def test_old_but_valid_wechat_v3_callback_is_refused(served: Served, age: timedelta) -> None:
    """A correctly signed v3 callback outside the 5 min window is refused with 401, not stored."""
    callbacks = Callbacks(served.config)
    fact = Fact(channel="wechat", order_id=f"REPLAY-{age.total_seconds():.0f}", event="paid",
                amount=100)  # fmt: skip
    old = callbacks.build(fact, now=datetime.now(UTC) - age)
    before = served.stored_events()
    response = httpx.post(
        f"{served.url}/notify/wechat", content=old.body, headers=dict(old.headers), timeout=30
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "FAIL"
    assert served.stored_events() == before
    # The same fact sent inside the window is accepted: the refusal was about time only.
    fresh = callbacks.build(fact)
    ok = httpx.post(
        f"{served.url}/notify/wechat", content=fresh.body, headers=dict(fresh.headers), timeout=30
    )
    assert is_success("wechat", ok.status_code, ok.content), ok.text
    assert served.stored_events() == before + 1


@pytest.fixture
def entity_target(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTP server that records every hit, and a file holding a marker."""
    hits: list[str] = []

    async def record(request: Request) -> PlainTextResponse:
        hits.append(request.url.path)
        return PlainTextResponse('<!ENTITY leak "XXE-NETWORK-MARKER">')

    app = Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])
    marker = tmp_path / "secret.txt"
    marker.write_text("XXE-FILE-MARKER")
    with ServerThread(app) as server:
        yield server.url, marker, hits


def _xxe_bodies(url: str, marker: Path) -> dict[str, bytes]:
    fields = "<return_code>SUCCESS</return_code><mch_id>1900000002</mch_id>"
    return {
        "file-entity": (
            f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file://{marker}">]>'
            f"<xml>{fields}<out_trade_no>&x;</out_trade_no></xml>"
        ).encode(),
        "http-entity": (
            f'<!DOCTYPE xml [<!ENTITY x SYSTEM "{url}/entity">]>'
            f"<xml>{fields}<out_trade_no>&x;</out_trade_no></xml>"
        ).encode(),
        "parameter-entity": (
            f'<!DOCTYPE xml [<!ENTITY % p SYSTEM "{url}/dtd"> %p;]>'
            f"<xml>{fields}<out_trade_no>&leak;</out_trade_no></xml>"
        ).encode(),
        "external-dtd": (f'<!DOCTYPE xml SYSTEM "{url}/external.dtd"><xml>{fields}</xml>').encode(),
        "xinclude": (
            f'<xml xmlns:xi="http://www.w3.org/2001/XInclude">{fields}'
            f'<out_trade_no><xi:include href="file://{marker}" parse="text"/></out_trade_no></xml>'
        ).encode(),
        "utf16-file-entity": (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml '
            f'[<!ENTITY x SYSTEM "file://{marker}">]><xml>{fields}<a>&x;</a></xml>'
        ).encode("utf-16"),
    }


def test_xml_external_entities_are_never_resolved(
    served: Served, entity_target: tuple[str, Path, list[str]]
) -> None:
    """XXE, parameter entities, external DTDs and XInclude are refused; nothing is fetched."""
    url, marker, hits = entity_target
    for name, body in _xxe_bodies(url, marker).items():
        for channel in CHANNELS:
            response = httpx.post(
                f"{served.url}/notify/{channel}",
                content=body,
                headers={"content-type": "text/xml"},
                timeout=30,
            )
            assert 400 <= response.status_code < 500, (name, channel, response.status_code)
            assert "MARKER" not in response.text, (name, channel)
    # A request of our own, sent after every answer, has been recorded: a fetch made while
    # payhook parsed those bodies would have been recorded before it.
    assert httpx.get(f"{url}/sentinel", timeout=30).status_code == 200
    assert hits == ["/sentinel"]
    assert "MARKER" not in served.log.read_text(errors="replace")
    # The audit is written behind the answers: wait for the XXE bodies' records.
    deadline = time.monotonic() + 30
    while True:
        with sqlite3.connect(served.db) as conn:
            stored = [
                str(row[0]) for row in conn.execute("SELECT excerpt FROM payhook_refused_callbacks")
            ]
        if any("<!DOCTYPE" in excerpt for excerpt in stored) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert any("<!DOCTYPE" in excerpt for excerpt in stored), "the XXE bodies were not audited"
    assert all("MARKER" not in excerpt for excerpt in stored)
