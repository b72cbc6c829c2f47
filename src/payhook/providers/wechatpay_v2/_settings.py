"""``provider = "wechatpay_v2"`` channel settings: merchant id, app id and the API v2 key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from payhook.providers._settings import ChannelSettings
from payhook.signing import secret_fingerprint

__all__ = ["WechatPayV2Channel"]


class WechatPayV2Channel(ChannelSettings):
    """A WeChat Pay v2 (XML) merchant."""

    provider: Literal["wechatpay_v2"]
    mch_id: str = Field(min_length=1)
    app_id: str | None = None
    api_key: SecretStr
    # contract §9: the one algorithm notifications may be signed with.
    sign_type: Literal["MD5", "HMAC-SHA256"] = "MD5"
    # Partner mode: the sub_mch_id values accepted (any when unset).
    sub_merchant_ids: tuple[str, ...] | None = Field(default=None, min_length=1)

    @field_validator("api_key")
    @classmethod
    def _key_len(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 32:
            raise ValueError("must be exactly 32 characters (the API v2 key)")
        return value

    def summary(self) -> str:
        """Merchant id, app id, sign type and the API key's fingerprint (never the key)."""
        text = f"mch_id {self.mch_id}" + (f", appid {self.app_id}" if self.app_id else "")
        text += f", sign_type {self.sign_type}"
        if self.sub_merchant_ids is not None:
            text += f", {len(self.sub_merchant_ids)} sub-merchant(s)"
        return text + f", api_key {secret_fingerprint(self.api_key.get_secret_value())}"
