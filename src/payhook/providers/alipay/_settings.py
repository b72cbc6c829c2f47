"""``provider = "alipay"`` channel settings: public-key mode or certificate mode."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from payhook.providers._settings import ChannelSettings, KeySlot

__all__ = ["AlipayChannel"]


class AlipayChannel(ChannelSettings):
    """An Alipay merchant app (public-key mode or certificate mode)."""

    key_files = (
        "alipay_public_key",
        "alipay_public_cert",
        "alipay_root_cert",
        "simulator_private_key",
        "app_private_key",
    )
    key_slots = (
        KeySlot(
            "alipay_public_key",
            "public_key",
            "provider",
            own_key_mistake="alipay_public_key is your app's own public key; "
            "paste the Alipay public key from the console",
        ),
        KeySlot(
            "alipay_public_cert",
            "certificate",
            "provider",
            own_key_mistake="alipay_public_cert is your app's own certificate "
            "(appCertPublicKey_<app_id>.crt); give the Alipay public certificate "
            "(alipayCertPublicKey_RSA2.crt) from the console",
        ),
        KeySlot("app_private_key", "private_key", "own", label="app key set"),
        KeySlot("simulator_private_key", "private_key", "simulator", label="simulator key set"),
    )

    provider: Literal["alipay"]
    app_id: str = Field(min_length=1)
    alipay_public_key: SecretStr | None = None
    alipay_public_cert: SecretStr | None = None
    alipay_root_cert: SecretStr | None = None
    seller_id: str | None = None
    # contract §9: RSA2 only unless the channel also allows RSA (SHA1withRSA).
    sign_types: tuple[Literal["RSA2", "RSA"], ...] = Field(default=("RSA2",), min_length=1)
    # Partner mode: the auth_app_id values accepted besides the channel's own app_id.
    sub_merchant_ids: tuple[str, ...] | None = Field(default=None, min_length=1)
    simulator_private_key: SecretStr | None = None
    # contract §11: the app's RSA2 private key (provider queries sign with it).
    app_private_key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> AlipayChannel:
        if self.alipay_public_key is None and self.alipay_public_cert is None:
            raise ValueError(
                "needs alipay_public_key(_file) (public-key mode) "
                "or alipay_public_cert(_file) + alipay_root_cert(_file) (certificate mode)"
            )
        if self.alipay_public_key is not None and self.alipay_public_cert is not None:
            raise ValueError("give either alipay_public_key or alipay_public_cert, not both")
        if self.alipay_public_cert is not None and self.alipay_root_cert is None:
            raise ValueError("certificate mode needs alipay_root_cert(_file) too")
        return self

    def summary(self) -> str:
        """App id, key mode and seller (``check-config`` adds the keys' fingerprints)."""
        mode = "public-key mode" if self.alipay_public_key else "certificate mode"
        extra = f", seller_id {self.seller_id}" if self.seller_id else ""
        if self.sign_types != ("RSA2",):
            extra += f", sign_types {'/'.join(self.sign_types)}"
        if self.sub_merchant_ids is not None:
            extra += f", {len(self.sub_merchant_ids)} sub-merchant(s)"
        return f"app_id {self.app_id}, {mode}{extra}"
