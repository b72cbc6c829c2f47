"""Alipay: ``trade_status_sync`` notifications (RSA2 / RSA, public-key or certificate mode),
their ``success`` / ``fail`` replies, the channel settings and the simulator."""

from __future__ import annotations

from payhook.providers.alipay._adapter import AlipayProvider
from payhook.providers.alipay._cert import (
    alipay_cert_sn,
    alipay_root_cert_sn,
    load_alipay_cert_mode,
)
from payhook.providers.alipay._form import AlipaySimulator, sign_notification
from payhook.providers.alipay._settings import AlipayChannel
from payhook.providers.alipay._spec import SPEC

__all__ = [
    "SPEC",
    "AlipayChannel",
    "AlipayProvider",
    "AlipaySimulator",
    "alipay_cert_sn",
    "alipay_root_cert_sn",
    "load_alipay_cert_mode",
    "sign_notification",
]
