"""The configuration file (contract §3): TOML, ``PAYHOOK_<KEY>`` overrides, keys inline or in files.

Only the edges (``cli``, ``PayHook.from_config``) read settings; everything inside payhook takes
plain constructor arguments.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from payhook._subscription_rules import (
    validate_events,
    validate_name,
    validate_secret,
    validate_url,
)
from payhook.errors import ConfigurationError, InvalidSubscriptionError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_RETRY_SCHEDULE",
    "AlipayChannel",
    "DispatcherSettings",
    "PayhookSettings",
    "SubscriptionSettings",
    "WechatPayV2Channel",
    "WechatPayV3Channel",
    "config_path",
    "load_settings",
    "parse_duration",
]

DEFAULT_CONFIG_PATH = "payhook.toml"
# Starts fast so a blip costs seconds; spans more than three days even with -20 % jitter,
# so a subscriber down over a long weekend loses nothing.
DEFAULT_RETRY_SCHEDULE = (
    "1s", "4s", "16s", "64s", "256s", "30m", "2h", "6h", "12h", "24h", "24h", "24h",
)  # fmt: skip

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``"30m"`` -> 1800.0. Units: ms, s, m, h, d; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 30m, 2h, 1d)")


Duration = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _duration_validator(*fields: str) -> Any:
    return field_validator(*fields, mode="before")(lambda v: parse_duration(v))


class DispatcherSettings(_Model):
    """``[dispatcher]``: how deliveries are sent and retried."""

    retry_schedule: tuple[Duration, ...] = Field(
        default=tuple(parse_duration(x) for x in DEFAULT_RETRY_SCHEDULE), min_length=1
    )
    request_timeout: Duration = 10.0
    concurrency: int = Field(default=64, ge=1, le=4096)
    per_subscription_concurrency: int = Field(default=8, ge=1, le=4096)
    poll_interval: Duration = 1.0

    _durations = _duration_validator("request_timeout", "poll_interval")

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(parse_duration(v) for v in value)
        return value

    @field_validator("request_timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value


class _Channel(_Model):
    # Fields holding key material; each may be given inline or as `<name>_file`.
    _material: ClassVar[tuple[str, ...]] = ()

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AlipayChannel(_Channel):
    """An Alipay merchant app (public-key mode or certificate mode)."""

    _material = (
        "alipay_public_key",
        "alipay_public_cert",
        "alipay_root_cert",
        "simulator_private_key",
    )

    provider: Literal["alipay"]
    app_id: str = Field(min_length=1)
    alipay_public_key: SecretStr | None = None
    alipay_public_cert: SecretStr | None = None
    alipay_root_cert: SecretStr | None = None
    seller_id: str | None = None
    simulator_private_key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> AlipayChannel:
        if self.alipay_public_key is None and self.alipay_public_cert is None:
            raise ValueError(
                "needs alipay_public_key(_file) (public-key mode) "
                "or alipay_public_cert(_file) + alipay_root_cert(_file) (certificate mode)"
            )
        if self.alipay_public_key is not None and self.alipay_public_cert is not None:
            raise ValueError("give either alipay_public_key or alipay_public_cert, not both")
        if self.alipay_public_cert is not None and self.alipay_root_cert is None:
            raise ValueError("certificate mode needs alipay_root_cert(_file) too")
        return self


class WechatPayV3Channel(_Channel):
    """A WeChat Pay APIv3 merchant (public-key mode and/or platform-certificate mode)."""

    _material = (
        "wechatpay_public_key",
        "merchant_private_key",
        "simulator_private_key",
    )

    provider: Literal["wechatpay_v3"]
    mch_id: str = Field(min_length=1)
    app_id: str | None = None
    api_v3_key: SecretStr
    wechatpay_public_key_id: str | None = Field(default=None, pattern=r"^PUB_KEY_ID_\w+$")
    wechatpay_public_key: SecretStr | None = None
    platform_certificates: tuple[SecretStr, ...] = ()
    timestamp_tolerance: Duration = 300.0
    merchant_serial_no: str | None = None
    merchant_private_key: SecretStr | None = None
    api_base_url: str = "https://api.mch.weixin.qq.com"
    simulator_private_key: SecretStr | None = None

    _durations = _duration_validator("timestamp_tolerance")

    @field_validator("api_v3_key")
    @classmethod
    def _key_len(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) != 32:
            raise ValueError("must be exactly 32 bytes (the APIv3 key from the merchant platform)")
        return value

    @model_validator(mode="after")
    def _some_key(self) -> WechatPayV3Channel:
        if (self.wechatpay_public_key_id is None) != (self.wechatpay_public_key is None):
            raise ValueError("wechatpay_public_key_id and wechatpay_public_key(_file) go together")
        downloads = self.merchant_serial_no is not None or self.merchant_private_key is not None
        if downloads and (self.merchant_serial_no is None or self.merchant_private_key is None):
            raise ValueError(
                "certificate download needs both merchant_serial_no and merchant_private_key(_file)"
            )
        if self.wechatpay_public_key is None and not self.platform_certificates and not downloads:
            raise ValueError(
                "needs wechatpay_public_key_id + wechatpay_public_key(_file), "
                "platform_certificate_files, or merchant_serial_no + merchant_private_key_file"
            )
        return self


class WechatPayV2Channel(_Channel):
    """A WeChat Pay v2 (XML) merchant."""

    provider: Literal["wechatpay_v2"]
    mch_id: str = Field(min_length=1)
    app_id: str | None = None
    api_key: SecretStr

    @field_validator("api_key")
    @classmethod
    def _key_len(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 32:
            raise ValueError("must be exactly 32 characters (the API v2 key)")
        return value


Channel = Annotated[
    AlipayChannel | WechatPayV3Channel | WechatPayV2Channel, Field(discriminator="provider")
]


class SubscriptionSettings(_Model):
    """``[[subscriptions]]``: an internal service that receives events.

    Validated by the same rules as the admin API and the CLI (:mod:`payhook._subscription_rules`).
    """

    name: str
    url: str
    events: tuple[str, ...] = ("*",)
    secret: SecretStr
    enabled: bool = True

    @field_validator("name", "url", "events", "secret")
    @classmethod
    def _rules(cls, value: Any, info: ValidationInfo) -> Any:
        check = _SUBSCRIPTION_RULES[str(info.field_name)]
        try:
            check(value.get_secret_value() if isinstance(value, SecretStr) else value)
        except InvalidSubscriptionError as exc:
            raise ValueError(exc.problem) from None
        return value


_SUBSCRIPTION_RULES: dict[str, Callable[[Any], object]] = {
    "name": validate_name,
    "url": validate_url,
    "events": validate_events,
    "secret": validate_secret,
}


class PayhookSettings(BaseSettings):
    """The whole configuration. Top-level scalars can be overridden by ``PAYHOOK_<KEY>``."""

    model_config = SettingsConfigDict(
        env_prefix="PAYHOOK_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    database_url: str = Field(default="sqlite+aiosqlite:///./payhook.db", repr=False)
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    dispatcher: DispatcherSettings = DispatcherSettings()
    channels: tuple[Channel, ...] = ()
    subscriptions: tuple[SubscriptionSettings, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file.
        return (env_settings, init_settings)

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL") from None
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("admin_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> PayhookSettings:
        for what, names in (
            ("channels", [c.name for c in self.channels]),
            ("subscriptions", [s.name for s in self.subscriptions]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{what}: the name {name!r} is used twice")
                seen.add(name)
        return self

    def channel(self, name: str) -> AlipayChannel | WechatPayV3Channel | WechatPayV2Channel:
        """The channel called ``name``."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise ConfigurationError(f"no channel named {name!r} in the configuration")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``$PAYHOOK_CONFIG``, else ``./payhook.toml``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("PAYHOOK_CONFIG") or DEFAULT_CONFIG_PATH)


def _resolve_files(
    section: dict[str, Any], base: Path, where: str, fields: tuple[str, ...]
) -> None:
    """Replace ``<name>_file`` entries by the file's text under ``<name>``."""
    for name in fields:
        key = f"{name}_file"
        if key not in section:
            continue
        if name in section:
            raise ConfigurationError(f"{where}.{key}: give either {name} or {key}, not both")
        section[name] = _read(section.pop(key), base, f"{where}.{key}")
    # platform_certificate_files is a list
    if "platform_certificate_files" in section:
        files = section.pop("platform_certificate_files")
        if not isinstance(files, list):
            raise ConfigurationError(f"{where}.platform_certificate_files: must be a list of paths")
        inline = list(section.get("platform_certificates", []))
        for i, item in enumerate(files):
            inline.append(_read(item, base, f"{where}.platform_certificate_files[{i}]"))
        section["platform_certificates"] = inline


def _read(path: object, base: Path, where: str) -> str:
    if not isinstance(path, str) or not path:
        raise ConfigurationError(f"{where}: must be a file path")
    full = Path(path) if Path(path).is_absolute() else base / path
    try:
        return full.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{where}: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: cannot read {path}: {exc.__class__.__name__}") from None


def _absolute_sqlite(url: str, base: Path) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return url
    if parsed.database == ":memory:" or Path(parsed.database).is_absolute():
        return url
    return parsed.set(database=str((base / parsed.database).resolve())).render_as_string(
        hide_password=False
    )


def _format_error(exc: ValidationError, data: Mapping[str, Any]) -> str:
    err = exc.errors()[0]
    parts: list[str] = []
    for item in err["loc"]:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item in ("alipay", "wechatpay_v3", "wechatpay_v2") and parts and "[" in parts[-1]:
            continue  # the discriminator tag pydantic adds for unions
        else:
            parts.append(str(item))
    key = ".".join(parts) or "(top level)"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] == "union_tag_invalid":
        message = "provider must be one of alipay, wechatpay_v3, wechatpay_v2"
    return f"{key}: {message}"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    require_file: bool = False,
) -> PayhookSettings:
    """Read and validate the configuration.

    Raises:
        ConfigurationError: one line naming the file and the key at fault.
    """
    file = config_path(path)
    label = str(file)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{label}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigurationError(f"{label}: cannot read: {exc.strerror}") from None
    elif require_file or path is not None:
        raise ConfigurationError(f"{label}: config file not found")
    base = file.resolve().parent
    try:
        for i, channel in enumerate(data.get("channels", []) or []):
            if isinstance(channel, dict):
                kind = channel.get("provider")
                kinds: dict[str, type[_Channel]] = {
                    "alipay": AlipayChannel,
                    "wechatpay_v3": WechatPayV3Channel,
                    "wechatpay_v2": WechatPayV2Channel,
                }
                cls = kinds.get(kind if isinstance(kind, str) else "")
                fields = cls._material if cls is not None else ()
                _resolve_files(channel, base, f"channels[{i}]", fields)
        env = os.environ if environ is None else environ
        db_url = env.get("PAYHOOK_DATABASE_URL", data.get("database_url"))
        if isinstance(db_url, str):
            data["database_url"] = _absolute_sqlite(db_url, base)
        saved = _swap_environ(environ)
        try:
            settings = PayhookSettings(**data)
        finally:
            _restore_environ(saved)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{label}: {exc.message}") from None
    except ValidationError as exc:
        raise ConfigurationError(f"{label}: {_format_error(exc, data)}") from None
    _check_key_material(settings, label)
    return settings


def _swap_environ(environ: Mapping[str, str] | None) -> dict[str, str] | None:
    if environ is None:
        return None
    saved = {k: v for k, v in os.environ.items() if k.startswith("PAYHOOK_")}
    for key in saved:
        del os.environ[key]
    os.environ.update({k: v for k, v in environ.items() if k.startswith("PAYHOOK_")})
    return saved


def _restore_environ(saved: dict[str, str] | None) -> None:
    if saved is None:
        return
    for key in [k for k in os.environ if k.startswith("PAYHOOK_")]:
        del os.environ[key]
    os.environ.update(saved)


def _check_key_material(settings: PayhookSettings, label: str) -> None:
    """Parse every key now, so a bad one fails at start, not at the first callback."""
    from payhook._wiring import check_channel

    for i, channel in enumerate(settings.channels):
        try:
            check_channel(channel)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{label}: channels[{i}] ({channel.name}): {exc.message}"
            ) from None
