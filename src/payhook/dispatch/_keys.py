"""Signing keys of a subscription, decoded once and cached (secrets never leave this module)."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from payhook.errors import ConfigurationError, PayhookError
from payhook.events import parse_rfc3339
from payhook.signing._standard import parse_secret

__all__ = ["SecretKeys"]

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
