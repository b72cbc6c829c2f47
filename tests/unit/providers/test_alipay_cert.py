"""Alipay certificate mode: SNs against confirmed vectors, root-bundle filtering, key loading."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from payhook.errors import ConfigurationError
from payhook.providers.alipay import alipay_cert_sn, alipay_root_cert_sn, load_alipay_cert_mode
from payhook.signing import rsa_verify

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
DATA = json.loads((VECTORS / "vectors.json").read_text("utf-8"))
SN_2019 = DATA["confirmed"]["alipay_cert_sn_gopay_2019"]
SN_CURRENT = DATA["confirmed"]["alipay_cert_sn_gopay_current"]
GOPAY_SYNC = DATA["confirmed"]["alipay_rsa2_sync_response_gopay"]
ROOT = (VECTORS / "gopay" / "alipayRootCert.crt").read_bytes()


def _first_cert(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates((VECTORS / name).read_bytes())[0]


CERT_SNS = [
    (
        "2019_alipay_public_cert",
        "gopay/alipayCertPublicKey_RSA2_2019.crt",
        SN_2019["alipay_cert_sn_of_alipayCertPublicKey_RSA2_crt"],
    ),
    (
        "2019_app_cert",
        "gopay/appCertPublicKey_2019.crt",
        SN_2019["app_cert_sn_of_appCertPublicKey_crt"],
    ),
    ("current_alipay_public_cert", "gopay/alipayPublicCert.crt", SN_CURRENT["alipay_cert_sn"]),
    ("current_app_cert", "gopay/appPublicCert.crt", SN_CURRENT["app_cert_sn"]),
    (
        "java_rfc2253_edge_cases",
        "issuer_edge_cases.crt",
        DATA["java_rfc2253"]["issuer_edge_cases.crt"]["cert_sn"],
    ),
]


@pytest.mark.parametrize(
    ("path", "expected"), [case[1:] for case in CERT_SNS], ids=[case[0] for case in CERT_SNS]
)
def test_cert_sn_matches_confirmed_vectors(path: str, expected: str) -> None:
    """The SN of the first certificate of each file equals the value Alipay's SDKs compute."""
    assert alipay_cert_sn(_first_cert(path)) == expected


def test_issuer_string_is_javas_rfc2253() -> None:
    """Escapes, keyword-less attributes (#hex) and multi-valued RDNs render as Java does."""
    vector = DATA["java_rfc2253"]["issuer_edge_cases.crt"]
    cert = _first_cert("issuer_edge_cases.crt")
    expected = hashlib.md5(
        (vector["issuer_rfc2253"] + vector["serial"]).encode(), usedforsecurity=False
    ).hexdigest()
    assert str(cert.serial_number) == vector["serial"]
    assert alipay_cert_sn(cert) == expected


def test_root_sn_matches_confirmed_vector() -> None:
    """The public Alipay root bundle gives the confirmed root SN (SM2 and ECDSA roots skipped)."""
    assert alipay_root_cert_sn(ROOT) == SN_2019["alipay_root_cert_sn_of_alipayRootCert_crt"]
    assert alipay_root_cert_sn(ROOT) == SN_CURRENT["alipay_root_cert_sn"]


def _cert(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str, serial: int
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "payhook test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _independent_sn(cn: str, serial: int) -> str:
    """The SN spelled out by hand: reversed RDNs of the issuer, then the decimal serial."""
    text = f"CN={cn},O=payhook test,C=CN{serial}"
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


RSA_KEY = serialization.load_pem_private_key(
    (VECTORS / "test_other_private.pem").read_bytes(), password=None
)
assert isinstance(RSA_KEY, rsa.RSAPrivateKey)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_A = _cert(RSA_KEY, "root A", 1001)
EC_ROOT = _cert(EC_KEY, "ec root", 1002)
RSA_B = _cert(RSA_KEY, "root B", 2**70 + 3)
UNPARSABLE = b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"


def test_generated_bundle_keeps_rsa_certificates_in_file_order() -> None:
    """Only RSA-signed certificates count, in file order; EC and unparsable blocks are skipped."""
    bundle = _pem(EC_ROOT) + UNPARSABLE + _pem(RSA_B) + b"\n" + _pem(EC_ROOT) + _pem(RSA_A)
    expected = f"{_independent_sn('root B', 2**70 + 3)}_{_independent_sn('root A', 1001)}"
    assert alipay_root_cert_sn(bundle) == expected


BAD_ROOTS = [
    ("empty", b"", "holds no PEM certificate"),
    ("public_key_only", (VECTORS / "test_alipay_public.pem").read_bytes(), "no PEM certificate"),
    ("only_ec", _pem(EC_ROOT), "holds no RSA certificate"),
    ("only_unparsable", UNPARSABLE, "holds no RSA certificate"),
]


@pytest.mark.parametrize(
    ("bundle", "message"), [case[1:] for case in BAD_ROOTS], ids=[case[0] for case in BAD_ROOTS]
)
def test_unusable_root_bundles_are_configuration_errors(bundle: bytes, message: str) -> None:
    """A root bundle without any RSA certificate is refused at configuration time."""
    with pytest.raises(ConfigurationError, match=message):
        alipay_root_cert_sn(bundle)


def test_load_cert_mode_uses_the_first_certificate() -> None:
    """The key and SN come from the leaf (first) certificate; the root SN from the bundle."""
    public_cert = (VECTORS / "gopay" / "alipayPublicCert.crt").read_bytes()
    key, cert_sn, root_sn = load_alipay_cert_mode(public_cert, ROOT)
    leaf, intermediate = x509.load_pem_x509_certificates(public_cert)
    assert key.public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert key.public_numbers() != intermediate.public_key().public_numbers()  # type: ignore[union-attr]
    assert cert_sn == SN_CURRENT["alipay_cert_sn"]
    assert root_sn == SN_CURRENT["alipay_root_cert_sn"]


def test_cert_mode_key_verifies_a_real_alipay_signature() -> None:
    """The 2019 Alipay public certificate holds the key that signed gopay's sandbox response."""
    public_cert = (VECTORS / "gopay" / "alipayCertPublicKey_RSA2_2019.crt").read_bytes()
    key, cert_sn, _ = load_alipay_cert_mode(public_cert, ROOT)
    assert cert_sn == SN_2019["alipay_cert_sn_of_alipayCertPublicKey_RSA2_crt"]
    signature = base64.b64decode(GOPAY_SYNC["sign"])
    assert rsa_verify(key, GOPAY_SYNC["signed_content"].encode(), signature)


BAD_PUBLIC_CERTS = [
    ("empty", b"", ROOT, "holds no PEM certificate"),
    ("first_unparsable", UNPARSABLE + _pem(RSA_A), ROOT, "cannot be parsed"),
    ("ec_leaf", _pem(EC_ROOT), ROOT, "does not hold an RSA key"),
    ("root_without_rsa", _pem(RSA_A), _pem(EC_ROOT), "holds no RSA certificate"),
]


@pytest.mark.parametrize(
    ("public_cert", "root", "message"),
    [case[1:] for case in BAD_PUBLIC_CERTS],
    ids=[case[0] for case in BAD_PUBLIC_CERTS],
)
def test_load_cert_mode_refusals(public_cert: bytes, root: bytes, message: str) -> None:
    """Unusable certificate-mode files are ConfigurationErrors, never crashes."""
    with pytest.raises(ConfigurationError, match=message):
        load_alipay_cert_mode(public_cert, root)
