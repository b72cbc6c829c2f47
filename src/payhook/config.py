"""The configuration file (contract §3): TOML, ``PAYHOOK_<KEY>`` overrides, keys inline or in files.

Only the edges (``cli``, ``PayHook.from_config``) read settings; everything inside payhook takes
plain constructor arguments.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
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
from payhook.providers import (
    ChannelSettings,
    check_channel,
    key_findings,
    provider_kinds,
    provider_spec,
)

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
    refuse_private_targets: bool = False

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
    # `payhook serve` only: live connections one remote address (IPv6: one /64) may hold;
    # 0 turns the cap off (behind a reverse proxy every connection comes from the proxy).
    max_connections_per_address: int = Field(default=256, ge=0, le=1_000_000)
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

    @model_validator(mode="after")
    def _targets(self) -> PayhookSettings:
        # Link-local and metadata targets are refused by each subscription's own rule.
        if self.dispatcher.refuse_private_targets:
            for i, sub in enumerate(self.subscriptions):
                try:
                    validate_url(sub.url, refuse_private=True)
                except InvalidSubscriptionError as exc:
                    raise ValueError(f"subscriptions[{i}].url: {exc.problem}") from None
        return self

    def key_warnings(self) -> tuple[str, ...]:
        """Key mistakes that do not stop payhook, one line each (e.g. a simulator key that
        cannot sign for the channel's provider key: ``payhook simulate`` would be refused).
        """
        return tuple(
            f"channels[{f.index}] ({self.channels[f.index].name}): {f.message}"
            for f in key_findings(self.channels)
            if f.severity == "warning"
        )

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
) -> dict[str, str]:
    """Replace ``<name>_file`` entries by the file's text under ``<name>``, and append the
    files of each list in ``model.key_file_lists`` to its tuple of inline values.

    Returns:
        For each value read from a file, the setting's label (``alipay_public_key``,
        ``platform_certificates[1]``) -> the file as written and as resolved, so that an
        error about the value names the file it came from.
    """
    sources: dict[str, str] = {}
    for name in model.key_files:
        key = f"{name}_file"
        if key not in section:
            continue
        if name in section:
            raise ConfigurationError(f"{where}.{key}: give either {name} or {key}, not both")
        path = section.pop(key)
        section[name] = _read(path, base, f"{where}.{key}")
        sources[name] = f"{key} {_source(path, base)}"
    for key, name in model.key_file_lists:
        if key not in section:
            continue
        files = section.pop(key)
        if not isinstance(files, list):
            raise ConfigurationError(f"{where}.{key}: must be a list of paths")
        inline = list(section.get(name, []))
        for i, item in enumerate(files):
            inline.append(_read(item, base, f"{where}.{key}[{i}]"))
            sources[f"{name}[{len(inline) - 1}]"] = f"{key}[{i}] {_source(item, base)}"
        section[name] = inline
    return sources


def _source(path: str, base: Path) -> str:
    """``keys/a.pem (/etc/payhook/keys/a.pem)``: the path as written and as resolved."""
    full = Path(path) if Path(path).is_absolute() else base / path
    resolved = str(full.resolve())
    return path if resolved == path else f"{path} ({resolved})"


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
    errors = exc.errors()
    # A misspelt key also makes the key it should have been "missing": the typo is the news.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    parts: list[str] = []
    for item in err["loc"]:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    message = str(err["msg"]).removeprefix("Value error, ")
    if not parts:  # a check across keys names the key in its message
        return message
    key = ".".join(parts)
    if err["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(err["loc"], data)
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] == "union_tag_invalid":
        message = f"provider must be one of {', '.join(provider_kinds())}"
    return f"{key}: {message}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside a field's annotation (``tuple[Model, ...]``, ``Model | None``,
    ``Annotated[...]``), if any."""
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, BaseModel) else None
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _known_keys(model: type[BaseModel]) -> list[str]:
    keys = [field.alias or name for name, field in model.model_fields.items()]
    if issubclass(model, ChannelSettings):
        keys += [f"{name}_file" for name in model.key_files]
        keys += [list_key for list_key, _name in model.key_file_lists]
    return keys


def _did_you_mean(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """`` in channel 'alipay'; did you mean 'alipay_public_key_file'?`` for the unknown key
    at ``loc``, or ``""`` when nothing is close."""
    model: type[BaseModel] | None = PayhookSettings
    node: Any = data
    for part in loc[:-1]:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        field = model.model_fields.get(part) if model is not None else None
        node = node.get(part) if isinstance(node, Mapping) else None
        model = _model_of(field.annotation) if field is not None else None
    if model is None:
        return ""
    where = ""
    if isinstance(node, Mapping):
        name = node.get("name")
        if issubclass(model, ChannelSettings):
            kind = node.get("provider")
            if isinstance(kind, str) and kind in provider_kinds():
                model = provider_spec(kind).settings
            where = f" in channel {name!r}" if isinstance(name, str) else ""
        elif issubclass(model, SubscriptionSettings) and isinstance(name, str):
            where = f" in subscription {name!r}"
    word = str(loc[-1])
    elsewhere = _belongs_elsewhere(word, model)
    if elsewhere:
        return where + elsewhere
    close = difflib.get_close_matches(word, _known_keys(model), n=1, cutoff=0.6)
    return f"{where}; did you mean {close[0]!r}?" if close else where


def _belongs_elsewhere(word: str, model: type[BaseModel]) -> str:
    """A key that is valid in another place: a section of the top level, or a channel of
    another provider."""
    if model is PayhookSettings:
        for name, field in model.model_fields.items():
            nested = _model_of(field.annotation)
            if nested is None:
                continue
            known = _known_keys(nested)
            if nested is ChannelSettings:
                known += [
                    k
                    for kind in provider_kinds()
                    for k in _known_keys(provider_spec(kind).settings)
                ]
            if word in known:
                table = f"[[{name}]]" if get_origin(field.annotation) is tuple else f"[{name}]"
                return f" here; it belongs under {table}"
    if issubclass(model, ChannelSettings):
        others = [
            kind for kind in provider_kinds() if word in _known_keys(provider_spec(kind).settings)
        ]
        if others:
            return f"; it is a key of {', '.join(others)} channels"
    return ""


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
    sources: dict[int, dict[str, str]] = {}
    try:
        channels = data.get("channels")
        for i, channel in enumerate(channels if isinstance(channels, list) else ()):
            kind = channel.get("provider") if isinstance(channel, dict) else None
            if isinstance(kind, str) and kind in provider_kinds():
                model = provider_spec(kind).settings
                sources[i] = _resolve_files(channel, base, f"channels[{i}]", model)
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
    _check_key_material(settings, label, sources)
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


def _check_key_material(
    settings: PayhookSettings, label: str, sources: Mapping[int, Mapping[str, str]]
) -> None:
    """Parse every key now, so a bad one fails at start, not at the first callback; then
    refuse a provider key that is the public half of one of our own private keys."""
    for i, channel in enumerate(settings.channels):
        try:
            check_channel(channel)
        except ConfigurationError as exc:
            message = _name_source(exc.message, sources.get(i, {}))
            raise ConfigurationError(
                f"{label}: channels[{i}] ({channel.name}): {message}"
            ) from None
    for finding in key_findings(settings.channels):
        if finding.severity == "error":
            name = settings.channels[finding.index].name
            raise ConfigurationError(
                f"{label}: channels[{finding.index}] ({name}): {finding.message}"
            )


def _name_source(message: str, sources: Mapping[str, str]) -> str:
    """``alipay_public_key: …`` -> ``alipay_public_key_file keys/a.pem (/abs/keys/a.pem): …``
    when the value was read from that file."""
    for key in sorted(sources, key=len, reverse=True):
        if message.startswith(key) and message[len(key) : len(key) + 1] in (":", " "):
            return sources[key] + message[len(key) :]
    return message
