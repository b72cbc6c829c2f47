"""RSA PKCS#1 v1.5 signatures with SHA-256 or SHA-1: bytes and keys in, bytes or a verdict out.

Alipay's ``sign_type=RSA2`` is SHA256withRSA and ``sign_type=RSA`` is SHA1withRSA, both
RSASSA-PKCS1-v1_5 (providers.md §1.2). Verification never raises on a bad signature: it
answers ``False``, so callers map the verdict to their own error in one place.
"""

from __future__ import annotations

from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = ["RsaDigest", "rsa_sign", "rsa_verify"]

RsaDigest = Literal["sha256", "sha1"]
"""The digests payhook signs and verifies with: ``"sha256"`` (RSA2) or ``"sha1"`` (RSA)."""


def _hash(digest: RsaDigest) -> hashes.HashAlgorithm:
    if digest == "sha256":
        return hashes.SHA256()
    if digest == "sha1":
        # Alipay's legacy sign_type=RSA is SHA1withRSA; payhook must still verify it.
        return hashes.SHA1()  # noqa: S303
    raise ValueError(f"unsupported digest {digest!r}")


def rsa_sign(private_key: RSAPrivateKey, message: bytes, *, digest: RsaDigest = "sha256") -> bytes:
    """Sign ``message`` with RSASSA-PKCS1-v1_5.

    Args:
        private_key: the signer's RSA key.
        message: the exact bytes to sign.
        digest: ``"sha256"`` (Alipay RSA2) or ``"sha1"`` (Alipay RSA).

    Returns:
        The raw signature bytes (not base64).

    Raises:
        ValueError: ``digest`` is not one of the supported names.
    """
    return private_key.sign(message, padding.PKCS1v15(), _hash(digest))


def rsa_verify(
    public_key: RSAPublicKey,
    message: bytes,
    signature: bytes,
    *,
    digest: RsaDigest = "sha256",
) -> bool:
    """Whether ``signature`` is a valid RSASSA-PKCS1-v1_5 signature of ``message``.

    A malformed signature (wrong length, garbage) is simply ``False``; this never raises
    for anything the sender controls.

    Raises:
        ValueError: ``digest`` is not one of the supported names (a programming error).
    """
    algorithm = _hash(digest)
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True
