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
from payhook.providers.alipay._cert import check_alipay_cert_chain
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
    public_cert = (VECTORS / "gopay" / "alipayCertPublicKey_RSA2_2019.crt").read_bytes()
    key, cert_sn, root_sn = load_alipay_cert_mode(public_cert, ROOT)
    leaf, intermediate = x509.load_pem_x509_certificates(public_cert)
    assert key.public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert key.public_numbers() != intermediate.public_key().public_numbers()  # type: ignore[union-attr]
    assert cert_sn == SN_2019["alipay_cert_sn_of_alipayCertPublicKey_RSA2_crt"]
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
    ("not_chained", _pem(RSA_A), ROOT, "alipay_public_cert does not chain to .*alipay_root_cert"),
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


def _issued(
    key: rsa.RSAPrivateKey, cn: str, issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )


LEAF_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MIDDLE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MIDDLE = _issued(MIDDLE_KEY, "intermediate", RSA_A, RSA_KEY)
LEAF = _issued(LEAF_KEY, "alipay leaf", MIDDLE, MIDDLE_KEY)
# Same issuer name as MIDDLE, signed by another key: a forged intermediate.
FORGED_MIDDLE = _issued(MIDDLE_KEY, "intermediate", RSA_A, MIDDLE_KEY)


def test_real_alipay_certificate_chains_to_the_real_root() -> None:
    """The 2019 production certificate chains through its intermediate to the root bundle."""
    public_cert = (VECTORS / "gopay" / "alipayCertPublicKey_RSA2_2019.crt").read_bytes()
    check_alipay_cert_chain(public_cert, ROOT)


def test_sandbox_certificate_with_production_root_is_refused() -> None:
    """Issue 16 item 9: a public certificate not issued under the configured root is refused
    at load, with an error naming both keys (gopay's sandbox certificate, production root)."""
    public_cert = (VECTORS / "gopay" / "alipayPublicCert.crt").read_bytes()
    with pytest.raises(ConfigurationError, match="alipay_public_cert does not chain"):
        load_alipay_cert_mode(public_cert, ROOT)


@pytest.mark.parametrize(
    ("public_cert", "root"),
    [
        (_pem(LEAF) + _pem(MIDDLE), _pem(RSA_A)),
        (_pem(LEAF) + _pem(MIDDLE), _pem(EC_ROOT) + UNPARSABLE + _pem(RSA_A)),
        (_pem(MIDDLE), _pem(RSA_A)),
        (_pem(LEAF), _pem(MIDDLE)),
    ],
    ids=["leaf_intermediate_root", "root_among_others", "issued_by_root", "root_is_issuer"],
)
def test_generated_chains_are_accepted(public_cert: bytes, root: bytes) -> None:
    """A leaf signed by an intermediate (in the public file) signed by a root is accepted."""
    check_alipay_cert_chain(public_cert, root)
    key, _, _ = load_alipay_cert_mode(public_cert, root)
    assert (
        key.public_numbers()
        == x509.load_pem_x509_certificates(public_cert)[0].public_key().public_numbers()
    )  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("public_cert", "root"),
    [
        (_pem(LEAF), _pem(RSA_A)),
        (_pem(LEAF) + _pem(FORGED_MIDDLE), _pem(RSA_A)),
        (_pem(LEAF) + _pem(MIDDLE), _pem(RSA_B)),
        (_pem(LEAF), _pem(LEAF)),
        (UNPARSABLE, _pem(RSA_A)),
    ],
    ids=[
        "missing_intermediate",
        "forged_intermediate",
        "other_root",
        "leaf_as_its_own_root",
        "unparsable",
    ],
)
def test_broken_chains_are_configuration_errors(public_cert: bytes, root: bytes) -> None:
    """No chain from the first certificate to the bundle is a ConfigurationError naming keys."""
    with pytest.raises(ConfigurationError, match="alipay_public_cert"):
        check_alipay_cert_chain(public_cert, root)
