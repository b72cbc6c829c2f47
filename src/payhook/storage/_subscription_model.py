"""Subscription value objects and the stored secret list (no I/O).

What a subscription may be (name, URL, filters, secret) is ruled by
:mod:`payhook._subscription_rules`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from payhook._types import SubscriptionKind, SubscriptionSource
from payhook.errors import InvalidSubscriptionError
from payhook.events import parse_rfc3339, to_rfc3339

__all__ = [
    "REASON_CONFIG",
    "REASON_REMOVED",
    "Subscription",
    "SubscriptionSecret",
    "SubscriptionSpec",
    "UpsertResult",
    "dump_secrets",
    "from_row",
    "rotated",
]

# Why a subscription was disabled; only these are undone by the config on the next start.
REASON_CONFIG = "disabled in the configuration"
REASON_REMOVED = "removed from the configuration"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionSpec:
    """A subscription as declared in the config file (``[[subscriptions]]``)."""

    name: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionSecret:
    """One signing secret of a subscription; ``expires_at`` is set while it is retiring."""

    secret: str = field(repr=False)
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """Whether deliveries are still signed with this secret."""
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """A stored subscription. Its repr never shows secrets."""

    id: str
    name: str
    kind: SubscriptionKind
    url: str | None
    events: tuple[str, ...]
    secrets: tuple[SubscriptionSecret, ...] = field(repr=False)
    enabled: bool
    disabled_reason: str | None
    source: SubscriptionSource
    created_at: datetime
    updated_at: datetime

    def active_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets deliveries are signed with now, newest first."""
        return tuple(s.secret for s in self.secrets if s.active(now))

    def public_dict(self, now: datetime) -> dict[str, Any]:
        """A JSON-ready view without secret values (for the admin API and the CLI)."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "events": list(self.events),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "source": self.source,
            "secrets": [
                {"expires_at": to_rfc3339(s.expires_at) if s.expires_at else None}
                for s in self.secrets
                if s.active(now)
            ],
            "created_at": to_rfc3339(self.created_at),
            "updated_at": to_rfc3339(self.updated_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertResult:
    """What :func:`upsert_config_subscriptions` changed, by subscription name; ``renamed``:
    the ``(new, old)`` names of handler subscriptions renamed at start."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    rotated: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------------------------
# rows


def _load_secrets(raw: str) -> tuple[SubscriptionSecret, ...]:
    items = json.loads(raw or "[]")
    result = []
    for item in items:
        expires = item.get("expires_at")
        result.append(
            SubscriptionSecret(
                secret=item["secret"],
                expires_at=parse_rfc3339(expires, field="expires_at") if expires else None,
            )
        )
    return tuple(result)


def dump_secrets(items: Sequence[SubscriptionSecret]) -> str:
    """The JSON stored in ``payhook_subscriptions.secrets``."""
    return json.dumps(
        [
            {
                "secret": s.secret,
                "expires_at": s.expires_at.isoformat() if s.expires_at else None,
            }
            for s in items
        ]
    )


def from_row(row: Row[Any]) -> Subscription:
    """A :class:`Subscription` from a ``payhook_subscriptions`` row."""
    return Subscription(
        id=row.id,
        name=row.name,
        kind=SubscriptionKind(row.kind),
        url=row.url,
        events=tuple(json.loads(row.events)),
        secrets=_load_secrets(row.secrets),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        source=SubscriptionSource(row.source),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def rotated(
    current: Sequence[SubscriptionSecret], new_secret: str, *, now: datetime, grace_s: float
) -> tuple[SubscriptionSecret, ...]:
    """The secret list after making ``new_secret`` the primary one.

    Secrets without an expiry start expiring at ``now + grace_s``; secrets already
    retiring keep their earlier expiry; expired ones are dropped.
    """
    if grace_s < 0:
        raise InvalidSubscriptionError("the rotation grace period cannot be negative")
    until = now + timedelta(seconds=grace_s)
    kept = [SubscriptionSecret(secret=new_secret)]
    for item in current:
        if item.secret == new_secret or not item.active(now):
            continue
        expires = until if item.expires_at is None else min(item.expires_at, until)
        if expires > now:
            kept.append(SubscriptionSecret(secret=item.secret, expires_at=expires))
    return tuple(kept)
