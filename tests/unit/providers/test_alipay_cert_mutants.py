"""Fixed examples for Alipay certificate mode, from the mutation run (issue 14): the issuer
string behind every cert SN (each RFC 2253 keyword, Java's escapes, the ``OID=#hex`` form of
every string type and DER length form) and the exact refusals of the root bundle.

The issuer strings are written out by hand, as Java's ``X500Principal.getName()`` prints them;
each certificate is built, serialised to PEM and parsed back, as a configured file would be.
"""

from __future__ import annotations

import datetime
import hashlib
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from payhook.errors import ConfigurationError
from payhook.providers.alipay import alipay_cert_sn, alipay_root_cert_sn, load_alipay_cert_mode
from payhook.providers.alipay._cert import _rfc2253, check_alipay_cert_chain

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SERIAL = 4242
A = x509.NameAttribute


def _cert_issued_by(
    *rdns: list[x509.NameAttribute[str]] | list[x509.NameAttribute[bytes]],
) -> x509.Certificate:
    """A certificate whose issuer has these RDNs (in DER order), as read back from PEM."""
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    issuer = x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in rdns])
    built = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([A(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(issuer)
        .public_key(KEY.public_key())
        .serial_number(SERIAL)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    return x509.load_pem_x509_certificate(built.public_bytes(serialization.Encoding.PEM))


def _assert_issuer(cert: x509.Certificate, expected: str) -> None:
    """The issuer renders as ``expected``, and the SN is the MD5 of it and the serial."""
    assert _rfc2253(cert.issuer) == expected
    digest = hashlib.md5(f"{expected}{SERIAL}".encode(), usedforsecurity=False).hexdigest()
    assert alipay_cert_sn(cert) == digest


KEYWORDS = [
    (NameOID.COMMON_NAME, "CN"),
    (NameOID.COUNTRY_NAME, "C"),
    (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    (NameOID.STREET_ADDRESS, "STREET"),
    (NameOID.DOMAIN_COMPONENT, "DC"),
    (NameOID.USER_ID, "UID"),
]


@pytest.mark.parametrize(("oid", "keyword"), KEYWORDS, ids=[k for _, k in KEYWORDS])
def test_each_java_keyword(oid: ObjectIdentifier, keyword: str) -> None:
    """Each attribute Java knows by keyword is written as ``KEYWORD=value``."""
    value = "CN" if oid == NameOID.COUNTRY_NAME else "ab"
    _assert_issuer(_cert_issued_by([A(oid, value)]), f"{keyword}={value}")


def test_full_issuer_in_reverse_order() -> None:
    """RDNs are written last first; a capital X is not escaped."""
    cert = _cert_issued_by(
        [A(NameOID.COUNTRY_NAME, "CN")],
        [A(NameOID.STATE_OR_PROVINCE_NAME, "Zhejiang")],
        [A(NameOID.LOCALITY_NAME, "Hangzhou")],
        [A(NameOID.STREET_ADDRESS, "1 Road")],
        [A(NameOID.ORGANIZATION_NAME, "Ant")],
        [A(NameOID.ORGANIZATIONAL_UNIT_NAME, "Pay")],
        [A(NameOID.COMMON_NAME, "Alipay X")],
        [A(NameOID.DOMAIN_COMPONENT, "alipay")],
        [A(NameOID.USER_ID, "u1")],
    )
    _assert_issuer(
        cert, "UID=u1,DC=alipay,CN=Alipay X,OU=Pay,O=Ant,STREET=1 Road,L=Hangzhou,ST=Zhejiang,C=CN"
    )


ESCAPES = [
    ("nul", "a\0b", "a\\00b"),
    ("capital_x_inside_and_at_both_ends", "XaX", "XaX"),
    ("capital_x_first", "Xa", "Xa"),
    ("capital_x_last", "aX", "aX"),
    ("one_leading_space", " a", "\\ a"),
    ("one_trailing_space", "a ", "a\\ "),
    ("carriage_returns_and_spaces", "\r\r a \r", "\\\r\\\r\\ a\\ \\\r"),
    ("inner_spaces_kept", "a  b", "a  b"),
    ("every_escapee", ',=+<>#;"\\', '\\,\\=\\+\\<\\>\\#\\;\\"\\\\'),
]


@pytest.mark.parametrize(
    ("value", "expected"), [case[1:] for case in ESCAPES], ids=[case[0] for case in ESCAPES]
)
def test_java_escapes(value: str, expected: str) -> None:
    """Java's escapes: specials and NUL anywhere, spaces and CRs only at either end."""
    _assert_issuer(_cert_issued_by([A(NameOID.COMMON_NAME, value)]), f"CN={expected}")


HEX_FORMS = [
    ("utf8_string", A(NameOID.TITLE, "支é"), "2.5.4.12=#0c05e694afc3a9"),
    ("bmp_string", A(NameOID.TITLE, "支é", _ASN1Type.BMPString), "2.5.4.12=#1e04652f00e9"),
    (
        "universal_string",
        A(NameOID.TITLE, "支é", _ASN1Type.UniversalString),
        "2.5.4.12=#1c080000652f000000e9",
    ),
    ("t61_string_latin1", A(NameOID.TITLE, "é", _ASN1Type.T61String), "2.5.4.12=#1401e9"),
    ("t61_string_unencodable", A(NameOID.TITLE, "支", _ASN1Type.T61String), "2.5.4.12=#14013f"),
    ("printable_string", A(NameOID.SERIAL_NUMBER, "12"), "2.5.4.5=#13023132"),
    (
        "bit_string",
        A(NameOID.X500_UNIQUE_IDENTIFIER, b"\x01\x02", _ASN1Type.BitString),
        "2.5.4.45=#0303000102",
    ),
]


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [case[1:] for case in HEX_FORMS],
    ids=[case[0] for case in HEX_FORMS],
)
def test_attributes_without_keyword_are_der_hex(
    attribute: x509.NameAttribute[str], expected: str
) -> None:
    """Other attributes are ``OID=#`` + the hex of tag, length and content, per string type."""
    _assert_issuer(_cert_issued_by([attribute]), expected)


LENGTHS = [
    (1, "01"),
    (127, "7f"),
    (128, "8180"),
    (255, "81ff"),
    (256, "820100"),
]


@pytest.mark.parametrize(("size", "length"), LENGTHS, ids=[str(size) for size, _ in LENGTHS])
def test_der_length_short_and_long_forms(size: int, length: str) -> None:
    """Contents below 128 bytes have a one-byte length; longer ones 0x80 + count, big-endian."""
    cert = _cert_issued_by([A(NameOID.TITLE, "a" * size)])
    _assert_issuer(cert, f"2.5.4.12=#0c{length}{'61' * size}")


def test_multi_valued_rdn_and_mixed_forms() -> None:
    """Attributes of one RDN are joined with ``+``, keyword and ``#hex`` forms side by side."""
    cert = _cert_issued_by(
        [A(NameOID.COUNTRY_NAME, "CN")],
        [A(NameOID.COMMON_NAME, "multi"), A(NameOID.TITLE, "t")],
    )
    rendered = _rfc2253(cert.issuer)
    # In the order the certificate holds them (DER sorts a SET by encoding: title first).
    assert [a.oid for a in cert.issuer.rdns[1]] == [NameOID.TITLE, NameOID.COMMON_NAME]
    assert rendered == "2.5.4.12=#0c0174+CN=multi,C=CN"


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (b"", "alipay_root_cert: holds no PEM certificate"),
        (b"not a pem file", "alipay_root_cert: holds no PEM certificate"),
    ],
    ids=["empty", "no_pem_block"],
)
def test_root_bundle_refusal_names_the_setting(bundle: bytes, message: str) -> None:
    """The refusal of a root bundle without PEM blocks names alipay_root_cert, exactly."""
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        alipay_root_cert_sn(bundle)


# --- chains -----------------------------------------------------------------------------------


def _named(cn: str) -> x509.Name:
    return x509.Name([A(NameOID.COMMON_NAME, cn)])


def _link(subject: str, issuer: str) -> x509.Certificate:
    """A certificate for ``subject`` issued by ``issuer``. One key signs them all, so only the
    names decide which certificate issued which (``verify_directly_issued_by`` checks both)."""
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_named(subject))
        .issuer_name(_named(issuer))
        .public_key(KEY.public_key())
        .serial_number(SERIAL)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )


def _pems(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# root <- c4 <- c3 <- c2 <- c1 <- leaf
ROOT_R = _link("root", "root")
C4 = _link("c4", "root")
C3 = _link("c3", "c4")
C2 = _link("c2", "c3")
C1 = _link("c1", "c2")
LEAF = _link("leaf", "c1")
# A self-signed leaf whose key and name c2 also certified (a cross-certificate).
SELF_LEAF = _link("self", "self")
CROSS = _link("self", "c2")
NOT_CHAINED = "alipay_public_cert does not chain to a certificate of alipay_root_cert"


def test_four_links_are_followed() -> None:
    """Leaf and three intermediates in the public file, the next one in the bundle: accepted
    (the fourth and last check finds the root)."""
    check_alipay_cert_chain(_pems(LEAF, C1, C2, C3), _pems(C4))


def test_a_fifth_link_is_not_followed() -> None:
    """Leaf and four intermediates before the root: refused, the walk stops after four."""
    with pytest.raises(ConfigurationError, match=f"^{NOT_CHAINED}: "):
        check_alipay_cert_chain(_pems(LEAF, C1, C2, C3, C4), _pems(ROOT_R))


def test_the_leaf_is_never_its_own_parent() -> None:
    """A self-signed leaf is not taken as its own intermediate, which would use up a link:
    leaf, cross-certificate and two intermediates reach the root in four checks."""
    check_alipay_cert_chain(_pems(SELF_LEAF, CROSS, C2, C3), _pems(C4))


EXACT_REFUSALS = [
    (
        "chain_public_empty",
        "chain",
        b"",
        _pems(ROOT_R),
        "alipay_public_cert holds no PEM certificate",
    ),
    ("chain_root_empty", "chain", _pems(LEAF), b"", "alipay_root_cert holds no PEM certificate"),
    (
        "chain_public_unparsable",
        "chain",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        _pems(ROOT_R),
        "alipay_public_cert cannot be parsed",
    ),
    (
        "load_public_empty",
        "load",
        b"",
        _pems(ROOT_R),
        "alipay_public_cert: holds no PEM certificate",
    ),
    (
        "load_public_unparsable",
        "load",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        _pems(ROOT_R),
        "alipay_public_cert: cannot be parsed",
    ),
]


@pytest.mark.parametrize(
    ("function", "public_cert", "root", "message"),
    [case[1:] for case in EXACT_REFUSALS],
    ids=[case[0] for case in EXACT_REFUSALS],
)
def test_refusals_name_the_file(
    function: str, public_cert: bytes, root: bytes, message: str
) -> None:
    """Each refusal names the setting it is about, exactly."""
    call = check_alipay_cert_chain if function == "chain" else load_alipay_cert_mode
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        call(public_cert, root)


def test_non_rsa_leaf_refusal_names_the_file() -> None:
    """An EC leaf in certificate mode: the refusal names alipay_public_cert."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_named("ec"))
        .issuer_name(_named("root"))
        .public_key(ec_key.public_key())
        .serial_number(SERIAL)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    message = "alipay_public_cert: does not hold an RSA key"
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        load_alipay_cert_mode(_pems(cert), _pems(ROOT_R))
