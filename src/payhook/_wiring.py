"""Turn channel settings into provider adapters and simulators (the config edge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from payhook._clock import Clock, SystemClock
from payhook.config import AlipayChannel, WechatPayV2Channel, WechatPayV3Channel
from payhook.errors import ConfigurationError
from payhook.signing import (
    load_certificates,
    load_rsa_private_key,
    load_rsa_public_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from payhook.providers import Provider, Simulator
    from payhook.providers.wechatpay_v3 import WechatPayV3KeyRing

__all__ = ["build_provider", "build_simulator", "check_channel", "simulator_serial"]

ChannelSettings = AlipayChannel | WechatPayV3Channel | WechatPayV2Channel


def check_channel(channel: ChannelSettings) -> None:
    """Parse every key of ``channel`` (raises ConfigurationError naming the key)."""
    build_provider(channel, clock=SystemClock())
    if getattr(channel, "simulator_private_key", None) is not None:
        build_simulator(channel)


def _alipay(channel: AlipayChannel) -> Provider:
    from payhook.providers.alipay import AlipayProvider, load_alipay_cert_mode

    cert_sn: str | None = None
    if channel.alipay_public_key is not None:
        key = load_rsa_public_key(
            channel.alipay_public_key.get_secret_value(), what="alipay_public_key"
        )
    else:
        assert channel.alipay_public_cert is not None
        assert channel.alipay_root_cert is not None
        key, cert_sn, _root_sn = load_alipay_cert_mode(
            channel.alipay_public_cert.get_secret_value().encode(),
            channel.alipay_root_cert.get_secret_value().encode(),
        )
    return AlipayProvider(
        channel=channel.name,
        app_id=channel.app_id,
        public_key=key,
        seller_id=channel.seller_id,
        alipay_cert_sn=cert_sn,
    )


def v3_key_ring(channel: WechatPayV3Channel, clock: Clock) -> WechatPayV3KeyRing:
    """The verification keys configured for a WeChat Pay v3 channel."""
    from payhook.providers.wechatpay_v3 import WechatPayV3KeyRing

    public_keys = {}
    if channel.wechatpay_public_key is not None and channel.wechatpay_public_key_id:
        public_keys[channel.wechatpay_public_key_id] = load_rsa_public_key(
            channel.wechatpay_public_key.get_secret_value(), what="wechatpay_public_key"
        )
    certs = []
    for i, pem in enumerate(channel.platform_certificates):
        certs.extend(load_certificates(pem.get_secret_value(), what=f"platform_certificates[{i}]"))
    return WechatPayV3KeyRing(public_keys=public_keys, certificates=certs, clock=clock)


def _wechat_v3(
    channel: WechatPayV3Channel,
    clock: Clock,
    keys: WechatPayV3KeyRing | None,
    on_unknown_serial: Callable[[str], None] | None,
) -> Provider:
    from payhook.providers.wechatpay_v3 import WechatPayV3Provider

    if channel.merchant_private_key is not None:
        load_rsa_private_key(
            channel.merchant_private_key.get_secret_value(), what="merchant_private_key"
        )
    return WechatPayV3Provider(
        channel=channel.name,
        mch_id=channel.mch_id,
        api_v3_key=channel.api_v3_key.get_secret_value().encode(),
        keys=keys if keys is not None else v3_key_ring(channel, clock),
        clock=clock,
        app_id=channel.app_id,
        timestamp_tolerance_s=channel.timestamp_tolerance,
        on_unknown_serial=on_unknown_serial,
    )


def _wechat_v2(channel: WechatPayV2Channel) -> Provider:
    from payhook.providers.wechatpay_v2 import WechatPayV2Provider

    return WechatPayV2Provider(
        channel=channel.name,
        mch_id=channel.mch_id,
        app_id=channel.app_id,
        api_key=channel.api_key.get_secret_value(),
    )


def build_provider(
    channel: ChannelSettings,
    *,
    clock: Clock,
    keys: WechatPayV3KeyRing | None = None,
    on_unknown_serial: Callable[[str], None] | None = None,
) -> Provider:
    """The inbound adapter for ``channel``."""
    if isinstance(channel, AlipayChannel):
        return _alipay(channel)
    if isinstance(channel, WechatPayV3Channel):
        return _wechat_v3(channel, clock, keys, on_unknown_serial)
    return _wechat_v2(channel)


def simulator_serial(channel: WechatPayV3Channel) -> str:
    """The ``Wechatpay-Serial`` the simulator signs under: the public-key id, else a cert's."""
    if channel.wechatpay_public_key_id:
        return channel.wechatpay_public_key_id
    for pem in channel.platform_certificates:
        for cert in load_certificates(pem.get_secret_value()):
            return f"{cert.serial_number:X}"
    raise ConfigurationError(
        "simulate needs wechatpay_public_key_id or a platform certificate to name its key"
    )


def build_simulator(channel: ChannelSettings) -> Simulator:
    """The callback simulator for ``channel`` (``payhook simulate``)."""
    if isinstance(channel, WechatPayV2Channel):
        from payhook.providers.wechatpay_v2 import WechatPayV2Simulator

        return WechatPayV2Simulator(
            mch_id=channel.mch_id,
            app_id=channel.app_id,
            api_key=channel.api_key.get_secret_value(),
        )
    if channel.simulator_private_key is None:
        raise ConfigurationError(
            f"channel {channel.name!r} has no simulator_private_key_file to sign with"
        )
    private_key = load_rsa_private_key(
        channel.simulator_private_key.get_secret_value(), what="simulator_private_key"
    )
    if isinstance(channel, AlipayChannel):
        from payhook.providers.alipay import AlipaySimulator

        return AlipaySimulator(
            app_id=channel.app_id, private_key=private_key, seller_id=channel.seller_id
        )
    from payhook.providers.wechatpay_v3 import WechatPayV3Simulator

    return WechatPayV3Simulator(
        mch_id=channel.mch_id,
        app_id=channel.app_id,
        api_v3_key=channel.api_v3_key.get_secret_value().encode(),
        private_key=private_key,
        serial=simulator_serial(channel),
    )
