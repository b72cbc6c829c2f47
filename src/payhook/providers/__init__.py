"""Inbound adapters: raw notification -> verified, parsed notification -> canonical events.

Each provider is a package (``alipay``, ``wechatpay_v3``, ``wechatpay_v2``) that declares one
:class:`ProviderSpec`; ``_registry`` lists them, and configuration, ``payhook simulate`` and
the OpenAPI document read that list. :func:`register_provider` adds another one.
"""

from __future__ import annotations

from payhook._stores import CertificateStore, StoredCertificate
from payhook.providers._base import (
    BackgroundTask,
    ChannelRuntime,
    Outcome,
    ParsedNotification,
    Provider,
    ProviderContext,
    ProviderSpec,
    RawNotification,
    Reply,
    SimulatedCallback,
    Simulator,
)
from payhook.providers._key_checks import KeyFinding, key_findings, key_summary
from payhook.providers._registry import (
    build_channel,
    build_provider,
    build_simulator,
    check_channel,
    event_providers,
    provider_kinds,
    provider_spec,
    register_provider,
    simulated_events,
    unregister_provider,
)
from payhook.providers._settings import ChannelSettings, KeySlot

__all__ = [
    "BackgroundTask",
    "CertificateStore",
    "ChannelRuntime",
    "ChannelSettings",
    "KeyFinding",
    "KeySlot",
    "Outcome",
    "ParsedNotification",
    "Provider",
    "ProviderContext",
    "ProviderSpec",
    "RawNotification",
    "Reply",
    "SimulatedCallback",
    "Simulator",
    "StoredCertificate",
    "build_channel",
    "build_provider",
    "build_simulator",
    "check_channel",
    "event_providers",
    "key_findings",
    "key_summary",
    "provider_kinds",
    "provider_spec",
    "register_provider",
    "simulated_events",
    "unregister_provider",
]
