"""The configuration file: TOML, env overrides, key files, and one clear line per mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from payhook.config import load_settings, parse_duration
from payhook.errors import ConfigurationError
from payhook.providers.alipay import AlipayChannel
from payhook.providers.wechatpay_v3 import WechatPayV3Channel

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SECRET_VALUES = [
    "change-me-sandbox-token",
    "0123456789abcdef0123456789abcdef",
    "192006250b4c09247ec02edce69f6a2d",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the sample configuration with its keys."""
    shutil.copytree(SAMPLES / "keys", tmp_path / "keys")
    shutil.copy(SAMPLES / "payhook.toml", tmp_path / "payhook.toml")
    return tmp_path / "payhook.toml"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_sample_loads(sample: Path) -> None:
    """The shipped sample parses, with files resolved relative to the config folder."""
    settings = load_settings(sample)
    assert [c.name for c in settings.channels] == ["alipay", "wechat", "wechat-legacy"]
    assert isinstance(settings.channels[0], AlipayChannel)
    assert isinstance(settings.channels[1], WechatPayV3Channel)
    assert settings.database_url == f"sqlite+aiosqlite:///{sample.parent.resolve() / 'payhook.db'}"
    assert settings.dispatcher.retry_schedule[:3] == (1.0, 4.0, 16.0)
    assert sum(settings.dispatcher.retry_schedule) > 2.5 * 86400


def test_secrets_not_in_repr(sample: Path) -> None:
    """No secret appears in the settings' repr or str."""
    settings = load_settings(sample)
    for text in (repr(settings), str(settings)):
        for secret in SECRET_VALUES:
            assert secret not in text
        assert "PRIVATE KEY" not in text


def test_env_overrides_top_level(sample: Path) -> None:
    """PAYHOOK_<KEY> wins over the file for top-level scalars."""
    settings = load_settings(
        sample,
        environ={
            "PAYHOOK_DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "PAYHOOK_MAX_BODY_BYTES": "4096",
        },
    )
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.max_body_bytes == 4096


def test_max_connections_per_address(sample: Path) -> None:
    """The per-address connection cap: 256 unless set, 0 turns it off, the environment
    overrides it, a negative value is refused."""
    assert load_settings(sample).max_connections_per_address == 256
    edit(
        sample, "max_body_bytes = 65536", "max_body_bytes = 65536\nmax_connections_per_address = 0"
    )
    assert load_settings(sample).max_connections_per_address == 0
    env = {"PAYHOOK_MAX_CONNECTIONS_PER_ADDRESS": "32"}
    assert load_settings(sample, environ=env).max_connections_per_address == 32
    with pytest.raises(ConfigurationError, match="max_connections_per_address: "):
        load_settings(sample, environ={"PAYHOOK_MAX_CONNECTIONS_PER_ADDRESS": "-1"})


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("max_body_bytes = 65536", "max_body_bytes = 65536\nmax_body_byte = 1", "max_body_byte: unknown key"),
        ('app_id   = "2021000000000001"', 'app_id   = "2021000000000001"\nsellerid = "x"',
         "channels[0].sellerid: unknown key"),
        ('api_v3_key = "0123456789abcdef0123456789abcdef"', 'api_v3_key = "short"',
         "channels[1].api_v3_key: must be exactly 32 bytes"),
        ('api_key  = "192006250b4c09247ec02edce69f6a2d"', 'api_key  = "x"',
         "channels[2].api_key: must be exactly 32 characters"),
        ('"keys/alipay_public.pem"', '"keys/missing.pem"',
         "channels[0].alipay_public_key_file: file not found: keys/missing.pem"),
        ('provider = "alipay"', 'provider = "paypal"', "channels[0]: provider must be one of"),
        ('name     = "wechat"\n', 'name     = "alipay"\n', "the name 'alipay' is used twice"),
        ('secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"', 'secret = "whsec_c2hvcnQ="',
         "subscriptions[0].secret: is too weak"),
        ('url    = "http://127.0.0.1:9100/webhooks/payments"', 'url    = "ftp://x"',
         "subscriptions[0].url: must be an http:// or https:// URL"),
        ('events = ["payment.order.paid", "payment.refund.*"]', 'events = ["payment.*.paid"]',
         "subscriptions[0].events: 'payment.*.paid' is not an event filter"),
        ('request_timeout = "10s"', 'request_timeout = "ten"', "dispatcher.request_timeout: not a duration"),
        ('database_url = "sqlite+aiosqlite:///./payhook.db"', 'database_url = "mysql://x"',
         "database_url: must start with sqlite+aiosqlite://"),
    ],
    ids=["unknown-top", "unknown-channel-key", "apiv3-len", "apiv2-len", "missing-file",
         "bad-provider", "duplicate-name", "weak-secret", "bad-url", "bad-filter", "bad-duration",
         "bad-db"],
)  # fmt: skip
def test_errors_name_key_and_file(sample: Path, old: str, new: str, expected: str) -> None:
    """Each mistake is one line naming the file and the key."""
    edit(sample, old, new)
    with pytest.raises(ConfigurationError) as info:
        load_settings(sample)
    message = info.value.message
    assert message.startswith(f"{sample}: ")
    assert expected in message
    assert "\n" not in message
    for secret in SECRET_VALUES:
        assert secret not in message


def test_bad_key_material(sample: Path) -> None:
    """A key file that is not a key fails at load time, naming the channel."""
    (sample.parent / "keys" / "alipay_public.pem").write_text("not a key")
    with pytest.raises(ConfigurationError, match=r"channels\[0\] \(alipay\).*alipay_public_key"):
        load_settings(sample)


def test_bare_base64_key(sample: Path) -> None:
    """A public key may be the bare base64 the consoles show, inline."""
    pem = (sample.parent / "keys" / "alipay_public.pem").read_text()
    bare = "".join(line for line in pem.splitlines() if "-----" not in line)
    edit(
        sample, 'alipay_public_key_file = "keys/alipay_public.pem"', f'alipay_public_key = "{bare}"'
    )
    assert load_settings(sample).channels[0].name == "alipay"


def test_missing_explicit_file(tmp_path: Path) -> None:
    """An explicit path that does not exist is an error."""
    with pytest.raises(ConfigurationError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    """Broken TOML is reported with the file name."""
    path = tmp_path / "payhook.toml"
    path.write_text("database_url = ")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(path)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("500ms", 0.5),
        (10, 10),
        ("1.5s", 1.5),
    ],
    ids=str,
)
def test_durations(value: object, seconds: float) -> None:
    """Durations accept ms/s/m/h/d suffixes and bare seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["-1s", "1w", "", True, -3], ids=str)
def test_bad_durations(value: object) -> None:
    """Negative, unknown-unit or non-numeric durations are refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("channels = 1\n", "channels: Input should be a valid tuple"),
        ("channels = [1]\n", "channels[0]: Input should be a valid dictionary"),
        ('[[channels]]\nname = "a"\n', "channels[0]: Unable to extract tag using discriminator"),
        ('[[channels]]\nname = "a"\nprovider = 5\n', "channels[0]: provider must be one of"),
        ('[[channels]]\nname = "a"\nprovider = "wechatpay_v2"\nmch_id = "1"\n'
         'api_key = "192006250b4c09247ec02edce69f6a2d"\nplatform_certificate_files = ["x.pem"]\n',
         "channels[0].platform_certificate_files: unknown key"),
        ('[[channels]]\nname = "a"\nprovider = "wechatpay_v3"\nmch_id = "1"\n'
         'platform_certificate_files = "x.pem"\n',
         "channels[0].platform_certificate_files: must be a list of paths"),
    ],
    ids=["channels-not-list", "channel-not-table", "no-provider", "provider-not-text",
         "list-key-of-other-provider", "list-key-not-list"],
)  # fmt: skip
def test_channel_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    """A malformed channel list or entry is one line naming the key, never a traceback."""
    path = tmp_path / "payhook.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    assert info.value.message.startswith(f"{path}: {expected}")


def test_dump_shows_each_providers_fields(sample: Path) -> None:
    """A dump has every field of each channel's own model, secrets masked, without warnings."""
    settings = load_settings(sample)
    dumped = settings.model_dump(mode="json")
    assert dumped["channels"][0]["seller_id"] == "2088000000000001"
    assert dumped["channels"][1]["api_v3_key"] == "**********"
    text = settings.model_dump_json()
    for secret in SECRET_VALUES[1:]:
        assert secret not in text
