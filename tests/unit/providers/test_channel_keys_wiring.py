"""The issue 16 channel keys reach the adapters that the provider specs build."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from payhook._clock import SystemClock
from payhook.providers import ProviderContext
from payhook.providers.alipay import SPEC as ALIPAY, AlipayChannel, AlipayProvider
from payhook.providers.wechatpay_v2 import SPEC as V2
from payhook.providers.wechatpay_v2._settings import WechatPayV2Channel
from payhook.providers.wechatpay_v3 import SPEC as V3
from payhook.providers.wechatpay_v3._settings import WechatPayV3Channel
from tests.unit.providers._wechat_v3_support import API_V3_KEY, PUB_KEY_ID, wechat_private_key

ALIPAY_PUBLIC = (
    Path(__file__).parents[2] / "vectors" / "alipay" / "test_alipay_public.pem"
).read_text()
CONTEXT = ProviderContext(clock=SystemClock())


def test_alipay_keys_reach_the_adapter() -> None:
    """sign_types and sub_merchant_ids are passed to the Alipay adapter."""
    channel = AlipayChannel.model_validate(
        {
            "name": "a",
            "provider": "alipay",
            "app_id": "2021000000000001",
            "alipay_public_key": ALIPAY_PUBLIC,
            "sign_types": ["RSA2", "RSA"],
            "sub_merchant_ids": ["2021000000000777"],
        }
    )
    provider = ALIPAY.build(channel, CONTEXT).provider
    assert isinstance(provider, AlipayProvider)
    assert provider.sign_types == {"RSA2", "RSA"}
    assert provider.sub_merchant_ids == {"2021000000000777"}


def test_wechat_v2_keys_reach_the_adapter() -> None:
    """sign_type and sub_merchant_ids are passed to the v2 adapter."""
    channel = WechatPayV2Channel.model_validate(
        {
            "name": "v2",
            "provider": "wechatpay_v2",
            "mch_id": "1",
            "api_key": "k" * 32,
            "sign_type": "HMAC-SHA256",
            "sub_merchant_ids": ["2"],
        }
    )
    provider = V2.build(channel, CONTEXT).provider
    assert "sign_type='HMAC-SHA256'" in repr(provider)
    assert provider._sub_merchant_ids == {"2"}  # type: ignore[attr-defined]


def test_wechat_v3_keys_reach_the_adapter() -> None:
    """sub_merchant_ids is passed to the v3 adapter."""
    public_pem = (
        wechat_private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    channel = WechatPayV3Channel.model_validate(
        {
            "name": "v3",
            "provider": "wechatpay_v3",
            "mch_id": "1",
            "api_v3_key": API_V3_KEY.decode(),
            "wechatpay_public_key_id": PUB_KEY_ID,
            "wechatpay_public_key": public_pem,
            "sub_merchant_ids": ["2"],
        }
    )
    provider = V3.build(channel, CONTEXT).provider
    assert provider._sub_merchant_ids == {"2"}  # type: ignore[attr-defined]
