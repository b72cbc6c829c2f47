"""Fixed examples for the WeChat Pay v3 key ring, from the mutation run (issue 14): serial
parsing at its bounds, validity at its exact edges, the descriptions, the configuration
refusals and the exact warnings (text, ``action``, once per certificate)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from payhook.errors import ConfigurationError
from payhook.providers.wechatpay_v3 import WechatPayV3KeyRing
from payhook.providers.wechatpay_v3._keys import normalise_serial
from tests.unit.providers._wechat_v3_support import FrozenClock

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
LOGGER = "payhook.providers.wechatpay_v3"


def _cert(serial: int, not_before: datetime, not_after: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(KEY, hashes.SHA256())
    )


VALID = _cert(0xABC, NOW - timedelta(days=1), NOW + timedelta(days=1))


SERIALS = [
    ("one_digit", "a", 10),
    ("base_16", "10", 16),
    ("leading_zeros", "000abc", 0xABC),
    ("sixty_four_digits", "F" * 64, int("F" * 64, 16)),
    ("sixty_five_digits", "F" * 65, None),
    ("empty", "", None),
    ("trailing_newline", "AB\n", None),
    ("trailing_space", "AB ", None),
    ("not_hex", "0xAB", None),
]


@pytest.mark.parametrize(
    ("text", "number"), [case[1:] for case in SERIALS], ids=[case[0] for case in SERIALS]
)
def test_normalise_serial(text: str, number: int | None) -> None:
    """1 to 64 hex digits, read in base 16; anything else (a newline too) is not a serial."""
    assert normalise_serial(text) == number


def test_serial_edges_through_key_for() -> None:
    """A header of 64 hex digits (zero-padded) finds its certificate; 65 digits, a newline, or
    nothing don't."""
    ring = WechatPayV3KeyRing(certificates=[VALID], clock=FrozenClock(NOW))
    assert ring.key_for("0" * 61 + "ABC") is not None
    assert ring.key_for("0" * 62 + "ABC") is None
    assert ring.key_for("ABC\n") is None
    assert ring.key_for("") is None
    assert ring.key_for("abc") is not None


def test_validity_edges_are_inclusive(caplog: pytest.LogCaptureFixture) -> None:
    """A certificate is valid from its first to its last second, both included, unwarned."""
    starts_now = _cert(0x1, NOW, NOW + timedelta(days=1))
    ends_now = _cert(0x2, NOW - timedelta(days=1), NOW)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ring = WechatPayV3KeyRing(certificates=[starts_now, ends_now], clock=FrozenClock(NOW))
        assert ring.key_for("1") is not None
        assert ring.key_for("2") is not None
    assert ring.valid_certificates() == [starts_now, ends_now]
    assert caplog.records == []


def test_one_second_outside_is_refused() -> None:
    """One second before the start or after the end, the certificate is not used."""
    ring = WechatPayV3KeyRing(certificates=[VALID], clock=FrozenClock(NOW))
    early = WechatPayV3KeyRing(
        certificates=[_cert(0x1, NOW + timedelta(seconds=1), NOW + timedelta(days=1))],
        clock=FrozenClock(NOW),
    )
    assert early.key_for("1") is None
    assert early.valid_certificates() == []
    assert ring.key_for("ABC") is not None


def test_expired_at_load_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """An expired certificate is warned about when added, with its action, and not again."""
    expired = _cert(0xDEAD, NOW - timedelta(days=10), NOW - timedelta(seconds=1))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ring = WechatPayV3KeyRing(certificates=[expired], clock=FrozenClock(NOW))
        assert ring.key_for("DEAD") is None
        assert ring.key_for("dead") is None
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            LOGGER,
            logging.WARNING,
            "WeChat Pay platform certificate DEAD expired on 2026-11-28T00:59:59+00:00; "
            "it will not be used.",
        )
    ]
    assert caplog.records[0].__dict__["action"] == "wechatpay_cert_expired"
    assert ring.certificate_serials() == ["DEAD"]


def test_not_yet_valid_is_warned_once_when_used(caplog: pytest.LogCaptureFixture) -> None:
    """A certificate that is not valid yet is warned about on first use only, with its action."""
    future = _cert(0xBEEF, NOW + timedelta(days=1), NOW + timedelta(days=2))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ring = WechatPayV3KeyRing(certificates=[future], clock=FrozenClock(NOW))
        assert caplog.records == []
        assert ring.key_for("BEEF") is None
        assert ring.key_for("00beef") is None
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        (
            LOGGER,
            "WeChat Pay platform certificate BEEF is outside its validity period "
            "(2026-11-29T01:00:00+00:00 to 2026-11-30T01:00:00+00:00); "
            "callbacks signed with it are refused.",
        )
    ]
    assert caplog.records[0].__dict__["action"] == "wechatpay_cert_not_valid"


def test_describe() -> None:
    """How each kind of serial is named in messages."""
    public = KEY.public_key()
    ring = WechatPayV3KeyRing(
        public_keys={"PUB_KEY_ID_01": public}, certificates=[VALID], clock=FrozenClock(NOW)
    )
    assert ring.describe("PUB_KEY_ID_01") == "wechatpay_public_key PUB_KEY_ID_01"
    assert ring.describe("0abc") == "platform certificate ABC"
    assert ring.describe("PUB_KEY_ID_02") == "a platform certificate"
    assert ring.describe("") == "a platform certificate"


def test_key_for_each_path() -> None:
    """The exact key for a public-key id and a serial; None for unknown ids and serials."""
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ring = WechatPayV3KeyRing(
        public_keys={"PUB_KEY_ID_01": public}, certificates=[VALID], clock=FrozenClock(NOW)
    )
    assert ring.key_for("PUB_KEY_ID_01") is public
    found = ring.key_for("ABC")
    assert found is not None
    assert found.public_numbers() == KEY.public_key().public_numbers()
    assert ring.key_for("ABD") is None
    assert ring.key_for("PUB_KEY_ID_02") is None
    assert repr(ring) == "WechatPayV3KeyRing(public_keys=['PUB_KEY_ID_01'], certificates=['ABC'])"


def test_configuration_refusals() -> None:
    """An empty key id and a non-RSA public key are refused, with exact messages."""
    with pytest.raises(ConfigurationError, match=r"^a WeChat Pay public key id is empty$"):
        WechatPayV3KeyRing(public_keys={"": KEY.public_key()}, clock=FrozenClock(NOW))
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    message = "WeChat Pay public key PUB_KEY_ID_EC is not an RSA key"
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        WechatPayV3KeyRing(
            public_keys={"PUB_KEY_ID_EC": ec_public},  # type: ignore[dict-item]
            clock=FrozenClock(NOW),
        )
