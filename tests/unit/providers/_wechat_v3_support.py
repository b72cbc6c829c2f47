"""Test helpers for the WeChat Pay v3 adapter: vectors, keys, a frozen clock, signed callbacks.

Callbacks are built here with ``cryptography`` directly (not with payhook's own helpers), so
the tests check payhook against an independent construction.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from payhook.providers import RawNotification
from payhook.providers.wechatpay_v3 import WechatPayV3KeyRing, WechatPayV3Provider

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors" / "wechatpay_v3"

# The synthetic vectors' merchant, keys and serials (tests/vectors/wechatpay_v3/README.md).
MCH_ID = "1230000109"
APP_ID = "wxd678efh567hg6787"
API_V3_KEY = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"
PUB_KEY_ID = "PUB_KEY_ID_0000000000000024101100397200000006"
CERT_SERIAL = "440024045C4A427599D09BB4E3DE0279F2E813FD"


class FrozenClock:
    """A clock standing still at ``at``; ``sleep`` waits until cancelled (nothing is due)."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.at += timedelta(seconds=seconds)
        self.mono += seconds


def clock_at(unix: int | str) -> FrozenClock:
    """A frozen clock at a unix time."""
    return FrozenClock(datetime.fromtimestamp(int(unix), UTC))


@functools.cache
def vectors() -> dict[str, Any]:
    """``tests/vectors/wechatpay_v3/vectors.json``."""
    data: dict[str, Any] = json.loads((VECTORS_DIR / "vectors.json").read_text("utf-8"))
    return data


@functools.cache
def wechat_private_key() -> rsa.RSAPrivateKey:
    """wechatpay-java's test WeChat Pay private key (signs the synthetic vectors)."""
    key = serialization.load_pem_private_key(
        (VECTORS_DIR / "wechat_pay_private_key.pem").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@functools.cache
def platform_certificate() -> x509.Certificate:
    """A test certificate with serial ``CERT_SERIAL`` around wechatpay-java's test key."""
    return x509.load_pem_x509_certificate(
        (VECTORS_DIR / "wechat_pay_platform_certificate.pem").read_bytes()
    )


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """A fresh 2048-bit test key, one per ``name`` for the whole test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_certificate(
    key: rsa.RSAPrivateKey,
    serial: int,
    *,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A self-signed test certificate."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"payhook test {serial:X}")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def encrypt_resource(
    plaintext: bytes,
    *,
    key: bytes = API_V3_KEY,
    nonce: str = "K8b3Qz1pL0aY",
    aad: str = "transaction",
) -> dict[str, str]:
    """A ``resource`` object encrypted the way WeChat Pay does."""
    ciphertext = AESGCM(key).encrypt(nonce.encode(), plaintext, aad.encode())
    return {
        "original_type": aad,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": aad,
        "nonce": nonce,
    }


def envelope(
    event_type: str, resource: object, *, event_id: str = "EV-TEST-0001"
) -> dict[str, Any]:
    """A callback envelope around ``resource``."""
    return {
        "id": event_id,
        "create_time": "2024-05-20T13:14:06+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "test",
        "resource": resource,
    }


def encrypted_envelope(event_type: str, plain: dict[str, Any], **kwargs: Any) -> bytes:
    """A compact JSON envelope whose resource is ``plain`` encrypted with ``API_V3_KEY``."""
    body = json.dumps(plain, ensure_ascii=False).encode()
    aad = "refund" if event_type.startswith("REFUND") else "transaction"
    doc = envelope(event_type, encrypt_resource(body, aad=aad), **kwargs)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def sign_headers(
    body: bytes,
    *,
    timestamp: int | str,
    nonce: str = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    serial: str = PUB_KEY_ID,
    key: rsa.RSAPrivateKey | None = None,
) -> dict[str, str]:
    """Lower-case ``wechatpay-*`` headers signing ``body`` as WeChat Pay would."""
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = (key or wechat_private_key()).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return {
        "wechatpay-timestamp": str(timestamp),
        "wechatpay-nonce": nonce,
        "wechatpay-serial": serial,
        "wechatpay-signature": base64.b64encode(signature).decode(),
        "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
    }


def raw(headers: dict[str, str], body: bytes, clock: FrozenClock | None = None) -> RawNotification:
    """A ``RawNotification`` for channel ``wx``."""
    at = clock.now() if clock is not None else datetime(2024, 5, 20, tzinfo=UTC)
    return RawNotification(channel="wx", headers=headers, body=body, received_at=at)


def key_ring(clock: FrozenClock, *, certificates: bool = True) -> WechatPayV3KeyRing:
    """The test public key under ``PUB_KEY_ID`` and (optionally) the test certificate."""
    return WechatPayV3KeyRing(
        public_keys={PUB_KEY_ID: wechat_private_key().public_key()},
        certificates=[platform_certificate()] if certificates else (),
        clock=clock,
    )


def provider(clock: FrozenClock, **kwargs: Any) -> WechatPayV3Provider:
    """A provider for the synthetic vectors' merchant, overridable by keyword."""
    settings: dict[str, Any] = {
        "channel": "wx",
        "mch_id": MCH_ID,
        "api_v3_key": API_V3_KEY,
        "keys": key_ring(clock),
        "clock": clock,
        "app_id": APP_ID,
    }
    settings.update(kwargs)
    return WechatPayV3Provider(**settings)


def vector_headers(vector: dict[str, Any], *, mode: str) -> dict[str, str]:
    """A synthetic vector's headers, lower-case, with the serial of ``mode`` (cert | public)."""
    source = vector["headers"]
    headers = {name.lower(): value for name, value in source.items() if "(" not in name}
    label = "platform-cert mode" if mode == "cert" else "public-key mode"
    headers["wechatpay-serial"] = source[f"Wechatpay-Serial ({label})"]
    return headers
