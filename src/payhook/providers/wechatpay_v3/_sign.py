"""WeChat Pay APIv3 signatures: the signed message, RSA-SHA256 (PKCS#1 v1.5) and the
``Authorization: WECHATPAY2-SHA256-RSA2048 …`` header of merchant requests.

Callbacks and API responses are signed by WeChat Pay over ``timestamp\\nnonce\\nbody\\n``;
merchant requests over ``method\\npath\\ntimestamp\\nnonce\\nbody\\n`` (WeChat Pay 签名生成 /
签名验证, providers.md §2.2).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "PROBE_PREFIX",
    "SIGNATURE_TYPE",
    "authorization_header",
    "decode_signature",
    "random_nonce",
    "request_message",
    "response_message",
    "rsa_sha256_sign",
    "rsa_sha256_verify",
]

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
# WeChat Pay sends a few callbacks with a deliberately wrong signature to check that merchants
# verify; they start with this prefix and are retried with a real signature (providers.md §2.4).
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"

_MAX_SIGNATURE_CHARS = 2048
_NONCE_ALPHABET = string.ascii_uppercase + string.digits


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs in callbacks and API responses: ``timestamp\\nnonce\\nbody\\n``.

    Three lines, each ending in LF, the last one included; ``body`` is the raw body bytes.
    """
    return b"%s\n%s\n%s\n" % (timestamp.encode("ascii"), nonce.encode("ascii"), body)


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a merchant signs in a request: ``method\\npath\\ntimestamp\\nnonce\\nbody\\n``."""
    head = f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def random_nonce(length: int = 32) -> str:
    """A random nonce of upper-case letters and digits, like WeChat Pay's."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def decode_signature(text: str) -> bytes | None:
    """The bytes of a base64 signature header, or ``None`` unless it is canonical base64."""
    if len(text) > _MAX_SIGNATURE_CHARS:
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    # Only the canonical encoding: otherwise unused trailing bits would let several header
    # values carry the same signature.
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def rsa_sha256_sign(private_key: RSAPrivateKey, message: bytes) -> str:
    """Base64 of the SHA256withRSA (PKCS#1 v1.5) signature of ``message``."""
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_sha256_verify(public_key: RSAPublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a SHA256withRSA (PKCS#1 v1.5) signature of ``message``."""
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def authorization_header(
    *,
    method: str,
    path: str,
    body: bytes,
    mch_id: str,
    serial_no: str,
    private_key: RSAPrivateKey,
    timestamp: str,
    nonce: str,
) -> str:
    """The ``Authorization`` header of a merchant request to the WeChat Pay API.

    ``path`` is the absolute path with its query string, exactly as sent.
    """
    signature = rsa_sha256_sign(private_key, request_message(method, path, timestamp, nonce, body))
    return (
        f'{SIGNATURE_TYPE} mchid="{mch_id}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )
