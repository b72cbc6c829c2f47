"""What every provider adapter is: raw bytes and headers in, canonical event drafts out.

Providers never see a Starlette request, a database or the network (except the WeChat Pay
certificate downloader, which lives beside them and is handed in as a key source). They are
unit-testable with plain bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from payhook.events import EventDraft

__all__ = [
    "Outcome",
    "ParsedNotification",
    "Provider",
    "RawNotification",
    "Reply",
    "SimulatedCallback",
    "Simulator",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RawNotification:
    """One inbound HTTP callback exactly as received.

    ``headers`` has lower-case names. ``body`` is the raw body, read once and never parsed
    by anything before the provider has verified it.
    """

    channel: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedNotification:
    """A verified notification and the canonical events it carries.

    ``notification_id`` is the provider's handle for this notification when it has one
    (Alipay ``notify_id``, WeChat Pay v3 envelope ``id``), kept for audit and logs.
    ``order_id`` is for log lines.
    """

    notification_id: str | None
    events: tuple[EventDraft, ...]
    order_id: str | None = None


class Outcome(StrEnum):
    """What payhook decided about a callback; each provider renders it in its own format."""

    ACCEPTED = "accepted"  # stored, or an exact duplicate of something stored
    REFUSED_AUTH = "refused_auth"  # signature, probe, timestamp
    REFUSED_MALFORMED = "refused_malformed"  # malformed, wrong merchant, bad amount
    KEY_MISCONFIGURED = "key_misconfigured"  # authentic but our key cannot decrypt it
    STORAGE_UNAVAILABLE = "storage_unavailable"  # database down: the provider must retry


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """The HTTP answer to the provider."""

    status: int
    body: bytes
    content_type: str | None


class Provider(Protocol):
    """An inbound adapter for one configured channel.

    ``verify`` raises only :class:`payhook.errors.RefusedError` subclasses (refused) or
    :class:`payhook.errors.DecryptionError` (authentic, but our key is wrong), whatever the
    input bytes and headers are.
    """

    kind: str  # "alipay" | "wechatpay_v3" | "wechatpay_v2"
    channel: str

    def verify(self, raw: RawNotification) -> ParsedNotification:
        """Verify ``raw`` and turn it into canonical event drafts."""
        ...

    def reply(self, outcome: Outcome, message: str = "") -> Reply:
        """Render ``outcome`` in the provider's own reply format (contract §4)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedCallback:
    """A callback built the way the provider would send it."""

    headers: Mapping[str, str]
    body: bytes


class Simulator(Protocol):
    """Builds provider callbacks signed with a channel's ``simulator_*`` test keys."""

    def build(
        self,
        *,
        order_id: str,
        amount: int,
        event: str,
        refund_amount: int | None,
        now: datetime,
    ) -> SimulatedCallback:
        """Build a callback for ``event`` (``paid`` | ``closed`` | ``refund``); amounts in fen."""
        ...
