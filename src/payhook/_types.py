"""Shared vocabulary: the statuses and kinds stored in payhook's tables. Imports nothing of payhook.

Each enum is a :class:`~enum.StrEnum`, so a member compares equal to (and is stored as) its
value: ``DeliveryStatus.DEAD == "dead"``.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

__all__ = [
    "DeliveryStatus",
    "NotificationVerdict",
    "SubscriptionKind",
    "SubscriptionSource",
]


class DeliveryStatus(StrEnum):
    """``payhook_deliveries.status``: pending -> succeeded | (failed -> retry) ... -> dead."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"

    @property
    def finished(self) -> bool:
        """Whether the dispatcher will never attempt this delivery again on its own."""
        return self in (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD)


class SubscriptionKind(StrEnum):
    """Which sink delivers a subscription's events; derived from its URL's scheme.

    An in-process handler (``@hook.on(...)``) has no URL. The next sinks (contract §13:
    ``amqp``, ``nats``, ``redis``) each add one member and one sink module.
    """

    HTTP = "http"
    HANDLER = "handler"

    @classmethod
    def from_url(cls, url: str | None) -> SubscriptionKind:
        """The kind for ``url``; raises ValueError for a scheme no sink handles."""
        if url is None:
            return cls.HANDLER
        scheme = urlsplit(url).scheme.lower()
        kind = _SCHEMES.get(scheme)
        if kind is None:
            raise ValueError(f"unsupported URL scheme {scheme!r} (use http or https)")
        return kind

    @property
    def signed(self) -> bool:
        """Whether deliveries carry Standard Webhooks signatures (the subscription has secrets)."""
        return self is not SubscriptionKind.HANDLER


_SCHEMES: dict[str, SubscriptionKind] = {
    "http": SubscriptionKind.HTTP,
    "https": SubscriptionKind.HTTP,
}


class SubscriptionSource(StrEnum):
    """Where a subscription was declared: the config file, the admin API or code (``hook.on``)."""

    CONFIG = "config"
    API = "api"
    CODE = "code"


class NotificationVerdict(StrEnum):
    """``payhook_notifications.verdict``: what intake decided about one verified callback.

    ``refused`` is found only in rows written before migration 0004: refused callbacks are
    now audited in ``payhook_refused_callbacks``.
    """

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
