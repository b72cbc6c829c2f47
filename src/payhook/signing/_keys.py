"""Parse key material: PEM (any armour payhook meets) or the bare base64 the consoles show."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payhook.errors import ConfigurationError

__all__ = [
    "load_certificates",
    "load_rsa_private_key",
    "load_rsa_public_key",
    "public_key_of_certificate",
]

_WS = re.compile(rb"\s+")


def _as_bytes(material: str | bytes) -> bytes:
    return material.encode() if isinstance(material, str) else material


def _bare_der(material: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(_WS.sub(b"", material), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{what} is neither PEM nor base64") from None


def load_rsa_public_key(material: str | bytes, *, what: str = "public key") -> RSAPublicKey:
    """An RSA public key from PEM (``PUBLIC KEY``, ``RSA PUBLIC KEY`` or a ``CERTIFICATE``)
    or from bare base64 of the SubjectPublicKeyInfo DER, as the Alipay/WeChat consoles show it.

    Raises:
        ConfigurationError: the material is not an RSA public key.
    """
    data = _as_bytes(material).strip()
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            der = _bare_der(data, what)
            try:
                key = serialization.load_der_public_key(der)
            except ValueError:
                key = x509.load_der_x509_certificate(der).public_key()
    except ConfigurationError:
        raise
    except (ValueError, TypeError):
        raise ConfigurationError(f"{what} cannot be parsed") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{what} is not an RSA key")
    return key


def load_rsa_private_key(material: str | bytes, *, what: str = "private key") -> RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or bare base64 of the DER.

    Raises:
        ConfigurationError: the material is not an unencrypted RSA private key.
    """
    data = _as_bytes(material).strip()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(_bare_der(data, what), password=None)
    except ConfigurationError:
        raise
    except (ValueError, TypeError):
        raise ConfigurationError(f"{what} cannot be parsed") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigurationError(f"{what} is not an RSA key")
    return key


def load_certificates(
    material: str | bytes, *, what: str = "certificate"
) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in file order (a DER file holds one).

    Raises:
        ConfigurationError: no certificate could be read.
    """
    data = _as_bytes(material).strip()
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(_bare_der(data, what))]
    except ConfigurationError:
        raise
    except (ValueError, TypeError):
        raise ConfigurationError(f"{what} cannot be parsed") from None
    if not certs:
        raise ConfigurationError(f"{what} holds no certificate")
    return certs


def public_key_of_certificate(cert: x509.Certificate, *, what: str = "certificate") -> RSAPublicKey:
    """The RSA public key of ``cert``."""
    key = cert.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{what} does not hold an RSA key")
    return key
