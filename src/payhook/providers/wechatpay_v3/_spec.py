"""How payhook builds a WeChat Pay v3 channel: the key ring from the configured keys, the
adapter, and in certificate-download mode the downloader that keeps the ring current (a
background task, handed the certificate store)."""

from __future__ import annotations

from collections.abc import Callable

from payhook._clock import Clock
from payhook.errors import ConfigurationError
from payhook.providers._base import (
    BackgroundTask,
    ChannelRuntime,
    ProviderContext,
    ProviderSpec,
    Simulator,
)
from payhook.providers.wechatpay_v3._adapter import WechatPayV3Provider
from payhook.providers.wechatpay_v3._certs import PlatformCertificateDownloader
from payhook.providers.wechatpay_v3._keys import WechatPayV3KeyRing
from payhook.providers.wechatpay_v3._map import PROVIDER
from payhook.providers.wechatpay_v3._settings import WechatPayV3Channel
from payhook.providers.wechatpay_v3._sim import WechatPayV3Simulator
from payhook.signing import load_certificates, load_rsa_private_key, load_rsa_public_key

__all__ = ["SPEC", "key_ring", "simulator_serial"]


def key_ring(channel: WechatPayV3Channel, clock: Clock) -> WechatPayV3KeyRing:
    """The verification keys configured for ``channel``."""
    public_keys = {}
    if channel.wechatpay_public_key is not None and channel.wechatpay_public_key_id:
        public_keys[channel.wechatpay_public_key_id] = load_rsa_public_key(
            channel.wechatpay_public_key.get_secret_value(), what="wechatpay_public_key"
        )
    certs = []
    for i, pem in enumerate(channel.platform_certificates):
        certs.extend(load_certificates(pem.get_secret_value(), what=f"platform_certificates[{i}]"))
    return WechatPayV3KeyRing(public_keys=public_keys, certificates=certs, clock=clock)


def _refresher(downloader: PlatformCertificateDownloader) -> Callable[[str], None]:
    def refresh(_serial: str) -> None:
        # The serial comes from an unauthenticated callback: it is not passed on to the log.
        downloader.request_refresh()

    return refresh


def _build(channel: WechatPayV3Channel, context: ProviderContext) -> ChannelRuntime:
    keys = key_ring(channel, context.clock)
    tasks: tuple[BackgroundTask, ...] = ()
    downloader: PlatformCertificateDownloader | None = None
    if channel.merchant_private_key is not None:
        assert channel.merchant_serial_no is not None  # the settings require both
        downloader = PlatformCertificateDownloader(
            channel=channel.name,
            mch_id=channel.mch_id,
            merchant_serial_no=channel.merchant_serial_no,
            merchant_private_key=load_rsa_private_key(
                channel.merchant_private_key.get_secret_value(), what="merchant_private_key"
            ),
            api_v3_key=channel.api_v3_key.get_secret_value().encode(),
            api_base_url=channel.api_base_url,
            keys=keys,
            clock=context.clock,
            store=context.certificates,
        )
        tasks = (downloader,)
    provider = WechatPayV3Provider(
        channel=channel.name,
        mch_id=channel.mch_id,
        api_v3_key=channel.api_v3_key.get_secret_value().encode(),
        keys=keys,
        clock=context.clock,
        app_id=channel.app_id,
        timestamp_tolerance_s=channel.timestamp_tolerance,
        on_unknown_serial=None if downloader is None else _refresher(downloader),
        sub_merchant_ids=channel.sub_merchant_ids,
    )
    return ChannelRuntime(provider=provider, tasks=tasks)


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


def _simulator(channel: WechatPayV3Channel) -> Simulator:
    if channel.simulator_private_key is None:
        raise ConfigurationError(
            f"channel {channel.name!r} has no simulator_private_key_file to sign with"
        )
    private_key = load_rsa_private_key(
        channel.simulator_private_key.get_secret_value(), what="simulator_private_key"
    )
    return WechatPayV3Simulator(
        mch_id=channel.mch_id,
        app_id=channel.app_id,
        api_v3_key=channel.api_v3_key.get_secret_value().encode(),
        private_key=private_key,
        serial=simulator_serial(channel),
    )


def _check(channel: WechatPayV3Channel) -> None:
    if channel.simulator_private_key is not None:
        _simulator(channel)


SPEC: ProviderSpec[WechatPayV3Channel] = ProviderSpec(
    kind="wechatpay_v3",
    event_provider=PROVIDER,
    settings=WechatPayV3Channel,
    build=_build,
    simulator=_simulator,
    check=_check,
    simulated_events=("paid", "refund", "combined"),  # v3 sends nothing for a closed order
)
