"""Crypto only: bytes and keys in, verdicts out."""

from __future__ import annotations

from payhook.signing._aead import AEAD_AES_256_GCM, aead_aes_gcm_decrypt, aead_aes_gcm_encrypt
from payhook.signing._keys import (
    key_fingerprint,
    load_certificates,
    load_rsa_private_key,
    load_rsa_public_key,
    public_key_of_certificate,
    secret_fingerprint,
)
from payhook.signing._rsa import RsaDigest, rsa_sign, rsa_verify
from payhook.signing._standard import generate_secret, parse_secret, sign

__all__ = [
    "AEAD_AES_256_GCM",
    "RsaDigest",
    "aead_aes_gcm_decrypt",
    "aead_aes_gcm_encrypt",
    "generate_secret",
    "key_fingerprint",
    "load_certificates",
    "load_rsa_private_key",
    "load_rsa_public_key",
    "parse_secret",
    "public_key_of_certificate",
    "rsa_sign",
    "rsa_verify",
    "secret_fingerprint",
    "sign",
]
