"""Standard Webhooks signing shared by every signed sink (contract §6, §13).

:class:`SecretKeys` turns a subscription's stored secret list into the HMAC keys active at
a time, decoded once and cached (secrets never leave this module); :func:`webhook_headers`
gives the three headers (or message fields) every signed delivery carries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

from payhook.errors import ConfigurationError, PayhookError
from payhook.events import parse_rfc3339
from payhook.signing import parse_secret, sign

__all__ = ["SecretKeys", "webhook_headers"]

logger = logging.getLogger("payhook.dispatch")

_MAX_CACHED = 4096


class SecretKeys:
    """Turns a subscription's stored secret list into the HMAC keys active at a time."""

    def __init__(self) -> None:
        self._lists: dict[str, list[tuple[str, datetime | None]]] = {}
        self._keys: dict[str, bytes | None] = {}

    def __repr__(self) -> str:
        return f"SecretKeys(cached={len(self._keys)})"

    def _parse_list(self, secrets_json: str) -> list[tuple[str, datetime | None]]:
        found = self._lists.get(secrets_json)
        if found is not None:
            return found
        items: list[tuple[str, datetime | None]] = []
        try:
            for item in json.loads(secrets_json or "[]"):
                expires = item.get("expires_at")
                items.append(
                    (
                        str(item["secret"]),
                        parse_rfc3339(expires, field="expires_at") if expires else None,
                    )
                )
        except (ValueError, TypeError, KeyError, AttributeError, PayhookError):
            logger.error(
                "a subscription's stored secrets are unreadable",
                extra={"action": "bad_secrets"},
            )
        if len(self._lists) >= _MAX_CACHED:
            self._lists.clear()
        self._lists[secrets_json] = items
        return items

    def _key(self, secret: str) -> bytes | None:
        if secret in self._keys:
            return self._keys[secret]
        try:
            key: bytes | None = parse_secret(secret)
        except ConfigurationError:
            logger.error("a stored webhook secret is invalid", extra={"action": "bad_secret"})
            key = None
        if len(self._keys) >= _MAX_CACHED:
            self._keys.clear()
        self._keys[secret] = key
        return key

    def active(self, secrets_json: str, now: datetime) -> list[bytes]:
        """The keys to sign with at ``now``, newest first (expired or invalid ones left out)."""
        keys = []
        for secret, expires_at in self._parse_list(secrets_json):
            if expires_at is not None and expires_at <= now:
                continue
            key = self._key(secret)
            if key is not None:
                keys.append(key)
        return keys


def webhook_headers(
    *, event_id: str, body: bytes, timestamp: int, secret_keys: Sequence[bytes]
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` of one attempt.

    ``webhook-id`` is the event id, identical on every retry and replay, so receivers
    can deduplicate; ``webhook-timestamp`` is this attempt's time; ``webhook-signature``
    holds one ``v1,`` entry per active secret (several during a rotation).

    Args:
        event_id: the event's id (``evt_…``).
        body: the exact bytes that will be delivered.
        timestamp: Unix seconds of this attempt.
        secret_keys: the subscription's active HMAC keys, newest first.
    """
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret_keys, event_id, timestamp, body),
    }
