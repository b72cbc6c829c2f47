"""One validator per subscription rule, the same for the config file, storage, the admin API
and the CLI."""

from __future__ import annotations

import base64

import pytest

from payhook._subscription_rules import (
    NAME_PATTERN,
    validate_events,
    validate_name,
    validate_secret,
    validate_url,
)
from payhook.config import SubscriptionSettings
from payhook.errors import (
    InvalidEventsError,
    InvalidNameError,
    InvalidSecretError,
    InvalidSubscriptionError,
    InvalidUrlError,
    WeakSecretError,
)


def _secret(size: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * size).decode()


@pytest.mark.parametrize("name", ["orders", "a", "crm.v2:blue_green-1", "x" * 128])
def test_good_names(name: str) -> None:
    """Letters, digits and _.:- up to 128, starting with a letter or digit."""
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "has space", "-lead", "x" * 129, "nul\x00", "ünï"])
def test_bad_names(name: str) -> None:
    """Anything else is invalid_name."""
    with pytest.raises(InvalidNameError) as info:
        validate_name(name)
    assert info.value.code == "invalid_name"
    assert info.value.message.startswith("name: ")


def test_name_pattern_is_the_rule() -> None:
    """The JSON-schema form given to OpenAPI and pydantic is the regex the validator uses."""
    assert NAME_PATTERN == r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "https://crm.example/a?b=c", "HTTPS://X.example"]
)
def test_good_urls(url: str) -> None:
    """Absolute http(s) URLs with a host."""
    assert validate_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "https://", "javascript:alert(1)", "crm.example/hook",
     "https://crm.example/a b", "https://crm.example:99999/", "https://x.example/\x00",
     "https://x.example/\t", "http:///nohost", "https://x.example/" + "a" * 2048],
)  # fmt: skip
def test_bad_urls(url: str) -> None:
    """Other schemes, no host, whitespace, control characters, bad ports, over 2 KiB."""
    with pytest.raises(InvalidUrlError, match="http:// or https://"):
        validate_url(url)


def test_events() -> None:
    """Filters are '*', a type or 'prefix.*'; a list with at least one."""
    assert validate_events(["payment.order.paid", "payment.refund.*"]) == (
        "payment.order.paid",
        "payment.refund.*",
    )
    for bad, match in (
        ([], "at least one"),
        ("payment.order.paid", "list"),
        (["payment.*.paid"], "'payment.*.paid' is not an event filter"),
        (["Payment"], "not an event filter"),
    ):
        with pytest.raises(InvalidEventsError, match=match):
            validate_events(bad)


def test_secrets_hold_24_to_64_bytes() -> None:
    """The signer's rule: whsec_ + base64 of 24 to 64 bytes; weak ones have their own code."""
    for size in (24, 32, 64):
        assert validate_secret(_secret(size)) == _secret(size)
    with pytest.raises(WeakSecretError) as weak:
        validate_secret(_secret(23))
    assert weak.value.code == "weak_secret"
    for bad in (_secret(65), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!not-base64!!"):
        with pytest.raises(InvalidSecretError) as info:
            validate_secret(bad)
        assert info.value.code == "invalid_secret"
        assert bad not in info.value.message


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("name", "has space", "must be 1-128 letters"),
        ("url", "ftp://x", "must be an http:// or https:// URL"),
        ("events", ("payment.*.paid",), "is not an event filter"),
        ("secret", _secret(23), "is too weak"),
        ("secret", _secret(65), "at most 64 bytes"),
    ],
)
def test_the_config_file_uses_the_same_rules(field: str, value: object, problem: str) -> None:
    """[[subscriptions]] refuses what the admin API refuses (also a secret over 64 bytes)."""
    values: dict[str, object] = {
        "name": "orders",
        "url": "http://127.0.0.1:9000/hook",
        "secret": _secret(32),
        field: value,
    }
    with pytest.raises(ValueError, match=problem) as info:
        SubscriptionSettings(**values)  # type: ignore[arg-type]
    assert not isinstance(info.value, InvalidSubscriptionError)
