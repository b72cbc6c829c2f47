"""AEAD_AES_256_GCM as WeChat Pay APIv3 uses it for callback resources and downloaded certificates.

WeChat Pay sends ``nonce`` (12 ASCII characters), ``associated_data`` (text, may be empty) and
``ciphertext`` = base64(ciphertext ‖ 16-byte tag); the key is the merchant's APIv3 key as bytes
(providers.md §2.5). ``cryptography``'s ``AESGCM`` expects exactly that layout.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payhook.errors import ConfigurationError, DecryptionError, NotificationError

__all__ = ["AEAD_AES_256_GCM", "aead_aes_gcm_decrypt", "aead_aes_gcm_encrypt"]

AEAD_AES_256_GCM = "AEAD_AES_256_GCM"

_TAG_BYTES = 16
# AESGCM accepts nonces of 8 to 128 bytes; WeChat Pay always uses 12.
_MIN_NONCE, _MAX_NONCE = 8, 128


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise NotificationError(f"{what} is not valid text", reason="malformed") from None


def _cipher(key: bytes) -> AESGCM:
    # 32 bytes in production (AES-256); 16 and 24 only for the SDKs' published test vectors.
    value: object = key  # checked at run time: the key comes from configuration
    if not isinstance(value, bytes) or len(value) not in (16, 24, 32):
        raise ConfigurationError("the AES-GCM key must be 16, 24 or 32 bytes")
    return AESGCM(key)


def _nonce(nonce: str | bytes) -> bytes:
    value = _as_bytes(nonce, "nonce")
    if not _MIN_NONCE <= len(value) <= _MAX_NONCE:
        raise NotificationError("nonce has an invalid length", reason="malformed")
    return value


def aead_aes_gcm_decrypt(
    key: bytes,
    *,
    nonce: str | bytes,
    associated_data: str | bytes,
    ciphertext: str | bytes,
) -> bytes:
    """Decrypt one WeChat Pay ``AEAD_AES_256_GCM`` object.

    Args:
        key: the APIv3 key as bytes (32 bytes; 16 or 24 accepted for test vectors).
        nonce: ``nonce`` as sent (text or bytes).
        associated_data: ``associated_data`` as sent; an empty value means no AAD.
        ciphertext: ``ciphertext`` as sent: standard base64 of ciphertext ‖ tag.

    Returns:
        The plaintext bytes.

    Raises:
        NotificationError: ``ciphertext`` is not base64 or too short, or ``nonce`` is unusable.
        DecryptionError: the tag does not match (wrong key, or tampered data).
        ConfigurationError: ``key`` is not an AES key length.
    """
    cipher = _cipher(key)
    nonce_bytes = _nonce(nonce)
    aad = _as_bytes(associated_data, "associated_data")
    try:
        data = base64.b64decode(_as_bytes(ciphertext, "ciphertext"), validate=True)
    except (binascii.Error, ValueError):
        raise NotificationError("ciphertext is not valid base64", reason="bad_base64") from None
    if len(data) < _TAG_BYTES:
        raise NotificationError("ciphertext is shorter than its tag", reason="malformed")
    try:
        return cipher.decrypt(nonce_bytes, data, aad)
    except InvalidTag:
        raise DecryptionError("AES-GCM tag mismatch: wrong key or altered data") from None


def aead_aes_gcm_encrypt(
    key: bytes,
    *,
    nonce: str | bytes,
    associated_data: str | bytes,
    plaintext: bytes,
) -> str:
    """Encrypt ``plaintext`` the way WeChat Pay does; returns base64(ciphertext ‖ tag).

    Used by the callback simulator and by tests.

    Raises:
        ConfigurationError: ``key`` is not an AES key length.
        NotificationError: ``nonce`` is unusable.
    """
    cipher = _cipher(key)
    data = cipher.encrypt(_nonce(nonce), plaintext, _as_bytes(associated_data, "associated_data"))
    return base64.b64encode(data).decode("ascii")
