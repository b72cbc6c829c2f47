"""WeChat Pay v2: MD5 / HMAC-SHA256 signed XML payment results, AES-256-ECB encrypted refund
results, the XML SUCCESS / FAIL reply, the channel settings and the simulator."""

from __future__ import annotations

from payhook.providers.wechatpay_v2._adapter import WechatPayV2Provider, wechat_v2_sign
from payhook.providers.wechatpay_v2._settings import WechatPayV2Channel
from payhook.providers.wechatpay_v2._sim import WechatPayV2Simulator, encrypt_req_info
from payhook.providers.wechatpay_v2._spec import SPEC

__all__ = [
    "SPEC",
    "WechatPayV2Channel",
    "WechatPayV2Provider",
    "WechatPayV2Simulator",
    "encrypt_req_info",
    "wechat_v2_sign",
]
