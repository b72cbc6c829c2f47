"""A callback refused for a bad signature is logged with the channel, the fingerprint of the
key it was verified with, and where the fix for a wrong key is documented; never any key
material, and none of that goes back to the caller.

A real payhook (uvicorn on 127.0.0.1) with real Alipay, WeChat Pay v3 and v2 channels;
callbacks are built by the providers' own simulators, signed with another key than the one
the channel verifies with (what every real callback looks like when the key is wrong).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from payhook._hook import PayHook
from payhook._logging import TextFormatter
from payhook.config import PayhookSettings, load_settings
from payhook.providers import build_simulator
from payhook.signing import key_fingerprint, secret_fingerprint
from tests._keyfiles import API_V2_KEY, API_V3_KEY, pem_body_lines, private_pem, public_pem, rsa_key
from tests._server import ServerThread

DOC = "docs/configuration.md#wrong-public-key"
OTHER_V2_KEY = "ffffffffffffffffffffffffffffffff"
PUB_KEY_ID = "PUB_KEY_ID_0119000000012026112800000000000000"


def _config(folder: Path, database_url: str) -> Path:
    configured, signer = rsa_key("provider"), rsa_key("simulator")
    tables = [
        {
            "name": "alipay",
            "provider": "alipay",
            "app_id": "2021000000000001",
            "alipay_public_key": public_pem(configured),
            "simulator_private_key": private_pem(signer),
        },
        {
            "name": "wechat",
            "provider": "wechatpay_v3",
            "mch_id": "1900000001",
            "api_v3_key": API_V3_KEY,
            "wechatpay_public_key_id": PUB_KEY_ID,
            "wechatpay_public_key": public_pem(configured),
            "simulator_private_key": private_pem(signer),
        },
        {
            "name": "legacy",
            "provider": "wechatpay_v2",
            "mch_id": "1900000002",
            "api_key": API_V2_KEY,
        },
    ]
    text = f"database_url = {json.dumps(database_url)}\n\n"
    for table in tables:
        text += "[[channels]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    path = folder / "payhook.toml"
    path.write_text(text)
    return path


@pytest.fixture
def served(tmp_path: Path, sqlite_database_url: str) -> Iterator[tuple[str, PayhookSettings]]:
    settings = load_settings(_config(tmp_path, sqlite_database_url))
    hook = PayHook(settings, run_dispatcher=False)
    with ServerThread(hook.app) as server:
        yield server.url, settings


def _forged(settings: PayhookSettings, channel: str) -> tuple[dict[str, str], bytes]:
    """A paid callback for ``channel`` signed with a key the channel does not verify with."""
    settings_channel = settings.channel(channel)
    if channel == "legacy":
        settings_channel = settings_channel.model_copy(update={"api_key": SecretStr(OTHER_V2_KEY)})
    callback = build_simulator(settings_channel).build(
        order_id="A-1", amount=8888, event="paid", refund_amount=None, now=datetime.now(UTC)
    )
    return dict(callback.headers), callback.body


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("alipay", "channel alipay verifies with alipay_public_key {fp}"),
        ("wechat", f"channel wechat verifies with wechatpay_public_key {PUB_KEY_ID} {{fp}}"),
        ("legacy", "channel legacy verifies with api_key (MD5) {v2}"),
    ],
)
def test_bad_signature_log_names_channel_fingerprint_and_fix(
    served: tuple[str, PayhookSettings],
    caplog: pytest.LogCaptureFixture,
    channel: str,
    expected: str,
) -> None:
    """One WARNING line: the refusal, the channel, the key's fingerprint, the doc anchor."""
    url, settings = served
    headers, body = _forged(settings, channel)
    caplog.set_level(logging.WARNING, logger="payhook.inbound")
    response = httpx.post(f"{url}/notify/{channel}", content=body, headers=headers, timeout=30)
    assert response.status_code in (400, 401)
    refusals = [r for r in caplog.records if r.getMessage().startswith("callback refused")]
    assert len(refusals) == 1
    record = refusals[0]
    assert record.reason == "bad_signature"  # type: ignore[attr-defined]
    line = TextFormatter().format(record)
    fingerprint = key_fingerprint(rsa_key("provider").public_key())
    assert expected.format(fp=fingerprint, v2=secret_fingerprint(API_V2_KEY)) in line
    assert DOC in line
    assert f"channel={channel}" in line
    assert "\n" not in line
    # No key material in the log; nothing of the hint goes back to the caller.
    for pem in (private_pem(rsa_key("provider")), private_pem(rsa_key("simulator"))):
        for secret_line in pem_body_lines(pem):
            assert secret_line not in line
    for secret in (API_V2_KEY, OTHER_V2_KEY, API_V3_KEY):
        assert secret not in line
    assert DOC not in response.text
    assert "SHA256" not in response.text
