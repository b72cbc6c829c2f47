"""What a subscription may be: one validator per rule (name, URL, event filters, secret).

The configuration's models, storage, the operator service (admin API and CLI) all call these,
so a value accepted in one place is accepted everywhere. Each raises the
:class:`~payhook.errors.InvalidSubscriptionError` subclass whose ``code`` the admin API
answers with (the configuration reports its ``problem`` under the key's name). Messages
never repeat a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from payhook._targets import MASK, mask_url, refused_host
from payhook._types import SubscriptionKind
from payhook.errors import (
    ConfigurationError,
    InvalidEventsError,
    InvalidNameError,
    InvalidSecretError,
    InvalidUrlError,
    RefusedTargetError,
    WeakSecretError,
)
from payhook.events import validate_filter
from payhook.signing import parse_secret

__all__ = [
    "MAX_URL_LENGTH",
    "NAME_PATTERN",
    "validate_events",
    "validate_name",
    "validate_secret",
    "validate_url",
]

# The JSON-schema form (OpenAPI, pydantic ``pattern=``) of the one name rule.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_NAME = re.compile(NAME_PATTERN.removesuffix("$") + r"\Z")
MAX_URL_LENGTH = 2048
_BAD_URL = "must be an http:// or https:// URL"


def validate_name(name: str) -> str:
    """``name`` if it is a usable subscription name (1-128 letters, digits or ``_.:-``)."""
    if not _NAME.match(name):
        raise InvalidNameError("must be 1-128 letters, digits or _.:- characters")
    return name


def validate_url(url: str, *, refuse_private: bool = False) -> str:
    """``url`` if it is an absolute URL with a host whose scheme a sink delivers to, and a
    host payhook may deliver to (:func:`payhook._targets.refused_host`: never a link-local
    or cloud metadata address or name; with ``refuse_private`` (``[dispatcher]
    refuse_private_targets``) no private, loopback or other non-public literal address
    either; a name is checked again against what it resolves to at connect time).

    No whitespace or control characters (they would also keep NUL off the database), and
    not a masked URL copied back (``***`` where a credential belongs).

    Raises:
        InvalidUrlError: not such a URL.
        RefusedTargetError: its host is refused.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidUrlError(_BAD_URL)
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidUrlError(_BAD_URL)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
        kind = SubscriptionKind.from_url(url)
    except ValueError:
        raise InvalidUrlError(_BAD_URL) from None
    if kind is SubscriptionKind.HANDLER or not host:
        raise InvalidUrlError(_BAD_URL)
    reason = refused_host(host, refuse_private=refuse_private)
    if reason is not None:
        raise RefusedTargetError(f"refused target: {reason}")
    if MASK in url and mask_url(url.replace(MASK, "x")) == url:
        raise InvalidUrlError(
            "holds *** where a credential belongs (a masked URL): give the full URL"
        )
    return url


def validate_events(events: Iterable[str]) -> tuple[str, ...]:
    """The filters as a tuple, if each is ``*``, an event type or a ``prefix.*`` wildcard."""
    if isinstance(events, str):
        raise InvalidEventsError("must be a list of filters")
    result = tuple(events)
    if not result:
        raise InvalidEventsError("must hold at least one event filter ('*' for all)")
    for pattern in result:
        if not validate_filter(pattern):
            shown = repr(pattern)[:70]
            raise InvalidEventsError(
                f"{shown} is not an event filter (use '*', an event type or 'prefix.*')"
            )
    return result


def validate_secret(secret: str) -> str:
    """``secret`` if it is a ``whsec_`` secret of 24 to 64 bytes (the rule of
    :func:`payhook.signing._standard.parse_secret`, which signs with it)."""
    try:
        parse_secret(secret)
    except ConfigurationError as exc:
        if exc.reason == "weak_webhook_secret":
            raise WeakSecretError("is too weak: it must hold at least 24 random bytes") from None
        raise InvalidSecretError(exc.message) from None
    return secret
