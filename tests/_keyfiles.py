"""Real RSA keys and certificates written to a test's folder, and configurations using them.

Generating a 2048-bit key takes a while: a few keys are made once per process and reused.
"""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "API_V2_KEY",
    "API_V3_KEY",
    "b64",
    "bare_base64",
    "certificate",
    "pem_body_lines",
    "private_pem",
    "public_pem",
    "rsa_key",
    "write",
]

API_V3_KEY = "0123456789abcdef0123456789abcdef"
API_V2_KEY = "192006250b4c09247ec02edce69f6a2d"


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """The test key called ``name`` (the same object for the same name in one process)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def bare_base64(pem: str) -> str:
    """The PEM's body on one line, as the Alipay and WeChat Pay consoles show a key."""
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def certificate(
    key: rsa.RSAPrivateKey,
    *,
    issuer_key: rsa.RSAPrivateKey | None = None,
    subject: str = "test",
    issuer: str | None = None,
    serial: int = 0x5A1B2C3D,
    ca: bool = False,
) -> str:
    """A PEM certificate for ``key``, self-signed unless ``issuer_key`` is given."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or subject)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def write(folder: Path, name: str, text: str) -> str:
    """Write ``text`` to ``folder/keys/name``; returns the relative path ``keys/name``."""
    (folder / "keys").mkdir(exist_ok=True)
    (folder / "keys" / name).write_text(text)
    return f"keys/{name}"


def pem_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM (what must never appear in output)."""
    return [line for line in pem.splitlines() if line and "-----" not in line]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
