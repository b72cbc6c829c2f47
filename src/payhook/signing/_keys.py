"""Parse key material: PEM (any armour payhook meets) or the bare base64 the consoles show."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payhook.errors import ConfigurationError

__all__ = [
    "key_fingerprint",
    "load_certificates",
    "load_rsa_private_key",
    "load_rsa_public_key",
    "public_key_of_certificate",
    "secret_fingerprint",
]

_WS = re.compile(rb"\s+")
_ARMOUR = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_FINGERPRINT_HEX = 16


def key_fingerprint(key: RSAPublicKey | RSAPrivateKey) -> str:
    """``SHA256:`` and the first 16 hex digits of the SHA-256 of the SubjectPublicKeyInfo
    DER of ``key`` (of its public half for a private key): safe to print and log, the same
    for a key in any form (PEM, bare base64, inside a certificate), and computable with
    ``openssl pkey -pubin -in key.pem -outform DER | sha256sum``."""
    public = key.public_key() if isinstance(key, RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()[:_FINGERPRINT_HEX]


def secret_fingerprint(secret: str) -> str:
    """``SHA256d:`` and 8 hex digits of SHA-256 over the SHA-256 of ``secret`` (a shared key
    such as the WeChat Pay v2 API key): tells two keys apart in logs and ``check-config``
    without letting the key be read back, and with too few digits to confirm a guess of it
    with any certainty."""
    inner = hashlib.sha256(secret.encode("utf-8")).digest()
    return "SHA256d:" + hashlib.sha256(inner).hexdigest()[:8]


def _as_bytes(material: str | bytes) -> bytes:
    return material.encode() if isinstance(material, str) else material


def _armour(data: bytes) -> str:
    """The label of the first PEM block (``PUBLIC KEY``, ``RSA PRIVATE KEY``...), or ``""``."""
    match = _ARMOUR.search(data)
    return match.group(1).decode("ascii") if match else ""


def _bare_der(material: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(_WS.sub(b"", material), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{what}: neither PEM nor base64") from None


def _der_kind(der: bytes) -> str:
    """What a DER blob that is not the expected thing holds: "a private key", "a public key",
    "a certificate" or ""."""
    for kind, parse in (
        ("a private key", lambda d: serialization.load_der_private_key(d, password=None)),
        ("a public key", serialization.load_der_public_key),
        ("a certificate", x509.load_der_x509_certificate),
    ):
        try:
            parse(der)
        except (ValueError, TypeError):
            continue
        return kind
    return ""


def _is_private(armour: str) -> bool:
    return armour.endswith("PRIVATE KEY")


def load_rsa_public_key(material: str | bytes, *, what: str = "public key") -> RSAPublicKey:
    """An RSA public key from PEM (``PUBLIC KEY``, ``RSA PUBLIC KEY`` or a ``CERTIFICATE``)
    or from bare base64 of the SubjectPublicKeyInfo DER, as the Alipay/WeChat consoles show it.

    Raises:
        ConfigurationError: the material is not an RSA public key; the message starts with
            ``what`` and says what was found instead (a private key, damaged PEM...), never
            the material itself.
    """
    data = _as_bytes(material).strip()
    armour = _armour(data)
    key: object
    if _is_private(armour):
        raise ConfigurationError(f"{what}: holds a private key (BEGIN {armour}), not a public key")
    try:
        if armour == "CERTIFICATE":
            key = x509.load_pem_x509_certificate(data).public_key()
        elif armour:
            key = serialization.load_pem_public_key(data)
        else:
            der = _bare_der(data, what)
            try:
                key = serialization.load_der_public_key(der)
            except ValueError:
                try:
                    key = x509.load_der_x509_certificate(der).public_key()
                except ValueError:
                    if _der_kind(der) == "a private key":
                        raise ConfigurationError(
                            f"{what}: holds a private key (bare base64), not a public key"
                        ) from None
                    raise
    except ConfigurationError:
        raise
    except (ValueError, TypeError):
        found = f"a BEGIN {armour} block" if armour else "base64"
        raise ConfigurationError(
            f"{what}: not a {'PEM ' if armour else ''}public key ({found} that cannot be parsed)"
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{what}: is not an RSA key")
    return key


def load_rsa_private_key(material: str | bytes, *, what: str = "private key") -> RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or bare base64 of the DER.

    Raises:
        ConfigurationError: the material is not an unencrypted RSA private key; the message
            starts with ``what`` and never shows the material.
    """
    data = _as_bytes(material).strip()
    armour = _armour(data)
    if armour and not _is_private(armour):
        kind = "a certificate" if "CERTIFICATE" in armour else "a public key"
        raise ConfigurationError(f"{what}: holds {kind} (BEGIN {armour}), not a private key")
    if armour == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data:
        raise ConfigurationError(
            f"{what}: the private key is encrypted and cannot be parsed; "
            "give it unencrypted (openssl pkey -in key.pem -out plain.pem)"
        )
    try:
        if armour:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            der = _bare_der(data, what)
            try:
                key = serialization.load_der_private_key(der, password=None)
            except ValueError:
                kind = _der_kind(der)
                if kind:
                    raise ConfigurationError(
                        f"{what}: holds {kind} (bare base64), not a private key"
                    ) from None
                raise
    except ConfigurationError:
        raise
    except (ValueError, TypeError):
        found = f"a BEGIN {armour} block" if armour else "base64"
        raise ConfigurationError(
            f"{what}: not a {'PEM ' if armour else ''}private key ({found} that cannot be parsed)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigurationError(f"{what}: is not an RSA key")
    return key


def load_certificates(
    material: str | bytes, *, what: str = "certificate"
) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in file order (a DER file holds one).

    Raises:
        ConfigurationError: no certificate could be read.
    """
    data = _as_bytes(material).strip()
    armour = _armour(data)
    if armour and "CERTIFICATE" not in armour:
        kind = "a private key" if _is_private(armour) else "a public key"
        raise ConfigurationError(
            f"{what}: holds {kind} (BEGIN {armour}), not a certificate; it cannot be parsed as one"
        )
    try:
        if armour:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(_bare_der(data, what))]
    except ConfigurationError:
        raise
    except (ValueError, TypeError):
        found = f"a BEGIN {armour} block" if armour else "base64"
        raise ConfigurationError(
            f"{what}: not a {'PEM ' if armour else ''}certificate ({found} that cannot be parsed)"
        ) from None
    if not certs:
        raise ConfigurationError(f"{what}: holds no certificate")
    return certs


def public_key_of_certificate(cert: x509.Certificate, *, what: str = "certificate") -> RSAPublicKey:
    """The RSA public key of ``cert``."""
    key = cert.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{what} does not hold an RSA key")
    return key
