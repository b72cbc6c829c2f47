"""``provider = "wechatpay_v3"`` channel settings: WeChat Pay public key and/or platform
certificates, optionally downloaded and refreshed with the merchant API key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from payhook._settings_base import Duration, duration_validator
from payhook.providers._settings import ChannelSettings, KeySlot

__all__ = ["WechatPayV3Channel"]


class WechatPayV3Channel(ChannelSettings):
    """A WeChat Pay APIv3 merchant (public-key mode and/or platform-certificate mode)."""

    key_files = (
        "wechatpay_public_key",
        "merchant_private_key",
        "simulator_private_key",
    )
    key_file_lists = (("platform_certificate_files", "platform_certificates"),)
    key_slots = (
        KeySlot(
            "wechatpay_public_key",
            "public_key",
            "provider",
            own_key_mistake="wechatpay_public_key is your merchant API key's public half; "
            "download the WeChat Pay public key (公钥ID PUB_KEY_ID_…) from the merchant platform",
        ),
        KeySlot(
            "platform_certificates",
            "certificate",
            "provider",
            label="platform certificate",
            own_key_mistake="platform_certificate_files holds your merchant API certificate "
            "(apiclient_cert.pem), not a WeChat Pay platform certificate; download the "
            "platform certificates, or use the WeChat Pay public key (PUB_KEY_ID_…)",
        ),
        KeySlot("merchant_private_key", "private_key", "own", label="merchant key set"),
        KeySlot("simulator_private_key", "private_key", "simulator", label="simulator key set"),
    )

    provider: Literal["wechatpay_v3"]
    mch_id: str = Field(min_length=1)
    app_id: str | None = None
    api_v3_key: SecretStr
    wechatpay_public_key_id: str | None = Field(default=None, pattern=r"^PUB_KEY_ID_\w+$")
    wechatpay_public_key: SecretStr | None = None
    platform_certificates: tuple[SecretStr, ...] = ()
    timestamp_tolerance: Duration = 300.0
    merchant_serial_no: str | None = None
    merchant_private_key: SecretStr | None = None
    api_base_url: str = "https://api.mch.weixin.qq.com"
    # Partner mode: the sub_mchid values accepted (any when unset).
    sub_merchant_ids: tuple[str, ...] | None = Field(default=None, min_length=1)
    simulator_private_key: SecretStr | None = None

    _durations = duration_validator("timestamp_tolerance")

    @field_validator("api_v3_key")
    @classmethod
    def _key_len(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) != 32:
            raise ValueError("must be exactly 32 bytes (the APIv3 key from the merchant platform)")
        return value

    @model_validator(mode="after")
    def _some_key(self) -> WechatPayV3Channel:
        if (self.wechatpay_public_key_id is None) != (self.wechatpay_public_key is None):
            raise ValueError("wechatpay_public_key_id and wechatpay_public_key(_file) go together")
        downloads = self.merchant_serial_no is not None or self.merchant_private_key is not None
        if downloads and (self.merchant_serial_no is None or self.merchant_private_key is None):
            raise ValueError(
                "certificate download needs both merchant_serial_no and merchant_private_key(_file)"
            )
        if self.wechatpay_public_key is None and not self.platform_certificates and not downloads:
            raise ValueError(
                "needs wechatpay_public_key_id + wechatpay_public_key(_file), "
                "platform_certificate_files, or merchant_serial_no + merchant_private_key_file"
            )
        return self

    def summary(self) -> str:
        """Merchant id and the key modes in use."""
        modes = []
        if self.wechatpay_public_key_id:
            modes.append(f"public key {self.wechatpay_public_key_id}")
        if self.platform_certificates:
            modes.append(f"{len(self.platform_certificates)} platform certificate file(s)")
        if self.merchant_serial_no:
            modes.append("certificate download")
        subs = (
            ""
            if self.sub_merchant_ids is None
            else f", {len(self.sub_merchant_ids)} sub-merchant(s)"
        )
        return f"mch_id {self.mch_id}, {', '.join(modes)}{subs}"
