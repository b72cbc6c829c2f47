"""Build WeChat Pay APIv3 callbacks the way WeChat Pay sends them (``payhook simulate``).

The envelope is signed with the channel's simulator private key (standing in for WeChat Pay's)
and its resource encrypted with the channel's APIv3 key.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from payhook.errors import ConfigurationError
from payhook.events import BEIJING, to_rfc3339
from payhook.providers._base import SimulatedCallback
from payhook.providers.wechatpay_v3._sign import (
    SIGNATURE_TYPE,
    random_nonce,
    response_message,
    rsa_sha256_sign,
)
from payhook.signing import AEAD_AES_256_GCM, aead_aes_gcm_encrypt

__all__ = ["WechatPayV3Simulator"]


def _digits(seed: str, count: int) -> str:
    # Stable, digit-only ids derived from the order, so re-simulating a payment is the same fact.
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    return str(number)[:count].rjust(count, "0")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class WechatPayV3Simulator:
    """Builds signed, encrypted WeChat Pay v3 payment and refund callbacks for one channel.

    ``paid`` gives a ``TRANSACTION.SUCCESS`` callback and ``refund`` a ``REFUND.SUCCESS`` one.
    WeChat Pay v3 sends no notification when an order is closed, so ``closed`` is refused.

    Args:
        mch_id: the merchant id the callback carries.
        app_id: the ``appid`` of payment callbacks (omitted when ``None``).
        api_v3_key: the channel's 32-byte APIv3 key.
        private_key: the key standing in for WeChat Pay's signing key.
        serial: the ``Wechatpay-Serial`` to send (a ``PUB_KEY_ID_…`` or a certificate serial).

    Raises:
        ConfigurationError: ``api_v3_key`` is not 32 bytes.
    """

    __slots__ = ("_api_v3_key", "_app_id", "_mch_id", "_private_key", "_serial")

    def __init__(
        self,
        *,
        mch_id: str,
        app_id: str | None,
        api_v3_key: bytes,
        private_key: RSAPrivateKey,
        serial: str,
    ) -> None:
        key: object = api_v3_key  # checked at run time: it comes from configuration
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigurationError("api_v3_key must be exactly 32 bytes (AES-256)")
        self._mch_id = mch_id
        self._app_id = app_id
        self._api_v3_key = api_v3_key
        self._private_key = private_key
        self._serial = serial

    def __repr__(self) -> str:
        return (
            f"WechatPayV3Simulator(mch_id={self._mch_id!r}, app_id={self._app_id!r}, "
            f"serial={self._serial!r}, api_v3_key=<hidden>, private_key=<hidden>)"
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
        """A callback for ``event`` (``paid`` | ``refund`` | ``combined``) of ``order_id``;
        amounts in fen.

        A refund without ``refund_amount`` refunds the whole ``amount``. ``combined`` is a
        combined order (合单) ``order_id`` of two paid sub-orders ``<order_id>-1`` and
        ``<order_id>-2`` splitting ``amount`` (at least 2 fen).

        Raises:
            ValueError: ``event`` is ``closed`` (WeChat Pay v3 has no such notification) or
                unknown, an amount is not a positive integer (at least 2 for ``combined``),
                or ``now`` is naive.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if not _positive_int(amount):
            raise ValueError("amount must be a positive integer number of fen")
        local = now.astimezone(BEIJING).replace(microsecond=0)
        transaction_id = "42000" + _digits(f"{self._mch_id}:{order_id}", 23)
        if event == "paid":
            event_type, summary, original_type = "TRANSACTION.SUCCESS", "支付成功", "transaction"
            resource = self._transaction(order_id, transaction_id, amount, local)
        elif event == "refund":
            refund = amount if refund_amount is None else refund_amount
            if not _positive_int(refund) or refund > amount:
                raise ValueError("refund_amount must be a positive integer of at most amount")
            event_type, summary, original_type = "REFUND.SUCCESS", "退款成功", "refund"
            resource = self._refund(order_id, transaction_id, amount, refund, local)
        elif event == "combined":
            if amount < 2:
                raise ValueError("a combined order needs an amount of at least 2 fen")
            event_type, summary, original_type = "TRANSACTION.SUCCESS", "支付成功", "transaction"
            resource = self._combined(order_id, amount, local)
        elif event == "closed":
            raise ValueError(
                "WeChat Pay APIv3 sends no notification when an order is closed; "
                "simulate 'paid' or 'refund' for a wechatpay_v3 channel"
            )
        else:
            raise ValueError(f"unknown event {event!r}: use 'paid', 'refund' or 'combined'")
        nonce = random_nonce(12)
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": to_rfc3339(local),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {
                "original_type": original_type,
                "algorithm": AEAD_AES_256_GCM,
                "ciphertext": aead_aes_gcm_encrypt(
                    self._api_v3_key,
                    nonce=nonce,
                    associated_data=original_type,
                    plaintext=plaintext,
                ),
                "associated_data": original_type,
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(now.timestamp()))
        header_nonce = random_nonce()
        signature = rsa_sha256_sign(
            self._private_key, response_message(timestamp, header_nonce, body)
        )
        headers = {
            "Content-Type": "application/json",
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": header_nonce,
            "Wechatpay-Serial": self._serial,
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
            "Wechatpay-Signature": signature,
        }
        return SimulatedCallback(headers=headers, body=body)

    def _transaction(
        self, order_id: str, transaction_id: str, amount: int, paid_at: datetime
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {"mchid": self._mch_id}
        if self._app_id is not None:
            resource["appid"] = self._app_id
        resource.update(
            {
                "out_trade_no": order_id,
                "transaction_id": transaction_id,
                "trade_type": "JSAPI",
                "trade_state": "SUCCESS",
                "trade_state_desc": "支付成功",
                "bank_type": "OTHERS",
                "attach": "",
                "success_time": to_rfc3339(paid_at),
                "payer": {"openid": "oSimulated" + _digits(order_id, 18)},
                "amount": {
                    "total": amount,
                    "payer_total": amount,
                    "currency": "CNY",
                    "payer_currency": "CNY",
                },
            }
        )
        return resource

    def _combined(self, order_id: str, amount: int, paid_at: datetime) -> dict[str, Any]:
        # The shape of WeChat Pay's 合单支付通知 (providers.md §2.10): the channel is the
        # combining merchant and, here, the merchant of both sub-orders.
        first = amount // 2
        sub_orders = []
        for n, sub_amount in ((1, first), (2, amount - first)):
            sub_id = f"{order_id}-{n}"
            sub_orders.append(
                {
                    "mchid": self._mch_id,
                    "trade_type": "JSAPI",
                    "trade_state": "SUCCESS",
                    "bank_type": "OTHERS",
                    "attach": "",
                    "success_time": to_rfc3339(paid_at),
                    "transaction_id": "42000" + _digits(f"{self._mch_id}:{sub_id}", 23),
                    "out_trade_no": sub_id,
                    "amount": {
                        "total_amount": sub_amount,
                        "payer_amount": sub_amount,
                        "currency": "CNY",
                        "payer_currency": "CNY",
                    },
                }
            )
        resource: dict[str, Any] = {}
        if self._app_id is not None:
            resource["combine_appid"] = self._app_id
        resource.update(
            {
                "combine_mchid": self._mch_id,
                "combine_out_trade_no": order_id,
                "sub_orders": sub_orders,
                "combine_payer_info": {"openid": "oSimulated" + _digits(order_id, 18)},
            }
        )
        return resource

    def _refund(
        self, order_id: str, transaction_id: str, amount: int, refund: int, now: datetime
    ) -> dict[str, Any]:
        seed = f"{order_id}:{refund}:{now.isoformat()}"
        return {
            "mchid": self._mch_id,
            "out_trade_no": order_id,
            "transaction_id": transaction_id,
            "out_refund_no": f"RF-{order_id}-{_digits(seed, 8)}",
            "refund_id": "503" + _digits(seed, 26),
            "refund_status": "SUCCESS",
            "success_time": to_rfc3339(now),
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": amount,
                "refund": refund,
                "payer_total": amount,
                "payer_refund": refund,
            },
        }
