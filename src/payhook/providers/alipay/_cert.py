"""Alipay certificate mode: the verifying key from the Alipay public certificate, and cert SNs.

In certificate mode ("公钥证书模式") notifications are verified exactly as in public-key
mode, with the key of the *first* certificate in the Alipay public certificate file
(providers.md §1.3). Alipay names certificates by an SN: the lower-case hex MD5 of the
issuer's RFC 2253 string (Java ``X500Principal.getName()``) followed by the decimal serial.
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509.oid import NameOID, ObjectIdentifier

from payhook.errors import ConfigurationError
from payhook.signing import public_key_of_certificate

__all__ = [
    "alipay_cert_sn",
    "alipay_root_cert_sn",
    "check_alipay_cert_chain",
    "load_alipay_cert_mode",
]

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

# Signature algorithms of the RSA family (sha1WithRSA ...1.5, sha256WithRSA ...1.11, PSS
# ...1.10): the official SDK keeps root certificates whose OID starts with this.
_RSA_FAMILY = "1.2.840.113549.1.1."

# The attribute keywords Java's RFC 2253 rendering knows; any other attribute is written as
# its dotted OID and "#" + hex of the DER value (java.security X500Principal.getName()).
_RFC2253_KEYWORDS: dict[ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
}

# Characters Java escapes with a backslash anywhere in an RFC 2253 value (AVA.java).
_ESCAPEES = frozenset(',=+<>#;"\\')

# ASN.1 universal string tags and how their contents are encoded, for the "#hex" form.
_BIT_STRING = 3
_UTF8_STRING = 12
_STRING_CODECS = {12: "utf-8", 30: "utf-16-be", 28: "utf-32-be"}


def _escape(value: str) -> str:
    out = "".join("\\" + ch if ch in _ESCAPEES else "\\00" if ch == "\0" else ch for ch in value)
    lead = len(out) - len(out.lstrip(" \r"))
    trail = len(out.rstrip(" \r"))
    return "".join("\\" + ch if i < lead or i >= trail else ch for i, ch in enumerate(out))


def _der_hex(attribute: x509.NameAttribute[str | bytes]) -> str:
    value = attribute.value
    # cryptography keeps the ASN.1 string type it parsed; there is no public accessor.
    tag = int(getattr(getattr(attribute, "_type", None), "value", _UTF8_STRING))
    if isinstance(value, bytes):
        # A BIT STRING's contents start with the count of unused bits (none here).
        content = b"\x00" + value if tag == _BIT_STRING else value
    else:
        content = value.encode(_STRING_CODECS.get(tag, "latin-1"), errors="replace")
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return "#" + (bytes([tag]) + length + content).hex()


def _rfc2253(name: x509.Name) -> str:
    rdns = []
    for rdn in reversed(name.rdns):
        parts = []
        for attribute in rdn:
            keyword = _RFC2253_KEYWORDS.get(attribute.oid)
            if keyword is not None and isinstance(attribute.value, str):
                parts.append(f"{keyword}={_escape(attribute.value)}")
            else:
                parts.append(f"{attribute.oid.dotted_string}={_der_hex(attribute)}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def alipay_cert_sn(cert: x509.Certificate) -> str:
    """The Alipay SN of ``cert``: ``md5(issuer RFC 2253 string + decimal serial)``, hex.

    The issuer string is rendered as Java's ``X500Principal.getName()`` does (RDNs in
    reverse order, Java's escaping, ``OID=#hex`` for attributes without a keyword), since
    Alipay's SDKs compute the SN in Java.
    """
    text = _rfc2253(cert.issuer) + str(cert.serial_number)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _pem_certificates(bundle_pem: bytes, what: str) -> list[x509.Certificate | None]:
    """Each PEM block parsed on its own, ``None`` where it cannot be parsed."""
    blocks = _PEM_BLOCK.findall(bundle_pem)
    if not blocks:
        raise ConfigurationError(f"{what} holds no PEM certificate")
    certificates: list[x509.Certificate | None] = []
    for block in blocks:
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            certificates.append(None)
    return certificates


def _is_rsa_family(cert: x509.Certificate) -> bool:
    try:
        oid = cert.signature_algorithm_oid.dotted_string
    except ValueError:
        return False
    return oid.startswith(_RSA_FAMILY)


def alipay_root_cert_sn(bundle_pem: bytes) -> str:
    """The ``alipay_root_cert_sn`` of an Alipay root certificate bundle.

    The SNs of the bundle's RSA-family certificates in file order, joined with ``_``.
    Certificates signed otherwise (SM2, ECDSA) and blocks that cannot be parsed at all
    (the SM2 root trips some parsers) are skipped, as Alipay's SDKs do.

    Raises:
        ConfigurationError: the bundle holds no RSA-family certificate.
    """
    sns = [
        alipay_cert_sn(cert)
        for cert in _pem_certificates(bundle_pem, "alipay_root_cert:")
        if cert is not None and _is_rsa_family(cert)
    ]
    if not sns:
        raise ConfigurationError("alipay_root_cert: holds no RSA certificate")
    return "_".join(sns)


# A leaf, its intermediate and the root: Alipay's chains are three certificates long.
_MAX_CHAIN = 4


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def check_alipay_cert_chain(public_cert_pem: bytes, root_cert_pem: bytes) -> None:
    """Check that the first certificate of ``public_cert_pem`` chains to the root bundle.

    Each link is checked by issuer name and signature (``verify_directly_issued_by``),
    through the intermediates that follow the leaf in the public certificate file, up to
    a certificate of the root bundle, as Alipay's SDKs do (``AntCertificationUtil
    .verifyCertChain``). Validity dates are not checked here: a configuration is loaded
    once, and an expired certificate still names the key Alipay signed with.

    Raises:
        ConfigurationError: no chain leads from the certificate to a root of the bundle;
            the message names both keys.
    """
    public = [c for c in _pem_certificates(public_cert_pem, "alipay_public_cert") if c]
    roots = [c for c in _pem_certificates(root_cert_pem, "alipay_root_cert") if c]
    if not public:
        raise ConfigurationError("alipay_public_cert cannot be parsed")
    current = public[0]
    intermediates = public[1:]
    for _ in range(_MAX_CHAIN):
        if any(_issued_by(current, root) for root in roots):
            return
        parent = next((c for c in intermediates if _issued_by(current, c)), None)
        if parent is None:
            break
        intermediates.remove(parent)
        current = parent
    raise ConfigurationError(
        "alipay_public_cert does not chain to a certificate of alipay_root_cert: "
        "download both files again from the Alipay open platform, for the same environment "
        "(production or sandbox)"
    )


def load_alipay_cert_mode(
    public_cert_pem: bytes, root_cert_pem: bytes
) -> tuple[RSAPublicKey, str, str]:
    """Read the two certificate-mode files.

    Args:
        public_cert_pem: the Alipay public certificate file (``alipayCertPublicKey_RSA2.crt``,
            leaf first, possibly followed by its intermediate).
        root_cert_pem: the Alipay root certificate bundle (``alipayRootCert.crt``).

    Returns:
        The RSA public key of the first certificate in ``public_cert_pem``, that
        certificate's SN (for ``AlipayProvider(alipay_cert_sn=...)``) and the root SN.

    Raises:
        ConfigurationError: a file holds no usable certificate, the key is not RSA, or the
            public certificate does not chain to the root bundle.
    """
    what = "alipay_public_cert:"
    first = _pem_certificates(public_cert_pem, what)[0]
    if first is None:
        raise ConfigurationError(f"{what} cannot be parsed")
    key = public_key_of_certificate(first, what=what)
    root_sn = alipay_root_cert_sn(root_cert_pem)
    check_alipay_cert_chain(public_cert_pem, root_cert_pem)
    return key, alipay_cert_sn(first), root_sn
