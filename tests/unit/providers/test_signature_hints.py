"""A bad-signature refusal carries a hint for the log (never for the reply): the channel, the
key it verified with, by name and fingerprint, and the documentation of the fix."""

from __future__ import annotations

import pytest

from payhook.errors import SignatureError
from payhook.signing import key_fingerprint
from tests.unit.providers._wechat_v3_support import (
    CERT_SERIAL,
    PUB_KEY_ID,
    clock_at,
    encrypted_envelope,
    provider,
    raw,
    rsa_key,
    sign_headers,
    wechat_private_key,
)

DOC = "docs/configuration.md#wrong-public-key"


@pytest.mark.parametrize(
    ("serial", "named"),
    [
        (PUB_KEY_ID, f"wechatpay_public_key {PUB_KEY_ID}"),
        (CERT_SERIAL.lower(), "platform certificate"),
    ],
    ids=["public-key", "certificate"],
)
def test_wechatpay_v3_hint_names_the_key_of_the_serial(serial: str, named: str) -> None:
    """Signed with another key under a known serial: the hint names that serial's key (a
    certificate by the serial read from it, not the header's spelling)."""
    clock = clock_at(1716163200)
    body = encrypted_envelope("TRANSACTION.SUCCESS", {"out_trade_no": "A-1"})
    headers = sign_headers(body, timestamp=1716163200, serial=serial, key=rsa_key("forger"))
    with pytest.raises(SignatureError) as info:
        provider(clock).verify(raw(headers, body, clock))
    hint = info.value.hint
    assert info.value.reason == "bad_signature"
    assert hint is not None
    expected_name = named if serial == PUB_KEY_ID else f"{named} {CERT_SERIAL}"
    assert hint == (
        f"channel wx verifies with {expected_name} "
        f"{key_fingerprint(wechat_private_key().public_key())}; if genuine callbacks are "
        f"refused like this, that key is wrong: see {DOC}"
    )
    assert DOC not in info.value.message


def test_other_refusals_carry_no_hint() -> None:
    """Only a signature that does not match points at the key: a missing header does not."""
    clock = clock_at(1716163200)
    body = encrypted_envelope("TRANSACTION.SUCCESS", {"out_trade_no": "A-1"})
    headers = sign_headers(body, timestamp=1716163200)
    del headers["wechatpay-nonce"]
    with pytest.raises(SignatureError) as info:
        provider(clock).verify(raw(headers, body, clock))
    assert info.value.hint is None
