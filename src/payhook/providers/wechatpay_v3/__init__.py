"""WeChat Pay APIv3: signed, AES-GCM encrypted JSON callbacks, the 204 / FAIL reply, the
key ring (public keys and platform certificates), the certificate downloader, the channel
settings and the simulator."""

from __future__ import annotations

from payhook.providers.wechatpay_v3._adapter import WechatPayV3Provider
from payhook.providers.wechatpay_v3._certs import (
    CertificateDownloadError,
    PlatformCertificateDownloader,
)
from payhook.providers.wechatpay_v3._keys import WechatPayV3KeyRing
from payhook.providers.wechatpay_v3._settings import WechatPayV3Channel
from payhook.providers.wechatpay_v3._sign import PROBE_PREFIX, SIGNATURE_TYPE
from payhook.providers.wechatpay_v3._sim import WechatPayV3Simulator
from payhook.providers.wechatpay_v3._spec import SPEC

__all__ = [
    "PROBE_PREFIX",
    "SIGNATURE_TYPE",
    "SPEC",
    "CertificateDownloadError",
    "PlatformCertificateDownloader",
    "WechatPayV3Channel",
    "WechatPayV3KeyRing",
    "WechatPayV3Provider",
    "WechatPayV3Simulator",
]
