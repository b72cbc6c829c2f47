"""RSA PKCS#1 v1.5 helpers: sign/verify round trips, verdicts on bad input, a real Alipay vector."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from hypothesis import given, strategies as st

from payhook.signing import (
    RsaDigest,
    load_rsa_private_key,
    load_rsa_public_key,
    rsa_sign,
    rsa_verify,
)

VECTORS = Path(__file__).parents[2] / "vectors" / "alipay"
GOPAY_SYNC = json.loads((VECTORS / "vectors.json").read_text("utf-8"))["confirmed"][
    "alipay_rsa2_sync_response_gopay"
]
PRIVATE = load_rsa_private_key((VECTORS / "test_alipay_private.pem").read_bytes())
PUBLIC = load_rsa_public_key((VECTORS / "test_alipay_public.pem").read_bytes())
OTHER_PUBLIC = load_rsa_public_key((VECTORS / "test_other_public.pem").read_bytes())
DIGESTS: list[RsaDigest] = ["sha256", "sha1"]


@pytest.mark.parametrize("digest", DIGESTS, ids=DIGESTS)
def test_round_trip(digest: RsaDigest) -> None:
    """A signature made with the private key verifies with its public key."""
    signature = rsa_sign(PRIVATE, b"app_id=1&total_amount=88.88", digest=digest)
    assert len(signature) == 256
    assert rsa_verify(PUBLIC, b"app_id=1&total_amount=88.88", signature, digest=digest)


def test_signatures_are_deterministic() -> None:
    """PKCS#1 v1.5 signs deterministically, so vectors can be frozen byte for byte."""
    assert rsa_sign(PRIVATE, b"x") == rsa_sign(PRIVATE, b"x")


def test_default_digest_is_sha256() -> None:
    """Without a digest argument the helpers use SHA-256 (Alipay RSA2)."""
    signature = rsa_sign(PRIVATE, b"x")
    assert rsa_verify(PUBLIC, b"x", signature, digest="sha256")
    assert not rsa_verify(PUBLIC, b"x", signature, digest="sha1")


def _flip_first(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


BAD_CASES = [
    ("wrong_key", OTHER_PUBLIC, b"message", lambda s: s, "sha256"),
    ("flipped_message_byte", PUBLIC, b"messagf", lambda s: s, "sha256"),
    ("flipped_signature_byte", PUBLIC, b"message", _flip_first, "sha256"),
    ("truncated_signature", PUBLIC, b"message", lambda s: s[:-1], "sha256"),
    ("empty_signature", PUBLIC, b"message", lambda s: b"", "sha256"),
    ("overlong_signature", PUBLIC, b"message", lambda s: s + b"\0", "sha256"),
    ("other_digest", PUBLIC, b"message", lambda s: s, "sha1"),
]


@pytest.mark.parametrize(
    ("key", "message", "mangle", "digest"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_signatures_are_false_not_errors(
    key: RSAPublicKey, message: bytes, mangle: Callable[[bytes], bytes], digest: RsaDigest
) -> None:
    """Every kind of mismatch is a plain False verdict."""
    signature = mangle(rsa_sign(PRIVATE, b"message", digest="sha256"))
    assert rsa_verify(key, message, signature, digest=digest) is False


def test_unknown_digest_is_a_programming_error() -> None:
    """An unsupported digest name raises ValueError instead of picking a default."""
    with pytest.raises(ValueError, match="unsupported digest"):
        rsa_sign(PRIVATE, b"x", digest="md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported digest"):
        rsa_verify(PUBLIC, b"x", b"sig", digest="sha512")  # type: ignore[arg-type]


def test_gopay_alipay_sandbox_sync_response_verifies() -> None:
    """A real Alipay sandbox RSA2 signature verifies with the bare-base64 console key."""
    key = load_rsa_public_key(GOPAY_SYNC["alipay_public_key"])
    content = GOPAY_SYNC["signed_content"].encode()
    signature = base64.b64decode(GOPAY_SYNC["sign"])
    assert rsa_verify(key, content, signature, digest="sha256")
    assert not rsa_verify(key, content.replace(b"0.01", b"0.02", 1), signature)
    assert not rsa_verify(key, content, signature, digest="sha1")


@given(message=st.binary(max_size=512), digest=st.sampled_from(DIGESTS))
def test_round_trip_for_any_message(message: bytes, digest: RsaDigest) -> None:
    """Any message signs and verifies, and a different message does not."""
    signature = rsa_sign(PRIVATE, message, digest=digest)
    assert rsa_verify(PUBLIC, message, signature, digest=digest)
    assert not rsa_verify(PUBLIC, message + b"\0", signature, digest=digest)


@given(signature=st.binary(max_size=600))
def test_arbitrary_signature_bytes_never_raise(signature: bytes) -> None:
    """Garbage signatures of any length are refused without an exception."""
    assert rsa_verify(PUBLIC, b"message", signature) is False
