"""The one list of providers. Configuration, ``payhook simulate`` and the OpenAPI document
read it; adding a provider is one package plus one line in :data:`BUILTIN`.

Other providers (a host's own, or a test's toy) join with :func:`register_provider`.
"""

from __future__ import annotations

from typing import Any

from payhook._clock import Clock, SystemClock
from payhook.errors import ConfigurationError
from payhook.providers._base import (
    ChannelRuntime,
    Provider,
    ProviderContext,
    ProviderSpec,
    Simulator,
)
from payhook.providers._key_checks import channel_keys
from payhook.providers._settings import ChannelSettings
from payhook.providers.alipay import SPEC as ALIPAY
from payhook.providers.wechatpay_v2 import SPEC as WECHATPAY_V2
from payhook.providers.wechatpay_v3 import SPEC as WECHATPAY_V3

__all__ = [
    "BUILTIN",
    "build_channel",
    "build_provider",
    "build_simulator",
    "check_channel",
    "event_providers",
    "provider_kinds",
    "provider_spec",
    "register_provider",
    "simulated_events",
    "unregister_provider",
]

BUILTIN: tuple[ProviderSpec[Any], ...] = (ALIPAY, WECHATPAY_V3, WECHATPAY_V2)

_SPECS: dict[str, ProviderSpec[Any]] = {}


def register_provider(spec: ProviderSpec[Any]) -> None:
    """Make ``spec`` known: ``provider = "<spec.kind>"`` channels load, simulate and serve.

    Register before loading the configuration that uses it.

    Raises:
        ConfigurationError: the kind is already registered or its settings model does not
            extend :class:`ChannelSettings`.
    """
    if spec.kind in _SPECS:
        raise ConfigurationError(f"a provider named {spec.kind!r} is already registered")
    if not issubclass(spec.settings, ChannelSettings):
        raise ConfigurationError(f"provider {spec.kind!r}: settings must extend ChannelSettings")
    _SPECS[spec.kind] = spec


def unregister_provider(kind: str) -> None:
    """Forget the provider ``kind`` (tests that registered one clean up with this)."""
    _SPECS.pop(kind, None)


def provider_kinds() -> tuple[str, ...]:
    """The ``provider`` values a channel may have, in registration order."""
    return tuple(_SPECS)


def event_providers() -> tuple[str, ...]:
    """The distinct ``data.provider`` values events may carry, sorted."""
    return tuple(sorted({spec.event_provider for spec in _SPECS.values()}))


def simulated_events() -> tuple[str, ...]:
    """Every ``payhook simulate --event`` value some provider can build, first seen first."""
    return tuple(dict.fromkeys(e for spec in _SPECS.values() for e in spec.simulated_events))


def provider_spec(kind: str) -> ProviderSpec[Any]:
    """The spec of provider ``kind``.

    Raises:
        ConfigurationError: no such provider.
    """
    try:
        return _SPECS[kind]
    except KeyError:
        raise ConfigurationError(f"provider must be one of {', '.join(provider_kinds())}") from None


def build_channel(channel: ChannelSettings, context: ProviderContext) -> ChannelRuntime:
    """The adapter and background tasks of ``channel``."""
    return provider_spec(channel.provider).build(channel, context)


def build_provider(channel: ChannelSettings, *, clock: Clock | None = None) -> Provider:
    """The inbound adapter of ``channel`` alone (its background tasks are not started)."""
    return build_channel(channel, ProviderContext(clock=clock or SystemClock())).provider


def build_simulator(channel: ChannelSettings) -> Simulator:
    """The callback simulator of ``channel`` (``payhook simulate``).

    Raises:
        ConfigurationError: the channel has no test key to sign with.
    """
    return provider_spec(channel.provider).simulator(channel)


def check_channel(channel: ChannelSettings) -> None:
    """Parse every key of ``channel`` now (raises ConfigurationError naming the key)."""
    spec = provider_spec(channel.provider)
    channel_keys(channel)
    spec.build(channel, ProviderContext(clock=SystemClock()))
    if spec.check is not None:
        spec.check(channel)


for _spec in BUILTIN:
    register_provider(_spec)
