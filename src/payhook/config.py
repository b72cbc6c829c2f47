"""The configuration file (contract §3): TOML, ``PAYHOOK_<KEY>`` overrides, keys inline or in files.

Only the edges (``cli``, ``PayHook.from_config``) read settings; everything inside payhook takes
plain constructor arguments.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainValidator,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from payhook._settings_base import (
    Duration,
    SettingsModel as _Model,
    duration_validator as _duration_validator,
    parse_duration,
)
from payhook._subscription_rules import (
    validate_events,
    validate_name,
    validate_secret,
    validate_url,
)
from payhook.errors import ConfigurationError, InvalidSubscriptionError
from payhook.providers import ChannelSettings, check_channel, provider_kinds, provider_spec

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_RETRY_SCHEDULE",
    "DispatcherSettings",
    "PayhookSettings",
    "RetentionSettings",
    "SubscriptionSettings",
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


# An event pruned while its provider may still send the callback again would be stored and
# published a second time: Alipay re-sends for about 25 hours, WeChat Pay for about 24.
MIN_EVENTS_RETENTION_S = 2 * 86400.0
# Refunds come up to a year after the payment (WeChat Pay; Alipay up to 12 months). An
# Alipay refund's share is its cumulative refund_fee minus the largest one recorded for
# the trade (contract §9): with the trade's earlier refunds pruned it would count them again.
SAFE_EVENTS_RETENTION_S = 366 * 86400.0


class RetentionSettings(_Model):
    """``[retention]`` (contract §14): how long rows are kept; ``payhook db prune`` applies it
    now, ``serve`` and ``worker`` hourly."""

    refused_callbacks: Duration = 7 * 86400.0
    attempts: Duration = 30 * 86400.0
    events: Duration = 400 * 86400.0

    _durations = _duration_validator("refused_callbacks", "attempts", "events")

    @field_validator("refused_callbacks", "attempts")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: float) -> float:
        if value < MIN_EVENTS_RETENTION_S:
            raise ValueError(
                "must be at least 2d: a provider re-sends a callback for about a day, and a "
                "copy arriving after its event was pruned would be published again"
            )
        return value

    @property
    def refund_risk(self) -> bool:
        """Whether ``events`` is shorter than a year: an Alipay refund arriving after the
        trade's earlier refunds were pruned would get a wrong share (contract §9)."""
        return self.events < SAFE_EVENTS_RETENTION_S


def _channel(value: Any) -> ChannelSettings:
    """One ``[[channels]]`` entry, validated by the settings model of its provider."""
    if isinstance(value, ChannelSettings):
        return value
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "model_type", "Input should be a valid dictionary or object to extract fields from"
        )
    kind = value.get("provider")
    if kind is None:
        raise PydanticCustomError(
            "union_tag_not_found", "Unable to extract tag using discriminator 'provider'"
        )
    if not isinstance(kind, str) or kind not in provider_kinds():
        raise PydanticCustomError("union_tag_invalid", "unknown provider")
    model: type[ChannelSettings] = provider_spec(kind).settings
    return model.model_validate(value)


# A channel's settings model comes from the provider registry, so a provider registered
# after this module was imported is accepted too.
# SerializeAsAny: a dump shows every field of the provider's own model.
Channel = Annotated[SerializeAsAny[ChannelSettings], PlainValidator(_channel)]


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
    retention: RetentionSettings = RetentionSettings()
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

    def channel(self, name: str) -> ChannelSettings:
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
    section: dict[str, Any], base: Path, where: str, model: type[ChannelSettings]
) -> None:
    """Replace ``<name>_file`` entries by the file's text under ``<name>``, and append the
    files of each list in ``model.key_file_lists`` to its tuple of inline values."""
    for name in model.key_files:
        key = f"{name}_file"
        if key not in section:
            continue
        if name in section:
            raise ConfigurationError(f"{where}.{key}: give either {name} or {key}, not both")
        section[name] = _read(section.pop(key), base, f"{where}.{key}")
    for key, name in model.key_file_lists:
        if key not in section:
            continue
        files = section.pop(key)
        if not isinstance(files, list):
            raise ConfigurationError(f"{where}.{key}: must be a list of paths")
        inline = list(section.get(name, []))
        for i, item in enumerate(files):
            inline.append(_read(item, base, f"{where}.{key}[{i}]"))
        section[name] = inline


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
        else:
            parts.append(str(item))
    key = ".".join(parts) or "(top level)"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] == "union_tag_invalid":
        message = f"provider must be one of {', '.join(provider_kinds())}"
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
        channels = data.get("channels")
        for i, channel in enumerate(channels if isinstance(channels, list) else ()):
            kind = channel.get("provider") if isinstance(channel, dict) else None
            if isinstance(kind, str) and kind in provider_kinds():
                _resolve_files(channel, base, f"channels[{i}]", provider_spec(kind).settings)
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
    for i, channel in enumerate(settings.channels):
        try:
            check_channel(channel)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{label}: channels[{i}] ({channel.name}): {exc.message}"
            ) from None
