"""Subscription targets: how a target URL is shown, and which addresses payhook refuses.

Pure (standard library only) so the configuration, the operator edges (admin API, CLI) and
the HTTP sink share one rule of each:

- :func:`mask_url` is the only way a subscription URL is shown (check-config, the admin
  API, ``payhook subscriptions list``, attempt errors and logs): the userinfo password and
  the values of query parameters whose names suggest a secret become ``***``. The stored
  URL is unchanged and deliveries use it whole.
- :func:`refused_address` says why an IP address is not a delivery target: link-local and
  cloud metadata addresses always; private, loopback, unique-local, CGNAT and other
  non-public ranges when ``[dispatcher] refuse_private_targets`` is on. The HTTP sink asks it
  for every address it connects to (so a name that resolves to such an address is refused
  too), :func:`refused_host` for a URL's host when a subscription is validated.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from urllib.parse import unquote, urlsplit

__all__ = [
    "MASK",
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "mask_url",
    "refused_address",
    "refused_host",
    "url_secrets",
]

MASK = "***"

# Query parameter (and fragment key) names whose values are masked: any name containing one
# of these words, case-insensitively (access_token, api_key, X-Amz-Signature, sig, ...).
_SECRET_NAME = re.compile(
    r"token|key|secret|sig|pass|pwd|auth|credential|session|jwt|bearer|ticket|private",
    re.IGNORECASE,
)

# Host names that always mean a cloud instance metadata service (compared lower-case,
# without a trailing dot).
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.tencentyun.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

# Metadata services outside the link-local ranges: AWS IMDS over IPv6 and Alibaba Cloud's
# metadata service (inside the CGNAT range, so refused even with private targets allowed).
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*specs: str) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(s) for s in specs)


_LINK_LOCAL = _nets("169.254.0.0/16", "fe80::/10")
# Refused when [dispatcher] refuse_private_targets is on: every range that is not a public
# unicast address (RFC 6890 special-purpose registries), by name.
_PRIVATE: tuple[tuple[str, tuple[_Network, ...]], ...] = (
    ("a loopback", _nets("127.0.0.0/8", "::1/128")),
    ("an unspecified ('this network')", _nets("0.0.0.0/8", "::/128")),
    ("a private (RFC 1918)", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("a shared (CGNAT)", _nets("100.64.0.0/10")),
    ("a unique-local", _nets("fc00::/7")),
    ("a site-local", _nets("fec0::/10")),
    (
        "a reserved (protocol, benchmark or documentation)",
        _nets(
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "100::/64",
            "2001:db8::/32",
            "2001::/23",
        ),
    ),
    ("a multicast or broadcast", _nets("224.0.0.0/4", "ff00::/8")),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


# --------------------------------------------------------------------------------------------
# showing a URL


def mask_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***``: the userinfo password (the whole
    userinfo when there is no password: a lone user name is usually a token) and the values
    of query parameters (and fragment keys) whose names suggest a secret.

    Everything else is kept as written. Never raises; a URL that cannot be parsed is
    shown with everything between ``//`` and ``@`` masked and no query or fragment.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask_unparsed(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        netloc = (
            f"{user}:{MASK}@{hostport}" if colon and password and user else f"{MASK}@{hostport}"
        )
    query = _mask_pairs(parts.query)
    fragment = _mask_pairs(parts.fragment)
    out = f"{parts.scheme}:" if parts.scheme else ""
    if parts.netloc or url.startswith(f"{out}//"):
        out += f"//{netloc}"
    out += parts.path
    if parts.query or "?" in url.partition("#")[0]:
        out += f"?{query}"
    if parts.fragment or "#" in url:
        out += f"#{fragment}"
    return out


def url_secrets(url: str) -> tuple[str, ...]:
    """The pieces of ``url`` that :func:`mask_url` hides, as written and percent-decoded
    (an error message may quote either), longest first; for scrubbing free text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    found: set[str] = set()
    userinfo, at, _host = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.update((password,) if colon and password and user else (userinfo, user, password))
    for text in (parts.query, parts.fragment):
        for pair in text.split("&"):
            name, eq, value = pair.partition("=")
            if eq and value and _SECRET_NAME.search(unquote(name)):
                found.add(value)
    pieces = {p for s in found if s for p in (s, unquote(s))}
    return tuple(sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True))


def _mask_pairs(text: str) -> str:
    if "=" not in text:
        return text
    out: list[str] = []
    for pair in text.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and _SECRET_NAME.search(unquote(name)):
            pair = f"{name}={MASK}"
        out.append(pair)
    return "&".join(out)


_USERINFO = re.compile(r"//[^/?#]*@")


def _mask_unparsed(url: str) -> str:
    shown = _USERINFO.sub(f"//{MASK}@", url, count=1)
    return re.split(r"[?#]", shown, maxsplit=1)[0]


# --------------------------------------------------------------------------------------------
# refusing a target


def refused_host(host: str, *, refuse_private: bool) -> str | None:
    """Why a URL's ``host`` (as :func:`urllib.parse.urlsplit` gives it) is not a delivery
    target, or ``None``: a metadata service name, or a literal address that
    :func:`refused_address` refuses (dotted, IPv6 with or without zone, and the legacy
    numeric IPv4 spellings such as ``2852039166`` or ``0xa9.0xfe.0xa9.0xfe``).
    ``localhost`` (and ``*.localhost``) count as loopback.
    """
    name = unquote(host).lower().rstrip(".")
    if name in METADATA_HOSTS:
        return f"{name} is a cloud metadata service"
    if name == "localhost" or name.endswith(".localhost"):
        if refuse_private:
            return f"{name} is a loopback name ([dispatcher] refuse_private_targets is on)"
        return None
    address = _literal(name)
    if address is None:
        return None
    return refused_address(address, refuse_private=refuse_private)


def _literal(name: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if not name or not re.fullmatch(r"[0-9a-fx.]+", name) or not name[0].isdigit():
        return None
    try:  # the legacy forms a C resolver accepts: 2852039166, 0251.0376.0251.0376, 127.1
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def refused_address(address: str | _IPAddress, *, refuse_private: bool) -> str | None:
    """Why payhook does not connect to ``address``, or ``None`` when it may.

    Always refused: link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata
    services answer) and the known metadata addresses outside them. With
    ``refuse_private``: loopback, private (RFC 1918), CGNAT, unique-local, unspecified,
    reserved, documentation and multicast ranges too. An IPv6 address that carries an IPv4
    one (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, NAT64 ``64:ff9b::/96``, 6to4) is
    judged by both. A string that is not an address is refused (it cannot be checked).
    """
    if isinstance(address, str):
        return _refused_text(address, refuse_private)
    return _refused(address, refuse_private)


@functools.lru_cache(maxsize=1024)
def _refused_text(text: str, refuse_private: bool) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return f"{text[:64]!r} is not an IP address"
    return _refused(address, refuse_private)


def _refused(address: _IPAddress, refuse_private: bool) -> str | None:
    for candidate in _spellings(address):
        reason = _judge(candidate, refuse_private)
        if reason is not None:
            shown = str(address) if candidate == address else f"{address} ({candidate})"
            return f"{shown} is {reason}"
    return None


def _spellings(address: _IPAddress) -> list[_IPAddress]:
    """``address`` and the IPv4 address an IPv6 one carries, if any."""
    found: list[_IPAddress] = [address.__class__(address.packed)]  # without a zone
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or address in _V4_COMPATIBLE):
            low = int(address) & 0xFFFFFFFF
            if address in _NAT64 or int(address) > 1:  # not :: or ::1
                embedded = ipaddress.IPv4Address(low)
        if embedded is not None:
            found.append(embedded)
    return found


def _judge(address: _IPAddress, refuse_private: bool) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(address in net for net in _LINK_LOCAL if net.version == address.version):
        return "a link-local address (where cloud metadata services answer)"
    if not refuse_private:
        return None
    for what, nets in _PRIVATE:
        if any(address in net for net in nets if net.version == address.version):
            return f"{what} address ([dispatcher] refuse_private_targets is on)"
    return None
