"""Key material of the wrong kind is named as such (a private key where a public key belongs
and the reverse), and keys are told apart by fingerprints that reveal nothing."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from payhook.errors import ConfigurationError
from payhook.signing import (
    key_fingerprint,
    load_certificates,
    load_rsa_private_key,
    load_rsa_public_key,
    secret_fingerprint,
)
from tests._keyfiles import bare_base64, certificate, private_pem, public_pem, rsa_key


def _key() -> RSAPrivateKey:
    return rsa_key("mixups")


def _pkcs1_private_pem() -> str:
    return (
        _key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _secret_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and "-----" not in line]


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("pkcs8", "holds a private key (BEGIN PRIVATE KEY), not a public key"),
        ("pkcs1", "holds a private key (BEGIN RSA PRIVATE KEY), not a public key"),
        ("bare", "holds a private key (bare base64), not a public key"),
    ],
)
def test_private_key_given_as_public_key(form: str, expected: str) -> None:
    """Said plainly, without echoing the private key."""
    pem = {"pkcs8": private_pem(_key()), "pkcs1": _pkcs1_private_pem()}.get(form)
    material = pem if pem is not None else bare_base64(private_pem(_key()))
    with pytest.raises(ConfigurationError) as info:
        load_rsa_public_key(material, what="alipay_public_key")
    assert info.value.message == f"alipay_public_key: {expected}"
    for line in _secret_lines(private_pem(_key())) + _secret_lines(_pkcs1_private_pem()):
        assert line not in info.value.message


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("public", "holds a public key (BEGIN PUBLIC KEY), not a private key"),
        ("certificate", "holds a certificate (BEGIN CERTIFICATE), not a private key"),
        ("bare-public", "holds a public key (bare base64), not a private key"),
    ],
)
def test_public_key_given_as_private_key(form: str, expected: str) -> None:
    material = {
        "public": public_pem(_key()),
        "certificate": certificate(_key()),
        "bare-public": bare_base64(public_pem(_key())),
    }[form]
    with pytest.raises(ConfigurationError) as info:
        load_rsa_private_key(material, what="app_private_key")
    assert info.value.message == f"app_private_key: {expected}"


def test_encrypted_private_key_says_how_to_decrypt() -> None:
    pem = _key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(ConfigurationError, match=r"^app_private_key: the private key is encrypted"):
        load_rsa_private_key(pem, what="app_private_key")


@pytest.mark.parametrize("form", ["private", "public"])
def test_key_given_as_certificate(form: str) -> None:
    material = private_pem(_key()) if form == "private" else public_pem(_key())
    with pytest.raises(ConfigurationError) as info:
        load_certificates(material, what="platform_certificates[0]")
    assert info.value.message.startswith(
        f"platform_certificates[0]: holds a {form} key (BEGIN {form.upper()} KEY), "
        "not a certificate"
    )


def test_fingerprint_is_the_same_for_every_form_of_a_key() -> None:
    """Private key, public key PEM, bare base64 and certificate: one fingerprint, which is
    the SHA-256 of the SubjectPublicKeyInfo DER, 16 hex digits; another key has another."""
    key = _key()
    der = base64.b64decode(bare_base64(public_pem(key)))
    expected = "SHA256:" + hashlib.sha256(der).hexdigest()[:16]
    assert key_fingerprint(key) == expected
    assert key_fingerprint(load_rsa_public_key(public_pem(key))) == expected
    assert key_fingerprint(load_rsa_public_key(bare_base64(public_pem(key)))) == expected
    assert key_fingerprint(load_rsa_public_key(certificate(key))) == expected
    assert key_fingerprint(rsa_key("another")) != expected


def test_secret_fingerprint_reveals_nothing_usable() -> None:
    """A shared key's fingerprint: stable, short, and neither the key nor its plain hash."""
    secret = "192006250b4c09247ec02edce69f6a2d"
    fingerprint = secret_fingerprint(secret)
    assert re.fullmatch(r"SHA256d:[0-9a-f]{8}", fingerprint)
    assert fingerprint == secret_fingerprint(secret)
    assert fingerprint != secret_fingerprint(secret[:-1] + "e")
    assert secret[:8] not in fingerprint
    assert hashlib.sha256(secret.encode()).hexdigest()[:8] not in fingerprint
