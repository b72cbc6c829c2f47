"""Building the signed POST a subscriber receives (contract §6, Standard Webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from payhook._version import __version__
from payhook.signing._standard import sign

__all__ = ["USER_AGENT", "build_headers", "redact_url"]

USER_AGENT = f"payhook/{__version__}"


def build_headers(
    *, event_id: str, body: bytes, timestamp: int, secret_keys: Sequence[bytes]
) -> dict[str, str]:
    """The headers of one delivery attempt.

    ``webhook-id`` is the event id, identical on every retry and replay, so subscribers
    can deduplicate; ``webhook-timestamp`` is this attempt's time; ``webhook-signature``
    holds one ``v1,`` entry per active secret (several during a rotation).

    Args:
        event_id: the event's id (``evt_…``).
        body: the exact bytes that will be POSTed.
        timestamp: Unix seconds of this attempt.
        secret_keys: the subscription's active HMAC keys, newest first.
    """
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret_keys, event_id, timestamp, body),
    }


def redact_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe for logs and attempt records."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
