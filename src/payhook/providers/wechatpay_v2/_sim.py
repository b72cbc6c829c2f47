"""Builds WeChat Pay v2 callbacks for ``payhook simulate``: signed payment results and
AES-256-ECB encrypted refund results, exactly as WeChat Pay sends them (providers.md §3).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import algorithms

from payhook.errors import ConfigurationError
from payhook.events import BEIJING
from payhook.providers._base import SimulatedCallback
from payhook.providers._safe_xml import render_flat_xml
from payhook.providers.wechatpay_v2._adapter import (
    SIGN_TYPES,
    check_api_key,
    ecb,
    refund_key,
    wechat_v2_sign,
)

__all__ = ["WechatPayV2Simulator", "encrypt_req_info"]


class WechatPayV2Simulator:
    """Builds WeChat Pay v2 callbacks the way WeChat Pay sends them, for ``payhook simulate``.

    Ids are derived from the inputs, so the same order simulated twice is the same payment;
    each refund simulated at another ``now`` is a new refund.

    Raises:
        ConfigurationError: ``api_key`` is not 32 ASCII characters or ``sign_type`` unknown.
    """

    __slots__ = ("_api_key", "_app_id", "_mch_id", "_sign_type")

    def __init__(
        self, *, mch_id: str, app_id: str | None, api_key: str, sign_type: str = "MD5"
    ) -> None:
        check_api_key(api_key)
        if sign_type not in SIGN_TYPES:
            raise ConfigurationError("sign_type must be MD5 or HMAC-SHA256")
        self._mch_id = mch_id
        self._app_id = app_id or None
        self._api_key = api_key
        self._sign_type = sign_type

    def __repr__(self) -> str:
        return (
            f"WechatPayV2Simulator(mch_id={self._mch_id!r}, app_id={self._app_id!r}, "
            f"api_key='***', sign_type={self._sign_type!r})"
        )

    def build(
        self,
        *,
        order_id: str,
        amount: int,
        event: str,
        refund_amount: int | None,
        now: datetime,
    ) -> SimulatedCallback:
        """Build a signed payment result (``paid``) or an encrypted refund result (``refund``).

        Raises:
            ValueError: ``closed`` (WeChat Pay v2 has no close notification), an unknown event,
                a negative amount, a refund larger than the order, or a naive ``now``.
        """
        if event == "closed":
            raise ValueError(
                "WeChat Pay v2 sends no notification when an order is closed; "
                "simulate 'paid' or 'refund' instead"
            )
        if event not in ("paid", "refund"):
            raise ValueError(f"unknown event {event!r}: expected 'paid' or 'refund'")
        if amount < 0:
            raise ValueError("amount must not be negative")
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        local = now.astimezone(BEIJING)
        transaction_id = "4200" + _digits(f"{self._mch_id}:{order_id}", 24)
        if event == "paid":
            body = self._payment(order_id, amount, transaction_id, local)
        else:
            refund = amount if refund_amount is None else refund_amount
            if not 0 < refund <= amount:
                raise ValueError("refund_amount must be positive and at most the order amount")
            body = self._refund(order_id, amount, refund, transaction_id, local)
        return SimulatedCallback(headers={"content-type": "text/xml"}, body=body)

    def _common(self, seed: str) -> dict[str, str]:
        fields = {"return_code": "SUCCESS", "return_msg": "OK"}
        if self._app_id is not None:
            fields["appid"] = self._app_id
        fields["mch_id"] = self._mch_id
        fields["nonce_str"] = hashlib.sha256(f"nonce:{seed}".encode()).hexdigest()[:32]
        return fields

    def _payment(self, order_id: str, amount: int, transaction_id: str, local: datetime) -> bytes:
        fields = self._common(f"{order_id}:paid:{local.isoformat()}")
        fields.update(
            bank_type="OTHERS",
            cash_fee=str(amount),
            fee_type="CNY",
            is_subscribe="N",
            openid="o" + hashlib.sha256(f"openid:{order_id}".encode()).hexdigest()[:27],
            out_trade_no=order_id,
            result_code="SUCCESS",
            time_end=local.strftime("%Y%m%d%H%M%S"),
            total_fee=str(amount),
            trade_type="JSAPI",
            transaction_id=transaction_id,
        )
        if self._sign_type != "MD5":
            fields["sign_type"] = self._sign_type
        fields["sign"] = wechat_v2_sign(fields, self._api_key, self._sign_type)
        return render_flat_xml(fields)

    def _refund(
        self, order_id: str, amount: int, refund: int, transaction_id: str, local: datetime
    ) -> bytes:
        seed = f"{self._mch_id}:{order_id}:{refund}:{local.isoformat()}"
        info = {
            "out_refund_no": "RF" + _digits(f"out_refund_no:{seed}", 20),
            "out_trade_no": order_id,
            "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
            "refund_fee": str(refund),
            "refund_id": "5000" + _digits(f"refund_id:{seed}", 25),
            "refund_recv_accout": "支付用户零钱",
            "refund_request_source": "API",
            "refund_status": "SUCCESS",
            "settlement_refund_fee": str(refund),
            "settlement_total_fee": str(amount),
            "success_time": local.strftime("%Y-%m-%d %H:%M:%S"),
            "total_fee": str(amount),
            "transaction_id": transaction_id,
        }
        fields = self._common(f"{order_id}:refund:{seed}")
        fields["req_info"] = encrypt_req_info(render_flat_xml(info, root="root"), self._api_key)
        return render_flat_xml(fields)


def encrypt_req_info(plaintext: bytes, api_key: str) -> str:
    """Encrypt a refund ``<root>`` document the way WeChat Pay does (AES-256-ECB, PKCS#7)."""
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = ecb(refund_key(api_key)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def _digits(seed: str, count: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:count].rjust(count, "0")
