"""Subscription targets: one masking rule for every place a URL is shown, and the addresses
payhook refuses to deliver to (at validation and at connect time)."""

from __future__ import annotations

import socket

import pytest

from payhook._subscription_rules import validate_url
from payhook._targets import mask_url, refused_address, refused_host, url_secrets
from payhook.config import PayhookSettings
from payhook.dispatch.sinks.http import (
    TargetRefusedError,
    classify_exception,
    guarded_socket_factory,
    url_redactions,
)
from payhook.errors import InvalidUrlError, RefusedTargetError

# -- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/a/b", "https://hooks.example/a/b"),
        ("http://127.0.0.1:9000/x?page=2&v=1#top", "http://127.0.0.1:9000/x?page=2&v=1#top"),
        ("https://user:pa%40ss@hooks.example:8443/a", "https://user:***@hooks.example:8443/a"),
        ("https://ghp_tok3n@hooks.example/a", "https://***@hooks.example/a"),
        ("https://sk_live_1:@hooks.example/a", "https://***@hooks.example/a"),
        ("https://:only-pw@hooks.example/a", "https://***@hooks.example/a"),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=abc123&x=1",
            "https://oapi.dingtalk.com/robot/send?access_token=***&x=1",
        ),
        (
            "https://h.example/p?Token=a&API_KEY=b&X-Amz-Signature=c&sig=d&Password=e&auth=f",
            "https://h.example/p?Token=***&API_KEY=***&X-Amz-Signature=***&sig=***&Password=***"
            "&auth=***",
        ),
        ("https://h.example/p?secret=&key", "https://h.example/p?secret=&key"),
        (
            "https://h.example/p#access_token=zz&state=1",
            "https://h.example/p#access_token=***&state=1",
        ),
        ("http://[::1]:9000/x?session_id=9", "http://[::1]:9000/x?session_id=***"),
        ("amqp://guest:guest@mq:5672/vh", "amqp://guest:***@mq:5672/vh"),
        ("http://u:pw@[::1/x?token=1", "http://***@[::1/x"),
        ("https://h.example/p#a?token=1", "https://h.example/p#a?token=***"),
        ("https://h.example/p?#", "https://h.example/p?#"),
    ],
    ids=[
        "plain",
        "harmless-query",
        "password",
        "lone-user-is-a-token",
        "empty-password",
        "no-user",
        "dingtalk-robot",
        "secret-names",
        "empty-values",
        "fragment",
        "ipv6",
        "other-scheme",
        "unparsable",
        "question-mark-in-fragment",
        "empty-query-and-fragment",
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    """Passwords, lone user names and secret-named parameter values become ***; the rest
    is shown as written."""
    assert mask_url(url) == shown


def test_url_secrets_are_what_the_mask_hides() -> None:
    """Both spellings of each hidden piece, longest first (for scrubbing free text)."""
    url = "https://user:pa%40ss@h.example/p?token=tok%2Fen&x=visible&key=ab"
    assert url_secrets(url) == ("tok%2Fen", "pa%40ss", "tok/en", "pa@ss")
    assert url_secrets("https://h.example/p?x=1") == ()


def test_error_redactions_cover_what_aiohttp_prints() -> None:
    """aiohttp prints the URL without userinfo and normalised; each secret is scrubbed."""
    url = "http://user:s3cret-pw@127.0.0.1:9/x?token=tok123&a=1"
    printed = "400, message='Bad status line', url='http://127.0.0.1:9/x?token=tok123&a=1'"
    error = RuntimeError(printed)
    text = classify_exception(error, latency_ms=1, redact=url_redactions(url)).error or ""
    assert "tok123" not in text
    assert "token=***&a=1" in text
    error = RuntimeError(f"cannot open {url}")
    text = classify_exception(error, latency_ms=1, redact=url_redactions(url)).error or ""
    assert text == "RuntimeError: cannot open http://user:***@127.0.0.1:9/x?token=***&a=1"


# -- refused targets -------------------------------------------------------------------------

ALWAYS_REFUSED = [
    "169.254.169.254",
    "169.254.0.23",
    "fe80::1",
    "fe80::1%eth0",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1",
    "::a9fe:a9fe",
    "fd00:ec2::254",
    "100.100.100.200",
]
PRIVATE = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "::",
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "fc00::1",
    "fd12:3456::1",
    "192.0.2.10",
    "198.18.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "ff02::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"]


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
def test_link_local_and_metadata_addresses_are_always_refused(address: str) -> None:
    """Whatever the switch says, in every IPv6 spelling that carries the IPv4 address."""
    for refuse_private in (False, True):
        reason = refused_address(address, refuse_private=refuse_private)
        assert reason is not None
        assert "metadata" in reason


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_are_refused_only_with_the_switch(address: str) -> None:
    """Loopback, RFC 1918, CGNAT, unique-local and other non-public ranges."""
    assert refused_address(address, refuse_private=False) is None
    reason = refused_address(address, refuse_private=True)
    assert reason is not None
    assert "refuse_private_targets" in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    """Public unicast addresses, including neighbours of the refused ranges."""
    assert refused_address(address, refuse_private=True) is None


def test_a_non_address_is_refused() -> None:
    """What cannot be checked is not connected to."""
    assert refused_address("not-an-ip", refuse_private=False) is not None


@pytest.mark.parametrize(
    "host",
    [
        "metadata.google.internal",
        "METADATA.google.internal.",
        "metadata.goog",
        "metadata.tencentyun.com",
        "instance-data",
        "2852039166",
        "0xa9.0xfe.0xa9.0xfe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "%31%36%39.254.169.254",
    ],
)
def test_metadata_names_and_legacy_spellings_are_refused(host: str) -> None:
    """Metadata service names, and 169.254.169.254 as a C resolver would also read it."""
    assert refused_host(host, refuse_private=False) is not None


def test_names_are_left_to_connect_time() -> None:
    """A name is judged by what it resolves to, except localhost with the switch on."""
    assert refused_host("hooks.example", refuse_private=True) is None
    assert refused_host("localhost", refuse_private=False) is None
    assert refused_host("localhost", refuse_private=True) is not None
    assert refused_host("api.localhost", refuse_private=True) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1%25eth0]:8080/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://user:pw@2852039166/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
def test_validation_refuses_metadata_targets(url: str) -> None:
    """refused_target, a kind of invalid_url, whose message says why."""
    with pytest.raises(RefusedTargetError, match=r"url: refused target: .*metadata") as info:
        validate_url(url)
    assert info.value.code == "refused_target"
    assert isinstance(info.value, InvalidUrlError)


def test_validation_refuses_private_targets_with_the_switch() -> None:
    """127.0.0.1 is fine by default (internal subscribers, the samples), refused when asked."""
    url = "http://127.0.0.1:9000/webhooks"
    assert validate_url(url) == url
    with pytest.raises(RefusedTargetError, match="loopback"):
        validate_url(url, refuse_private=True)
    assert validate_url("https://hooks.example/x", refuse_private=True)


@pytest.mark.parametrize(
    "url", ["https://user:***@hooks.example/x", "https://hooks.example/x?token=***"]
)
def test_a_masked_url_is_not_taken_back(url: str) -> None:
    """Copying a shown URL back would store *** as the credential."""
    with pytest.raises(InvalidUrlError, match="masked URL"):
        validate_url(url)


def test_the_config_file_refuses_targets() -> None:
    """Link-local always; private ones only with [dispatcher] refuse_private_targets."""
    sub = {"name": "orders", "secret": "whsec_" + "a" * 40}
    with pytest.raises(ValueError, match=r"refused target: 169\.254\.169\.254"):
        PayhookSettings(subscriptions=({**sub, "url": "http://169.254.169.254/x"},))
    local = {**sub, "url": "http://127.0.0.1:9000/x"}
    assert PayhookSettings(subscriptions=(local,)).subscriptions[0].url == local["url"]
    with pytest.raises(ValueError, match=r"subscriptions\[0\]\.url: refused target: 127"):
        PayhookSettings(dispatcher={"refuse_private_targets": True}, subscriptions=(local,))


# -- connect time ----------------------------------------------------------------------------


def _info(family: socket.AddressFamily, address: str) -> tuple[object, ...]:
    sockaddr: tuple[object, ...] = (
        (address, 80) if family == socket.AF_INET else (address, 80, 0, 0)
    )
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


def test_the_socket_factory_refuses_before_connecting() -> None:
    """A refused address raises a connect error naming the reason; an allowed one gets a
    plain socket."""
    strict = guarded_socket_factory(refuse_private=True)
    lenient = guarded_socket_factory(refuse_private=False)
    for factory in (strict, lenient):
        with pytest.raises(TargetRefusedError, match=r"refused target: 169\.254\.169\.254"):
            factory(_info(socket.AF_INET, "169.254.169.254"))  # type: ignore[arg-type]
    with pytest.raises(TargetRefusedError, match="loopback"):
        strict(_info(socket.AF_INET, "127.0.0.1"))  # type: ignore[arg-type]
    with lenient(_info(socket.AF_INET, "127.0.0.1")) as sock:  # type: ignore[arg-type]
        assert sock.family == socket.AF_INET
    outcome = classify_exception(
        TargetRefusedError(13, "refused target: x"), latency_ms=0, redact=()
    )
    assert outcome.error_class == "connect"
