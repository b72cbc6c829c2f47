"""The edges of ``/notify`` on a real ``payhook serve`` (issue 16 item 9): no redirect ever
(Starlette's slash redirect is built from the Host header: an open redirect), and a query
string on a notify URL refused in the provider's own failure format."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.faults._callbacks import Callbacks, Fact, is_success
from tests.faults._payhook import ADMIN_TOKEN, CHANNELS
from tests.security.conftest import Served

pytestmark = pytest.mark.e2e

EVIL_HOST = "evil.example"
NOT_CHANNELS = [
    "/notify/alipay/",
    "/notify/wechat/",
    "/notify/wechat-legacy/",
    "/notify/alipay/extra",
    "/notify//alipay",
    "/notify/",
    "/notify",
]


def _callback(served: Served, channel: str, order_id: str) -> tuple[bytes, dict[str, str]]:
    built = Callbacks(served.config).build(
        Fact(channel=channel, order_id=order_id, event="paid", amount=100)
    )
    return built.body, dict(built.headers)


def _metric(served: Served, name: str, **labels: str) -> float:
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        metric, _sep, value = line.rpartition(" ")
        if not metric.startswith(name + "{"):
            continue
        got = ",".join(sorted(metric[len(name) + 1 : -1].split(",")))
        if got == wanted:
            return float(value)
    return 0.0


@pytest.mark.parametrize("path", NOT_CHANNELS)
def test_no_path_under_notify_redirects(served: Served, path: str) -> None:
    """A signed callback posted to a path under /notify that is not /notify/<channel> gets the
    contract's plain 404 "unknown channel", never a redirect (to the Host it named or any
    other); no event is stored."""
    body, headers = _callback(served, "alipay", f"NOREDIRECT-{len(path)}")
    before = served.stored_events()
    reply = httpx.post(
        served.url + path,
        content=body,
        headers={**headers, "host": EVIL_HOST},
        timeout=30,
        follow_redirects=False,
    )
    assert "location" not in reply.headers
    assert (reply.status_code, reply.content) == (404, b"unknown channel")
    assert reply.headers["content-type"].startswith("text/plain")
    for method in ("GET", "PUT", "DELETE"):  # other methods: 405, no redirect either
        other = httpx.request(method, served.url + path, headers={"host": EVIL_HOST}, timeout=30)
        assert other.status_code == 405, (method, other.status_code)
        assert "location" not in other.headers
    assert served.stored_events() == before


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/",
        "/admin/events/",
        "/admin/deliveries/",
        "/admin/subscriptions/",
        "/admin/subscriptions/orders/",
        "/admin/openapi.json/",
        "/healthz/",
        "/readyz/",
        "/metrics/",
    ],
)
def test_no_other_route_redirects_either(served: Served, path: str) -> None:
    """With or without the admin token, a trailing slash (or its absence) is a 404 or 401,
    never a redirect built from the Host header."""
    for headers in ({}, {"authorization": f"Bearer {ADMIN_TOKEN}"}):
        for method in ("GET", "POST"):
            reply = httpx.request(
                method,
                served.url + path,
                headers={**headers, "host": EVIL_HOST},
                timeout=30,
                follow_redirects=False,
            )
            assert not 300 <= reply.status_code < 400, (method, headers, reply.status_code)
            assert "location" not in reply.headers
            assert reply.status_code in (401, 404, 405), (method, reply.status_code)


FAILURE = {
    "alipay": lambda status, body: status == 400 and body == b"fail",
    "wechat": lambda status, body: status == 400 and b'"code":"FAIL"' in body.replace(b" ", b""),
    "wechat-legacy": lambda status, body: (
        status == 400 and b"<return_code><![CDATA[FAIL]]></return_code>" in body
    ),
}


@pytest.mark.parametrize("query", ["charset=utf-8", "order=1&paid=1", "x"])
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_query_string_is_refused(served: Served, channel: str, query: str) -> None:
    """A correctly signed callback posted with a query string is refused in the provider's
    format (Alipay 400 ``fail``, WeChat Pay v3 400 JSON FAIL, v2 400 XML FAIL), counted and
    logged with reason ``query_string``, and stores nothing; the same callback without the
    query string is then accepted."""
    body, headers = _callback(served, channel, f"QUERY-{channel}-{len(query)}")
    before = served.stored_events()
    counted = _metric(
        served, "payhook_callbacks_total", channel=channel, outcome="refused", reason="query_string"
    )
    reply = httpx.post(
        f"{served.url}/notify/{channel}?{query}", content=body, headers=headers, timeout=30
    )
    assert FAILURE[channel](reply.status_code, reply.content), (reply.status_code, reply.text)
    if channel != "alipay":  # Alipay's failure answer is the bare word
        assert b"query string" in reply.content
    assert served.stored_events() == before
    assert (
        _metric(
            served,
            "payhook_callbacks_total",
            channel=channel,
            outcome="refused",
            reason="query_string",
        )
        == counted + 1
    )
    _wait_for_log(served.log, f"channel={channel} reason=query_string")
    assert query not in _refusal_lines(served.log)
    accepted = httpx.post(
        f"{served.url}/notify/{channel}", content=body, headers=headers, timeout=30
    )
    assert is_success(channel, accepted.status_code, accepted.content), accepted.text
    assert served.stored_events() == before + 1


def _refusal_lines(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if "reason=query_string" in line)


def _wait_for_log(log: Path, text: str) -> None:
    """Log lines reach the file shortly after they are logged (a writer thread)."""
    deadline = time.monotonic() + 60
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never logged"
        time.sleep(0.05)
