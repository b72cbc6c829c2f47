"""How payhook builds an Alipay channel: adapter from the channel keys, simulator from the
channel's ``simulator_private_key``. No background tasks."""

from __future__ import annotations

from payhook.errors import ConfigurationError
from payhook.providers._base import ChannelRuntime, ProviderContext, ProviderSpec, Simulator
from payhook.providers.alipay._adapter import PROVIDER, AlipayProvider
from payhook.providers.alipay._cert import load_alipay_cert_mode
from payhook.providers.alipay._form import AlipaySimulator
from payhook.providers.alipay._settings import AlipayChannel
from payhook.signing import load_rsa_private_key, load_rsa_public_key

__all__ = ["SPEC"]


def _build(channel: AlipayChannel, _context: ProviderContext) -> ChannelRuntime:
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
    provider = AlipayProvider(
        channel=channel.name,
        app_id=channel.app_id,
        public_key=key,
        seller_id=channel.seller_id,
        alipay_cert_sn=cert_sn,
        sign_types=channel.sign_types,
        sub_merchant_ids=channel.sub_merchant_ids,
    )
    return ChannelRuntime(provider=provider)


def _simulator(channel: AlipayChannel) -> Simulator:
    if channel.simulator_private_key is None:
        raise ConfigurationError(
            f"channel {channel.name!r} has no simulator_private_key_file to sign with"
        )
    private_key = load_rsa_private_key(
        channel.simulator_private_key.get_secret_value(), what="simulator_private_key"
    )
    return AlipaySimulator(
        app_id=channel.app_id,
        private_key=private_key,
        seller_id=channel.seller_id,
        sign_type=channel.sign_types[0],
    )


def _check(channel: AlipayChannel) -> None:
    if channel.simulator_private_key is not None:
        _simulator(channel)


SPEC: ProviderSpec[AlipayChannel] = ProviderSpec(
    kind="alipay",
    event_provider=PROVIDER,
    settings=AlipayChannel,
    build=_build,
    simulator=_simulator,
    check=_check,
)
