"""Signed requests: verified unchanged by the reference standardwebhooks and svix packages."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import svix.webhooks
from hypothesis import given, strategies as st

from payhook._clock import SystemClock
from payhook.dispatch import USER_AGENT, build_headers
from payhook.errors import ConfigurationError
from payhook.signing import generate_secret, parse_secret, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = b'{"id":"evt_01","type":"payment.order.paid","data":{"amount":8888,"note":"\xe6\x94\xaf"}}'
EVENT_ID = "evt_01jc8v3xq0000000000000000"


def _now() -> int:
    return int(SystemClock().now().timestamp())


def _verifiers(secret: str) -> list[object]:
    return [standardwebhooks.Webhook(secret), svix.webhooks.Webhook(secret)]


def test_reference_vector() -> None:
    """The standard-webhooks reference vector (libraries/python test_sign_function) matches."""
    key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers() -> None:
    """A delivery carries the contract §6 headers and a payhook user agent."""
    headers = build_headers(
        event_id=EVENT_ID, body=BODY, timestamp=1700000000, secret_keys=[parse_secret(SECRET)]
    )
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == EVENT_ID
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("payhook/")


@pytest.mark.parametrize("library", ["standardwebhooks", "svix"], ids=["standardwebhooks", "svix"])
def test_reference_libraries_verify(library: str) -> None:
    """Both reference verifiers accept payhook's headers and body unchanged."""
    headers = build_headers(
        event_id=EVENT_ID, body=BODY, timestamp=_now(), secret_keys=[parse_secret(SECRET)]
    )
    if library == "standardwebhooks":
        parsed = standardwebhooks.Webhook(SECRET).verify(BODY, headers)
        assert parsed["id"] == "evt_01"
    else:
        svix.webhooks.Webhook(SECRET).verify(BODY, headers)


def test_rotation_signs_with_every_active_secret() -> None:
    """During a rotation the header has two v1 entries and both secrets verify."""
    headers = build_headers(
        event_id=EVENT_ID,
        body=BODY,
        timestamp=_now(),
        secret_keys=[parse_secret(SECRET), parse_secret(OLD_SECRET)],
    )
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(e.startswith("v1,") for e in entries)
    for secret in (SECRET, OLD_SECRET):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        svix.webhooks.Webhook(secret).verify(BODY, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(generate_secret()).verify(BODY, headers)


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "timestamp"],
    ids=["body", "id", "timestamp"],
)
def test_tampering_fails(tamper: str) -> None:
    """Changing the body, the id or the timestamp breaks the signature for both libraries."""
    headers = build_headers(
        event_id=EVENT_ID, body=BODY, timestamp=_now(), secret_keys=[parse_secret(SECRET)]
    )
    body = BODY
    if tamper == "body":
        body = BODY.replace(b"8888", b"9888")
    elif tamper == "id":
        headers["webhook-id"] = "evt_other"
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(SECRET).verify(body, headers)


def test_stale_timestamp_is_refused_by_receivers() -> None:
    """A signature made six minutes ago fails the receivers' five-minute window."""
    stale = int((SystemClock().now() - timedelta(minutes=6)).timestamp())
    headers = build_headers(
        event_id=EVENT_ID, body=BODY, timestamp=stale, secret_keys=[parse_secret(SECRET)]
    )
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(BODY, headers)


@given(body=st.binary(max_size=2048).map(lambda b: b.hex().encode()), ts=st.integers(0, 2**37))
def test_sign_matches_the_reference_implementation(body: bytes, ts: int) -> None:
    """For any body and timestamp, payhook's signature equals the reference library's."""
    reference = standardwebhooks.Webhook(SECRET).sign(
        EVENT_ID, datetime.fromtimestamp(ts, UTC), body.decode()
    )
    assert sign([parse_secret(SECRET)], EVENT_ID, ts, body) == reference


def test_generated_secrets_are_strong_and_usable() -> None:
    """generate_secret gives distinct whsec_ secrets of 32 bytes the libraries accept."""
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(parse_secret(first)) == 32
    headers = build_headers(
        event_id=EVENT_ID, body=BODY, timestamp=_now(), secret_keys=[parse_secret(first)]
    )
    standardwebhooks.Webhook(first).verify(BODY, headers)


WEAK = "whsec_" + base64.b64encode(b"x" * 23).decode()
TOO_LONG = "whsec_" + base64.b64encode(b"x" * 65).decode()


@pytest.mark.parametrize(
    "secret",
    ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!!", WEAK, TOO_LONG,
     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS\u00e9"],
    ids=["empty", "no-prefix", "prefix-only", "bad-base64", "23-bytes", "65-bytes", "non-ascii"],
)  # fmt: skip
def test_bad_secrets_are_refused_without_echo(secret: str) -> None:
    """Weak or malformed secrets raise ConfigurationError whose message never shows them."""
    with pytest.raises(ConfigurationError) as info:
        parse_secret(secret)
    body = secret.removeprefix("whsec_")
    if body:
        assert body not in str(info.value)


def test_unpadded_secret_is_accepted() -> None:
    """A secret whose base64 padding was dropped still parses (as the libraries allow)."""
    padded = "whsec_" + base64.b64encode(b"k" * 25).decode()
    assert padded.endswith("=")
    assert parse_secret(padded.rstrip("=")) == b"k" * 25


def test_sign_rejects_misuse() -> None:
    """No key, or an id containing a dot, is a programming error."""
    with pytest.raises(ValueError, match="key"):
        sign([], EVENT_ID, 1, BODY)
    with pytest.raises(ValueError, match=r"'\.'"):
        sign([parse_secret(SECRET)], "evt.1", 1, BODY)
