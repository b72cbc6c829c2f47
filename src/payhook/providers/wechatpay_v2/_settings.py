"""``provider = "wechatpay_v2"`` channel settings: merchant id, app id and the API v2 key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from payhook.providers._settings import ChannelSettings

__all__ = ["WechatPayV2Channel"]


class WechatPayV2Channel(ChannelSettings):
    """A WeChat Pay v2 (XML) merchant."""

    provider: Literal["wechatpay_v2"]
    mch_id: str = Field(min_length=1)
    app_id: str | None = None
    api_key: SecretStr

    @field_validator("api_key")
    @classmethod
    def _key_len(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 32:
            raise ValueError("must be exactly 32 characters (the API v2 key)")
        return value

    def summary(self) -> str:
        """Merchant id and app id."""
        return f"mch_id {self.mch_id}" + (f", appid {self.app_id}" if self.app_id else "")
