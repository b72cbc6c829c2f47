"""AEAD_AES_256_GCM helpers: the wechatpay-java and wechatpay-go vectors, errors, round trips."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, strategies as st

from payhook.errors import ConfigurationError, DecryptionError, NotificationError
from payhook.signing import aead_aes_gcm_decrypt, aead_aes_gcm_encrypt

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "wechatpay_v3" / "vectors.json").read_text(
        "utf-8"
    )
)["confirmed"]
JAVA_MESSAGE = VECTORS["wx_v3_aesgcm_wechatpay_java_message"]
JAVA_CERT = VECTORS["wx_v3_aesgcm_wechatpay_java_certificate_download"]
GO_UTILS = VECTORS["wx_v3_aesgcm_wechatpay_go_utils"]
KEY = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"


def _decrypt(vector: dict[str, Any]) -> bytes:
    return aead_aes_gcm_decrypt(
        vector["key"].encode(),
        nonce=vector["nonce"],
        associated_data=vector["associated_data"],
        ciphertext=vector["ciphertext_b64"],
    )


@pytest.mark.parametrize(
    "vector", [JAVA_MESSAGE, GO_UTILS], ids=["wechatpay-java-message", "wechatpay-go-utils-16-byte"]
)
def test_confirmed_plaintext_vectors(vector: dict[str, Any]) -> None:
    """The published SDK vectors decrypt to their published plaintexts."""
    assert _decrypt(vector).decode() == vector["plaintext"]


def test_wechatpay_java_certificate_download_vector() -> None:
    """The wechatpay-java certificate download decrypts to the published PEM certificate."""
    plaintext = _decrypt(JAVA_CERT)
    assert hashlib.sha256(plaintext).hexdigest() == JAVA_CERT["plaintext_sha256"]
    cert = x509.load_pem_x509_certificate(plaintext)
    assert f"{cert.serial_number:X}" == JAVA_CERT["cert_serial_hex"]
    assert cert.subject.rfc4514_string() == JAVA_CERT["cert_subject"]


@pytest.mark.parametrize(
    "vector", [JAVA_MESSAGE, GO_UTILS], ids=["wechatpay-java-message", "wechatpay-go-utils"]
)
def test_encrypt_reproduces_the_vectors(vector: dict[str, Any]) -> None:
    """Encrypting the plaintext with the vector's nonce gives the vector's ciphertext."""
    assert (
        aead_aes_gcm_encrypt(
            vector["key"].encode(),
            nonce=vector["nonce"],
            associated_data=vector["associated_data"],
            plaintext=vector["plaintext"].encode(),
        )
        == vector["ciphertext_b64"]
    )


def test_empty_associated_data_is_no_associated_data() -> None:
    """associated_data="" decrypts what was encrypted without AAD."""
    data = base64.b64encode(AESGCM(KEY).encrypt(b"0123456789ab", b"hello", None)).decode()
    assert aead_aes_gcm_decrypt(KEY, nonce="0123456789ab", associated_data="", ciphertext=data) == (
        b"hello"
    )


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"key": "b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"}, DecryptionError, "decryption_failed"),
        ({"associated_data": "associatedDatA"}, DecryptionError, "decryption_failed"),
        ({"nonce": "uluk4a9R25RX"}, DecryptionError, "decryption_failed"),
        ({"ciphertext_b64": "vlwSiIajGClcvcOYvOQ7+l+0PAbzzwI="}, DecryptionError, None),
        ({"ciphertext_b64": "not base64!"}, NotificationError, "bad_base64"),
        ({"ciphertext_b64": "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI"}, NotificationError, "bad_base64"),
        ({"ciphertext_b64": "AAAA"}, NotificationError, "malformed"),
        ({"nonce": "short"}, NotificationError, "malformed"),
        ({"nonce": "x" * 129}, NotificationError, "malformed"),
        ({"nonce": "\ud800" * 12}, NotificationError, "malformed"),
        ({"key": "tooshort"}, ConfigurationError, None),
    ],
    ids=[
        "wrong-key",
        "wrong-aad",
        "wrong-nonce",
        "tampered-ciphertext",
        "not-base64",
        "missing-padding",
        "shorter-than-tag",
        "nonce-too-short",
        "nonce-too-long",
        "nonce-not-encodable",
        "bad-key-length",
    ],
)
def test_failures(change: dict[str, str], error: type[Exception], reason: str | None) -> None:
    """Wrong key or altered data is a DecryptionError; malformed input a NotificationError."""
    with pytest.raises(error) as caught:
        _decrypt({**JAVA_MESSAGE, **change})
    if reason is not None:
        assert getattr(caught.value, "reason", None) == reason


def test_decryption_error_does_not_leak_the_key() -> None:
    """The error message never contains the key."""
    wrong = "b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"
    with pytest.raises(DecryptionError) as caught:
        _decrypt({**JAVA_MESSAGE, "key": wrong})
    assert wrong not in str(caught.value)


def test_bytes_inputs_are_accepted() -> None:
    """Nonce, associated data and ciphertext may be given as bytes."""
    assert (
        aead_aes_gcm_decrypt(
            KEY,
            nonce=JAVA_MESSAGE["nonce"].encode(),
            associated_data=JAVA_MESSAGE["associated_data"].encode(),
            ciphertext=JAVA_MESSAGE["ciphertext_b64"].encode(),
        )
        == b"message"
    )


@given(
    plaintext=st.binary(max_size=2048),
    aad=st.text(max_size=32),
    nonce=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=12),
    key=st.binary(min_size=32, max_size=32),
)
def test_round_trip(plaintext: bytes, aad: str, nonce: str, key: bytes) -> None:
    """encrypt then decrypt gives the plaintext back for any data, AAD and key."""
    ciphertext = aead_aes_gcm_encrypt(key, nonce=nonce, associated_data=aad, plaintext=plaintext)
    assert (
        aead_aes_gcm_decrypt(key, nonce=nonce, associated_data=aad, ciphertext=ciphertext)
        == plaintext
    )
