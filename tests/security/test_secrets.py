"""Secrets never leak: not in reprs, not in error messages, not in logs (even at DEBUG), not in
admin API answers, metrics or ``check-config`` output.

The secrets: the WeChat Pay APIv3 key, the v2 API key, the subscription's ``whsec_`` secret
(and its base64 body, which is the HMAC key), the admin token, a generated subscription
secret, and the database password.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from payhook._hook import PayHook
from payhook.config import load_settings
from payhook.errors import ConfigurationError, PayhookError
from payhook.providers import Outcome, RawNotification, build_provider, build_simulator
from payhook.storage._subscription_model import SubscriptionSecret, SubscriptionSpec
from tests._server import ServerThread
from tests._subscriber import Subscriber
from tests.faults._callbacks import Callbacks, Fact
from tests.faults._malformed import Generator
from tests.faults._payhook import (
    ADMIN_TOKEN,
    API_V2_KEY,
    API_V3_KEY,
    CHANNELS,
    SECRETS,
    SUBSCRIBER_SECRET,
    PayhookServe,
    write_config,
)

DB_PASSWORD = "pg-pass-9f8e7d6c5b4a"  # a test value that must never show
PG_URL = f"postgresql+asyncpg://payhook:{DB_PASSWORD}@127.0.0.1:5432/payhook_secret_test"


def _leaks(text: str, secrets: tuple[str, ...] = (*SECRETS, DB_PASSWORD)) -> list[str]:
    return [s[:6] + "…" for s in secrets if s in text]


def test_reprs_and_strs_hide_secrets(tmp_path: Path) -> None:
    """Settings, channels, providers, simulators, hook, store and dispatcher hide secrets."""
    config = write_config(tmp_path, database_url=PG_URL, subscriber_url="http://127.0.0.1:9/x")
    settings = load_settings(config)
    hook = PayHook(settings, run_dispatcher=False, migrate=False)
    objects: list[object] = [
        settings,
        *settings.channels,
        *settings.subscriptions,
        settings.dispatcher,
        hook,
        hook.store,
        *hook.providers.values(),
        *(build_simulator(c) for c in settings.channels),
        *(build_provider(c, clock=hook.clock) for c in settings.channels),
        SubscriptionSpec(name="orders", url="http://x", events=("*",), secret=SUBSCRIBER_SECRET),
        SubscriptionSecret(secret=SUBSCRIBER_SECRET),
        hook.build_dispatcher(),
    ]
    admin = hook.admin_app()
    assert admin is not None
    objects.append(admin)
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert _leaks(text) == [], (type(obj).__name__, _leaks(text))
    # A dump is an explicit export: the database URL is in it on purpose, SecretStr are not.
    assert _leaks(settings.model_dump_json(), SECRETS) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("api_v3_key", "S3CRET-v3-key-of-31-bytes-xxxxx"),
        ("api_key", "S3CRET-v2-key-of-33-characters-xx"),
        ("admin_token", "S3CRET!"),
        ("database_url", f"mysql://u:{DB_PASSWORD}@h/db"),
        ("secret", "whsec_S3CRET!!not-base64!!"),
        ("secret", "whsec_" + "QUFB" * 4),  # base64 but too short
    ],
    ids=["v3-key-length", "v2-key-length", "admin-token-short", "db-url-driver",
         "whsec-not-base64", "whsec-too-short"],
)  # fmt: skip
def test_configuration_errors_never_echo_the_value(tmp_path: Path, key: str, value: str) -> None:
    """A rejected secret is named by its key in the error, never shown."""
    config = write_config(
        tmp_path, database_url="sqlite+aiosqlite:///x.db", subscriber_url="http://127.0.0.1:9/x"
    )
    text = config.read_text()
    if key == "api_v3_key":
        text = text.replace(API_V3_KEY, value)
    elif key == "api_key":
        text = text.replace(API_V2_KEY, value)
    elif key == "admin_token":
        text = text.replace(ADMIN_TOKEN, value)
    elif key == "database_url":
        text = text.replace('"sqlite+aiosqlite:///x.db"', f'"{value}"')
    else:
        text = text.replace(SUBSCRIBER_SECRET, value)
    config.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(config)
    message = caught.value.message
    assert key in message
    assert value not in message
    assert DB_PASSWORD not in message
    result = subprocess.run(
        [sys.executable, "-m", "payhook", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert value not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_refusal_errors_never_carry_secrets(tmp_path: Path) -> None:
    """Hundreds of malformed callbacks: no refusal's message, reason or repr holds a secret."""
    config = write_config(
        tmp_path, database_url="sqlite+aiosqlite:///x.db", subscriber_url="http://127.0.0.1:9/x"
    )
    settings = load_settings(config)
    gen = Generator(config, seed=99)
    checked = 0
    for channel_settings in settings.channels:
        provider = build_provider(channel_settings, clock=PayHook(settings).clock)
        for _ in range(300):
            request = gen.make(channel_settings.name)
            raw = RawNotification(
                channel=channel_settings.name,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=request.body,
                received_at=datetime.now(UTC),
            )
            try:
                provider.verify(raw)
            except PayhookError as exc:
                checked += 1
                reply = provider.reply(Outcome.REFUSED_MALFORMED, exc.message).body.decode()
                text = f"{exc.message} {exc.reason} {exc!r} {reply}"
                assert _leaks(text) == [], (channel_settings.name, request.kind, _leaks(text))
    assert checked == 900


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, str]]:
    """A real subscriber verifying signatures with standardwebhooks."""
    sub = Subscriber(secret=SUBSCRIBER_SECRET)
    with ServerThread(sub.app()) as server:
        yield sub, f"{server.url}/webhooks/payments"


def _exercise(serve: PayhookServe, config: Path) -> tuple[list[str], list[str]]:
    """Everything that could log a secret; returns (admin answers, provider signatures sent)."""
    callbacks = Callbacks(config)
    answers: list[str] = []
    signatures: list[str] = []
    for n, channel in enumerate(CHANNELS * 2):
        callback = callbacks.build(Fact(channel=channel, order_id=f"LOG-{n}", event="paid",
                                        amount=100 + n))  # fmt: skip
        for name, value in callback.headers.items():
            if name.lower() == "wechatpay-signature":
                signatures.append(value)
        if channel == "alipay":
            signatures.append(callback.body.rsplit(b"&sign=", 1)[1].decode())
        httpx.post(f"{serve.url}/notify/{channel}", content=callback.body,
                   headers=dict(callback.headers), timeout=30)  # fmt: skip
    gen = Generator(config, seed=5)
    for channel in CHANNELS:
        for _ in range(60):
            bad = gen.make(channel)
            httpx.post(f"{serve.url}/notify/{channel}", content=bad.body, headers=bad.headers,
                       timeout=30)  # fmt: skip
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    httpx.get(f"{serve.url}/admin/events", headers={"authorization": "Bearer wrong"}, timeout=10)
    created = httpx.post(
        f"{serve.url}/admin/subscriptions",
        headers=auth,
        json={"name": "generated", "url": "http://127.0.0.1:9/generated", "events": ["*"]},
        timeout=10,
    )
    generated = created.json().get("secret", "") if created.status_code == 201 else ""
    for path in (
        "/admin/subscriptions",
        "/admin/subscriptions/orders",
        "/admin/subscriptions/generated",
        "/admin/events",
        "/admin/deliveries",
        "/admin/openapi.json",
    ):
        answers.append(httpx.get(serve.url + path, headers=auth, timeout=10).text)
    events = httpx.get(f"{serve.url}/admin/events", headers=auth, timeout=10).json()
    for item in events.get("items", [])[:3]:
        answers.append(
            httpx.get(f"{serve.url}/admin/events/{item['id']}", headers=auth, timeout=10).text
        )
    patched = httpx.patch(
        f"{serve.url}/admin/subscriptions/generated",
        headers=auth,
        json={"secret": "whsec_" + "QkJC" * 8},
        timeout=10,
    )
    answers.append(patched.text)
    answers.append(httpx.get(f"{serve.url}/metrics", timeout=10).text)
    if generated:
        signatures.append(generated)
        signatures.append(generated.removeprefix("whsec_"))
    return answers, signatures


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_logs_and_admin_output_never_show_secrets(
    tmp_path: Path, subscriber: tuple[Subscriber, str], level: str
) -> None:
    """A busy server's log (at DEBUG too) and its admin answers hold no secret."""
    sub, sub_url = subscriber
    config = write_config(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}",
        subscriber_url=sub_url,
        log_level=level,
        request_timeout="2s",
        retry_schedule=("100ms", "200ms"),
    )
    log = tmp_path / "serve.log"
    with PayhookServe(config, log=log) as serve:
        answers, signatures = _exercise(serve, config)
        deadline = time.monotonic() + 30
        while len(sub.received) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
    outbound = [r.headers.get("webhook-signature", "") for r in sub.received]
    for answer in answers:
        assert _leaks(answer) == [], _leaks(answer)
        assert all(s[6:] not in answer for s in signatures if s.startswith("whsec_"))
    text = log.read_text(errors="replace")
    assert text, "the server logged nothing"
    assert _leaks(text) == [], _leaks(text)
    generated = [s for s in signatures if s.startswith("whsec_")]
    assert all(g not in text and g[6:] not in text for g in generated)
    if level == "INFO":
        leaked = [s[:12] for s in signatures + outbound if s and s in text]
        assert leaked == [], f"signatures logged at INFO: {leaked}"
