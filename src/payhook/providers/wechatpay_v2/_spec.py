"""How payhook builds a WeChat Pay v2 channel: the API key both verifies callbacks and signs
simulated ones, so every v2 channel can be simulated. No background tasks."""

from __future__ import annotations

from payhook.providers._base import ChannelRuntime, ProviderContext, ProviderSpec, Simulator
from payhook.providers.wechatpay_v2._adapter import PROVIDER, WechatPayV2Provider
from payhook.providers.wechatpay_v2._settings import WechatPayV2Channel
from payhook.providers.wechatpay_v2._sim import WechatPayV2Simulator

__all__ = ["SPEC"]


def _build(channel: WechatPayV2Channel, _context: ProviderContext) -> ChannelRuntime:
    provider = WechatPayV2Provider(
        channel=channel.name,
        mch_id=channel.mch_id,
        app_id=channel.app_id,
        api_key=channel.api_key.get_secret_value(),
        sign_type=channel.sign_type,
        sub_merchant_ids=channel.sub_merchant_ids,
    )
    return ChannelRuntime(provider=provider)


def _simulator(channel: WechatPayV2Channel) -> Simulator:
    return WechatPayV2Simulator(
        mch_id=channel.mch_id,
        app_id=channel.app_id,
        api_key=channel.api_key.get_secret_value(),
        sign_type=channel.sign_type,
    )


SPEC: ProviderSpec[WechatPayV2Channel] = ProviderSpec(
    kind="wechatpay_v2",
    event_provider=PROVIDER,
    settings=WechatPayV2Channel,
    build=_build,
    simulator=_simulator,
    simulated_events=("paid", "refund"),  # v2 sends no notification for a closed order
)
