"""What every provider is: raw bytes and headers in, canonical event drafts out, and the
:class:`ProviderSpec` that declares one provider to payhook.

Providers never see a Starlette request or a database (stores are handed in through
:class:`ProviderContext`), and only background tasks such as the WeChat Pay certificate
downloader reach the network. Adapters are unit-testable with plain bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from payhook._clock import Clock
from payhook._stores import CertificateStore
from payhook.events import EventDraft
from payhook.providers._settings import ChannelSettings

__all__ = [
    "BackgroundTask",
    "ChannelRuntime",
    "Outcome",
    "ParsedNotification",
    "Provider",
    "ProviderContext",
    "ProviderSpec",
    "RawNotification",
    "Reply",
    "SimulatedCallback",
    "Simulator",
]

SettingsT = TypeVar("SettingsT", bound=ChannelSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawNotification:
    """One inbound HTTP callback exactly as received.

    ``headers`` has lower-case names. ``body`` is the raw body, read once and never parsed
    by anything before the provider has verified it.
    """

    channel: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedNotification:
    """A verified notification and the canonical events it carries.

    ``notification_id`` is the provider's handle for this notification when it has one
    (Alipay ``notify_id``, WeChat Pay v3 envelope ``id``), kept for audit and logs.
    ``order_id`` is for log lines.
    """

    notification_id: str | None
    events: tuple[EventDraft, ...]
    order_id: str | None = None


class Outcome(StrEnum):
    """What payhook decided about a callback; each provider renders it in its own format."""

    ACCEPTED = "accepted"  # stored, or an exact duplicate of something stored
    REFUSED_AUTH = "refused_auth"  # signature, probe, timestamp
    REFUSED_MALFORMED = "refused_malformed"  # malformed, wrong merchant, bad amount
    KEY_MISCONFIGURED = "key_misconfigured"  # authentic but our key cannot decrypt it
    STORAGE_UNAVAILABLE = "storage_unavailable"  # database down: the provider must retry


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """The HTTP answer to the provider."""

    status: int
    body: bytes
    content_type: str | None


class Provider(Protocol):
    """An inbound adapter for one configured channel.

    ``verify`` raises only :class:`payhook.errors.RefusedError` subclasses (refused) or
    :class:`payhook.errors.DecryptionError` (authentic, but our key is wrong), whatever the
    input bytes and headers are.
    """

    kind: str  # the ProviderSpec.kind, e.g. "alipay"
    channel: str

    def verify(self, raw: RawNotification) -> ParsedNotification:
        """Verify ``raw`` and turn it into canonical event drafts."""
        ...

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        """Render ``outcome`` in the provider's own reply format (contract §4)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedCallback:
    """A callback built the way the provider would send it."""

    headers: Mapping[str, str]
    body: bytes


class Simulator(Protocol):
    """Builds provider callbacks signed with a channel's ``simulator_*`` test keys."""

    def build(
        self,
        *,
        order_id: str,
        amount: int,
        event: str,
        refund_amount: int | None,
        now: datetime,
    ) -> SimulatedCallback:
        """Build a callback for ``event`` (one of the spec's ``simulated_events``, usually
        ``paid`` | ``closed`` | ``refund``); amounts in fen.

        Raises:
            ValueError: the event cannot be simulated for this provider, or bad amounts.
        """
        ...


class BackgroundTask(Protocol):
    """Work a channel needs beside the receiver, e.g. refreshing WeChat Pay certificates."""

    async def prepare(self) -> None:
        """Awaited once at start, before callbacks are served; logs its problems, never raises."""
        ...

    async def run(self) -> None:
        """Runs until cancelled; logs and survives its own failures."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderContext:
    """What the wiring hands a provider factory.

    ``certificates`` is where certificates downloaded at run time are kept; None when the
    channel is only being checked (``payhook check-config``), so nothing is persisted.
    """

    clock: Clock
    certificates: CertificateStore | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRuntime:
    """A channel ready to serve: its adapter and the background tasks it needs."""

    provider: Provider
    tasks: tuple[BackgroundTask, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSpec(Generic[SettingsT]):
    """Everything payhook needs to know about one provider; the registry lists these.

    Attributes:
        kind: the ``provider`` value in the configuration, e.g. ``"alipay"``.
        event_provider: the ``data.provider`` of its events, e.g. ``"wechatpay"`` for both
            WeChat Pay versions.
        settings: the channel settings model (``provider: Literal[kind]``).
        build: the adapter and background tasks of one channel. Raises ConfigurationError
            naming the key at fault when key material does not parse.
        simulator: the callback builder of ``payhook simulate``. Raises ConfigurationError
            when the channel has no test key to sign with.
        check: extra checks of ``payhook check-config`` beyond ``build`` (e.g. parse the
            simulator key when one is set).
        simulated_events: the ``payhook simulate --event`` values its simulator builds.
    """

    kind: str
    event_provider: str
    settings: type[SettingsT]
    build: Callable[[SettingsT, ProviderContext], ChannelRuntime]
    simulator: Callable[[SettingsT], Simulator]
    check: Callable[[SettingsT], None] | None = None
    simulated_events: tuple[str, ...] = ("paid", "closed", "refund")
