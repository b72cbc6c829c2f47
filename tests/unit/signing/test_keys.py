"""Key loading (``payhook.signing._keys``): every armour payhook meets, and clean refusals."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from payhook.errors import ConfigurationError
from payhook.signing import (
    load_certificates,
    load_rsa_private_key,
    load_rsa_public_key,
    public_key_of_certificate,
)

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
PRIVATE_PEM = (VECTORS / "test_alipay_private.pem").read_bytes()
PUBLIC_PEM = (VECTORS / "test_alipay_public.pem").read_bytes()
PRIVATE = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
PUBLIC_NUMBERS = serialization.load_pem_public_key(PUBLIC_PEM).public_numbers()  # type: ignore[union-attr]
GOPAY_CERTS = (VECTORS / "gopay" / "alipayPublicCert.crt").read_bytes()
GOPAY_ROOT = (VECTORS / "gopay" / "alipayRootCert.crt").read_bytes()
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ec_certificate() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec test")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(EC_KEY.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(EC_KEY, hashes.SHA256())
    )


def _spki_der() -> bytes:
    return serialization.load_pem_public_key(PUBLIC_PEM).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pkcs1_public_pem() -> bytes:
    return serialization.load_pem_public_key(PUBLIC_PEM).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )


def _bare_wrapped() -> str:
    text = _b64(_spki_der())
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"


PUBLIC_FORMS = [
    ("spki_pem_bytes", PUBLIC_PEM),
    ("spki_pem_str", PUBLIC_PEM.decode()),
    ("pkcs1_rsa_public_key_pem", _pkcs1_public_pem()),
    ("bare_base64_spki", _b64(_spki_der())),
    ("bare_base64_with_newlines", _bare_wrapped()),
    ("surrounding_whitespace", "  \n" + PUBLIC_PEM.decode() + "\n\n"),
]


@pytest.mark.parametrize(
    "material", [form[1] for form in PUBLIC_FORMS], ids=[f[0] for f in PUBLIC_FORMS]
)
def test_public_key_forms(material: str | bytes) -> None:
    """PEM (SPKI or PKCS#1) and the consoles' bare base64 all give the same key."""
    assert load_rsa_public_key(material).public_numbers() == PUBLIC_NUMBERS


def test_public_key_from_certificate_pem_and_der() -> None:
    """A certificate (PEM, or bare base64 of its DER) yields its RSA public key."""
    cert = x509.load_pem_x509_certificates(GOPAY_CERTS)[0]
    expected = cert.public_key().public_numbers()  # type: ignore[union-attr]
    der = cert.public_bytes(serialization.Encoding.DER)
    assert load_rsa_public_key(GOPAY_CERTS).public_numbers() == expected
    assert load_rsa_public_key(_b64(der)).public_numbers() == expected


def test_console_key_of_the_synthetic_vectors_loads() -> None:
    """The bare base64 SPKI key the Alipay console shows loads as a 2048-bit key."""
    key = load_rsa_public_key(
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtwwoKYVrKeDsgeacReyJlBxwu5bgEzXwAhYivagrzEV9T"
        "rdI+C5euB1MFVmk32G0tNEMlj2S8cJhiAL4dMvvaHbuvfaAG9OO6dVxtUOXkGuKmK5cShg3hlHVoytAvKqnlRzAGv"
        "BSt8RrpD2DXq7FG0ORP3kKg+6OpudcUfAM4WdZcFnVujzwDedbB/aPzErxmU5mADlrBK4UimdBG+td6Bv638a77gR"
        "97RQKh72v3IzT857pInlgh6w+TlF5TOPDBCth7fKxV7NhxumQ3TDVDCbs9eR+R0Nz5bdSmC8um+mOmuzbRNVVhr5Zo"
        "U9ULs3rnZG+JcmDAuwwQhOHGbTAZQIDAQAB"
    )
    assert key.key_size == 2048


BAD_PUBLIC = [
    ("not_base64", "this is not a key!", "neither PEM nor base64"),
    ("base64_but_not_a_key", _b64(b"hello world"), "cannot be parsed"),
    (
        "broken_pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "cannot be parsed",
    ),
    (
        "ec_public_key",
        EC_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "is not an RSA key",
    ),
    (
        "ec_certificate",
        _ec_certificate().public_bytes(serialization.Encoding.PEM),
        "is not an RSA key",
    ),
]


@pytest.mark.parametrize(
    ("material", "message"), [case[1:] for case in BAD_PUBLIC], ids=[case[0] for case in BAD_PUBLIC]
)
def test_bad_public_keys_are_configuration_errors(material: str | bytes, message: str) -> None:
    """Unusable public key material is a ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=message) as info:
        load_rsa_public_key(material, what="alipay_public_key")
    assert info.value.message.startswith("alipay_public_key")


def _private_der(fmt: serialization.PrivateFormat) -> bytes:
    return PRIVATE.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())


PRIVATE_FORMS = [
    ("pkcs8_pem", PRIVATE_PEM),
    (
        "pkcs1_pem",
        PRIVATE.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    ),
    ("bare_base64_pkcs8", _b64(_private_der(serialization.PrivateFormat.PKCS8))),
    ("bare_base64_pkcs1", _b64(_private_der(serialization.PrivateFormat.TraditionalOpenSSL))),
]


@pytest.mark.parametrize(
    "material", [f[1] for f in PRIVATE_FORMS], ids=[f[0] for f in PRIVATE_FORMS]
)
def test_private_key_forms(material: str | bytes) -> None:
    """PKCS#8 and PKCS#1, PEM or bare base64, all give the same private key."""
    key = load_rsa_private_key(material)
    assert key.public_key().public_numbers() == PUBLIC_NUMBERS


BAD_PRIVATE = [
    ("not_base64", "definitely not a key", "neither PEM nor base64"),
    ("base64_but_not_a_key", _b64(b"\x30\x03\x02\x01\x00"), "cannot be parsed"),
    (
        "encrypted_pem",
        PRIVATE.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        ),
        "cannot be parsed",
    ),
    (
        "ec_private_key",
        EC_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "is not an RSA key",
    ),
]


@pytest.mark.parametrize(
    ("material", "message"),
    [case[1:] for case in BAD_PRIVATE],
    ids=[case[0] for case in BAD_PRIVATE],
)
def test_bad_private_keys_are_configuration_errors(material: str | bytes, message: str) -> None:
    """Unusable private key material is a ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=message) as info:
        load_rsa_private_key(material, what="simulator_private_key")
    assert info.value.message.startswith("simulator_private_key")


def test_key_errors_never_echo_the_material() -> None:
    """A refused private key does not appear in the error message or its cause chain."""
    truncated = PRIVATE_PEM[:-80] + b"\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigurationError) as info:
        load_rsa_private_key(truncated)
    secret_line = PRIVATE_PEM.splitlines()[5].decode()
    assert secret_line not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_certificate_bundle_in_file_order() -> None:
    """A PEM bundle yields every certificate, leaf first as in the file."""
    certs = load_certificates(GOPAY_CERTS)
    assert len(certs) == 2
    assert certs[0].subject != certs[1].subject
    assert certs[0].issuer == certs[1].subject


def test_single_der_certificate_as_base64() -> None:
    """A bare base64 DER certificate is one certificate."""
    cert = x509.load_pem_x509_certificates(GOPAY_CERTS)[1]
    certs = load_certificates(_b64(cert.public_bytes(serialization.Encoding.DER)))
    assert certs == [cert]


BAD_CERTS = [
    ("garbage", b"garbage!", "neither PEM nor base64"),
    ("public_key_pem", PUBLIC_PEM, "cannot be parsed"),
    ("base64_not_a_cert", _b64(b"not a certificate"), "cannot be parsed"),
    # One block of Alipay's root bundle (an ECDSA root) cannot be parsed by cryptography:
    # the generic loader refuses the whole bundle; the Alipay root SN parses block by block.
    ("alipay_root_bundle", GOPAY_ROOT, "cannot be parsed"),
]


@pytest.mark.parametrize(
    ("material", "message"), [case[1:] for case in BAD_CERTS], ids=[case[0] for case in BAD_CERTS]
)
def test_bad_certificates_are_configuration_errors(material: bytes | str, message: str) -> None:
    """Unusable certificate material is a ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=message) as info:
        load_certificates(material, what="platform_certificates[0]")
    assert info.value.message.startswith("platform_certificates[0]")


def test_public_key_of_certificate() -> None:
    """The RSA key of an RSA certificate; a ConfigurationError for any other key type."""
    cert = x509.load_pem_x509_certificates(GOPAY_CERTS)[0]
    assert public_key_of_certificate(cert).public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match=r"^the cert does not hold an RSA key"):
        public_key_of_certificate(_ec_certificate(), what="the cert")
