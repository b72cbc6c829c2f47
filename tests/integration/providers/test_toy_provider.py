"""A provider added from outside: the toy provider (``_toy.py``) is one module plus one
``register_provider`` call, and configuration, the notify route, ``payhook simulate``,
``check-config``, the OpenAPI document and background tasks all pick it up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from payhook._hook import PayHook
from payhook.asgi._openapi import openapi_document
from payhook.cli import main
from payhook.config import load_settings
from payhook.errors import ConfigurationError
from payhook.providers import (
    build_simulator,
    event_providers,
    provider_kinds,
    register_provider,
    simulated_events,
    unregister_provider,
)
from payhook.storage._tables import events
from tests._server import ServerThread
from tests.integration.providers import _toy

pytestmark = pytest.mark.anyio

SECRET = "toy-secret-0123456789"


@pytest.fixture
def toy() -> Iterator[None]:
    """The toy provider, registered for one test."""
    register_provider(_toy.SPEC)
    yield
    unregister_provider(_toy.KIND)


def write_config(folder: Path, database_url: str) -> Path:
    """A config with one built-in channel and one toy channel whose secret is in a file."""
    (folder / "toy.secret").write_text(SECRET)
    path = folder / "payhook.toml"
    path.write_text(
        f'database_url = "{database_url}"\n\n'
        '[[channels]]\nname = "legacy"\nprovider = "wechatpay_v2"\nmch_id = "1900000002"\n'
        'api_key = "192006250b4c09247ec02edce69f6a2d"\n\n'
        '[[channels]]\nname = "toy-shop"\nprovider = "toy"\nmerchant_id = "m-1"\n'
        'secret_file = "toy.secret"\n'
    )
    return path


def test_toy_config_loads(toy: None, tmp_path: Path, database_url: str) -> None:
    """``provider = "toy"`` validates with the toy's own settings model; key files resolve."""
    settings = load_settings(write_config(tmp_path, database_url))
    channel = settings.channel("toy-shop")
    assert isinstance(channel, _toy.ToyChannel)
    assert channel.secret.get_secret_value() == SECRET
    assert "toy" in provider_kinds()


def test_toy_config_errors_name_the_key(toy: None, tmp_path: Path, database_url: str) -> None:
    """The toy's settings errors read like the built-in ones: file, key, one line; a
    misspelt key is reported as such (with the key it was probably meant to be), not as the
    required key it left missing."""
    path = write_config(tmp_path, database_url)
    path.write_text(path.read_text().replace('merchant_id = "m-1"\n', 'merchant = "m-1"\n'))
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    assert info.value.message == (
        f"{path}: channels[1].merchant: unknown key in channel 'toy-shop'; "
        "did you mean 'merchant_id'?"
    )


def test_unregistered_toy_is_an_unknown_provider(tmp_path: Path, database_url: str) -> None:
    """Without registration, ``toy`` is refused like any unknown provider."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(write_config(tmp_path, database_url))
    assert info.value.message.endswith(
        "channels[1]: provider must be one of alipay, wechatpay_v3, wechatpay_v2"
    )


async def test_toy_callback_is_stored_once(toy: None, tmp_path: Path, database_url: str) -> None:
    """``/notify/<toy channel>`` verifies with the toy adapter, stores one event, answers in
    the toy's format, and payhook started the toy's background task."""
    settings = load_settings(write_config(tmp_path, database_url))
    hook = PayHook(settings, run_dispatcher=False)
    simulator = build_simulator(settings.channel("toy-shop"))
    callback = simulator.build(
        order_id="TOY-1", amount=990, event="paid", refund_amount=None, now=datetime.now(UTC)
    )
    async with hook.lifespan():
        heartbeat = hook._background[0]
        assert isinstance(heartbeat, _toy.ToyHeartbeat)
        assert heartbeat.prepared
        transport = httpx.ASGITransport(app=hook.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://payhook") as client:
            for _ in range(2):
                reply = await client.post(
                    "/notify/toy-shop", content=callback.body, headers=dict(callback.headers)
                )
                assert (reply.status_code, reply.text) == (200, "ok")
            forged = await client.post(
                "/notify/toy-shop", content=callback.body, headers={"x-toy-signature": "0" * 64}
            )
            assert (forged.status_code, forged.text) == (400, "no")
        async with hook.store.engine.connect() as conn:
            rows = (await conn.execute(select(events.c.type, events.c.body))).all()
        assert heartbeat.running.is_set()
    assert [row.type for row in rows] == ["payment.order.paid"]
    assert json.loads(rows[0].body)["data"]["provider"] == "toy"


def test_simulate_and_check_config_know_the_toy(
    toy: None, tmp_path: Path, database_url: str
) -> None:
    """``payhook simulate`` offers the toy's events and sends its callback; ``check-config``
    prints its summary."""
    config = write_config(tmp_path, database_url)
    runner = CliRunner()
    help_text = runner.invoke(main, ["simulate", "--help"]).output
    assert "[paid|closed|refund|combined|voided]" in help_text
    assert simulated_events() == ("paid", "closed", "refund", "combined", "voided")
    checked = runner.invoke(main, ["check-config", "--config", str(config)])
    assert checked.exit_code == 0, checked.output
    assert "channel toy-shop: toy, merchant m-1" in checked.output
    hook = PayHook(load_settings(config), run_dispatcher=False)
    with ServerThread(hook.app) as server:
        sent = runner.invoke(
            main,
            [
                "simulate", "toy-shop", "--order", "TOY-2", "--amount", "1.50",
                "--event", "voided", "--config", str(config),
                "--url", f"{server.url}/notify/toy-shop",
            ],
        )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert sent.output == "HTTP 200\nok\n"


def test_openapi_lists_the_toy(toy: None) -> None:
    """The admin API's ``data.provider`` enum comes from the registry."""
    document = openapi_document()
    data = document["components"]["schemas"]["Event"]["properties"]["data"]
    assert data["properties"]["provider"]["enum"] == ["alipay", "toy", "wechatpay"]
    assert event_providers() == ("alipay", "toy", "wechatpay")


def test_registering_twice_is_refused(toy: None) -> None:
    """A provider kind is registered once."""
    with pytest.raises(ConfigurationError, match="already registered"):
        register_provider(_toy.SPEC)
