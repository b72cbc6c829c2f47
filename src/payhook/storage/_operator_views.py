"""What operators see of events and deliveries (admin API and CLI): the one read model,
recovery counts, delivery gauges and opaque cursors.

Cursors wrap the id of the last row of a page: ids are time-sortable ULIDs (``evt_…``,
``dlv_…``), so the next page of a newest-first listing is "ids below this one".
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from payhook._types import DeliveryStatus
from payhook.events import to_rfc3339

__all__ = [
    "AttemptView",
    "DeliveryGauges",
    "DeliveryView",
    "EventView",
    "Page",
    "Recovery",
    "decode_cursor",
    "encode_cursor",
]

T = TypeVar("T")

_CURSOR = re.compile(r"[A-Za-z0-9_-]+\Z")
_ID = re.compile(r"(evt|dlv)_[0-9a-hjkmnp-tv-z]{26}\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventView:
    """A stored event: a few indexed columns and the exact body subscribers receive."""

    id: str
    type: str
    channel: str
    order_id: str | None
    created_at: datetime
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The event as subscribers receive it (contract §5)."""
        return dict(self.body)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptView:
    """One recorded delivery attempt."""

    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    error_class: str | None
    error: str | None
    response_body: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "attempted_at": to_rfc3339(self.attempted_at),
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error_class": self.error_class,
            "error": self.error,
            "response_body": self.response_body,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryView:
    """One outbox row with its subscription name, its event's type and order, and attempts."""

    id: str
    event_id: str
    event_type: str
    order_id: str | None
    subscription: str
    subscription_id: str
    status: DeliveryStatus
    attempt_count: int
    in_flight: bool
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempts: tuple[AttemptView, ...] = ()

    def to_json(self, *, with_attempts: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (``next_attempt_at`` only while the delivery waits for a retry)."""
        waiting = not self.status.finished and not self.in_flight
        data: dict[str, Any] = {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "order_id": self.order_id,
            "subscription": self.subscription,
            "subscription_id": self.subscription_id,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "in_flight": self.in_flight,
            "next_attempt_at": to_rfc3339(self.next_attempt_at)
            if waiting and self.next_attempt_at
            else None,
            "created_at": to_rfc3339(self.created_at),
            "updated_at": to_rfc3339(self.updated_at),
            "last_attempt_at": to_rfc3339(self.last_attempt_at) if self.last_attempt_at else None,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
        }
        if with_attempts:
            data["attempts"] = [a.to_json() for a in self.attempts]
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """What a bulk recovery of dead deliveries found and did.

    ``found`` dead deliveries matched; ``requeued`` of them were re-queued; ``skipped`` were
    left alone because they changed meanwhile (retried, being sent, or deleted).
    A dry run only counts: ``requeued == skipped == 0``.
    """

    found: int
    requeued: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryGauges:
    """Per subscription name: deliveries waiting, the age of the oldest one, dead ones.

    ``pending`` and ``oldest_pending_age_s`` cover enabled subscriptions only; the waiting
    deliveries of disabled (paused) ones are ``paused`` and ``oldest_paused_age_s``, so a
    paused subscriber does not look like a stuck one.
    """

    pending: dict[str, int]
    oldest_pending_age_s: dict[str, float]
    dead: dict[str, int]
    paused: dict[str, int] = field(default_factory=dict)
    oldest_paused_age_s: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# cursors


def encode_cursor(last_id: str) -> str:
    """The opaque cursor for the page after the row ``last_id``."""
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str | None:
    """The row id inside ``cursor`` if it is a valid cursor for ``prefix`` ids, else None."""
    if len(cursor) > 64 or not _CURSOR.match(cursor):
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if not _ID.match(raw) or not raw.startswith(f"{prefix}_"):
        return None
    return raw
