"""What operators give and get, the same on the admin API and the CLI: the time parser
(RFC 3339 or an age), cursors, delivery statuses, the JSON view of a subscription and the
rule for subscriptions owned by the config file or by code. Re-exported by
:mod:`payhook.operations`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from payhook._settings_base import parse_duration
from payhook._subscription_rules import validate_name
from payhook._targets import mask_url
from payhook._types import DeliveryStatus, SubscriptionKind, SubscriptionSource
from payhook.errors import (
    DeliveryNotFoundError,
    EventNotFoundError,
    InvalidCursorError,
    InvalidNameError,
    InvalidRequestError,
    SubscriptionIsHandlerError,
    SubscriptionManagedByConfigError,
    SubscriptionNotFoundError,
)
from payhook.storage import Subscription, decode_cursor

__all__ = [
    "AGE_PATTERN",
    "DELIVERY_STATUSES",
    "SECRET_MASK",
    "check_editable",
    "known_delivery_id",
    "known_event_id",
    "known_subscription_name",
    "parse_cursor",
    "parse_status",
    "parse_time",
    "subscription_json",
]

SECRET_MASK = "whsec_********"  # noqa: S105 - what every answer shows instead of a secret
# In the order listings and help texts have always shown them.
DELIVERY_STATUSES = (
    DeliveryStatus.PENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.SUCCEEDED,
    DeliveryStatus.DEAD,
)

_EVENT_ID = re.compile(r"evt_[0-9a-z]{26}\Z")
_DELIVERY_ID = re.compile(r"dlv_[0-9a-z]{26}\Z")


# --------------------------------------------------------------------------------------------
# operator input and output, shared by the admin API and the CLI


def subscription_json(
    sub: Subscription, now: datetime, *, secret: str | None = None
) -> dict[str, Any]:
    """The public view of ``sub``; ``secret`` is given only in the answer that created it
    (or rotated it). Every other view shows :data:`SECRET_MASK` (``None`` for a handler).
    The URL's credentials are always masked (:func:`payhook._targets.mask_url`)."""
    data = sub.public_dict(now)
    if sub.url is not None:
        data["url"] = mask_url(sub.url)
    signed = SubscriptionKind(sub.kind).signed
    data["secret"] = secret if secret is not None else (SECRET_MASK if signed else None)
    return data


# An age ("90m", "6h", "3d"; a bare number is seconds): what parse_duration reads, with no
# spaces. The JSON-schema form of the OpenAPI document uses the same text.
AGE_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$"
_AGE = re.compile(AGE_PATTERN.removesuffix("$") + r"\Z")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,
)
_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_MAX_TIME = datetime.max.replace(tzinfo=UTC)
_BAD_TIME = (
    "must be an RFC 3339 time with an offset (e.g. 2026-11-28T09:00:00Z) or an age (e.g. 6h, 3d)"
)


def parse_time(text: str, *, name: str, now: datetime) -> datetime:
    """An operator's time: RFC 3339 with an offset (``Z`` or ``+08:00``), or an age before
    ``now`` (``90m``, ``6h``, ``3d``), as aware UTC. The admin API and the CLI both read
    ``since``/``until`` with it.

    Leap seconds count as :59; times beyond what Python represents clamp to its range.

    Raises:
        InvalidRequestError: neither (the message starts with ``name``).
    """
    if _AGE.match(text):
        seconds = parse_duration(text)
        try:
            if not math.isfinite(seconds):
                raise OverflowError
            return now.astimezone(UTC) - timedelta(seconds=seconds)
        except OverflowError:
            return _MIN_TIME
    match = _RFC3339.match(text)
    if match is None:
        raise InvalidRequestError(f"{name}: {_BAD_TIME}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset_h, offset_m = int(match.group(10) or 0), int(match.group(11) or 0)
    if offset_h > 23 or offset_m > 59:
        raise InvalidRequestError(f"{name}: {_BAD_TIME}")
    offset = timedelta(hours=offset_h, minutes=offset_m)
    if match.group(9) == "-":
        offset = -offset
    try:
        local = datetime(
            max(year, 1), month, day, hour, minute, min(second, 59), micro, timezone(offset)
        )
    except ValueError:
        raise InvalidRequestError(f"{name}: {_BAD_TIME}") from None
    try:
        return local.astimezone(UTC)
    except OverflowError:
        return _MIN_TIME if local.year == 1 else _MAX_TIME


def parse_cursor(cursor: str, prefix: str) -> str:
    """The row id inside a ``next_cursor`` of a listing of ``prefix`` ids (``evt``/``dlv``).

    Raises:
        InvalidCursorError: not a cursor of this listing.
    """
    found = decode_cursor(cursor, prefix)
    if found is None:
        raise InvalidCursorError("cursor: not a cursor of this listing (use next_cursor as is)")
    return found


def parse_status(value: str) -> DeliveryStatus:
    """A delivery status by name.

    Raises:
        InvalidRequestError: not a status.
    """
    try:
        return DeliveryStatus(value)
    except ValueError:
        raise InvalidRequestError(f"status: one of {', '.join(DELIVERY_STATUSES)}") from None


def check_editable(sub: Subscription, *, what: str) -> None:
    """The rule for subscriptions owned elsewhere: config-file subscriptions are re-applied
    at every start and handler subscriptions belong to the code that registers them, so
    operators may only enable or disable them.

    Args:
        what: the refused change, completing "… in the config file: {what} there".

    Raises:
        SubscriptionIsHandlerError: ``sub`` is an in-process handler.
        SubscriptionManagedByConfigError: ``sub`` is declared in the config file.
    """
    if SubscriptionKind(sub.kind) is SubscriptionKind.HANDLER:
        raise SubscriptionIsHandlerError(
            f"subscription {sub.name!r} is an in-process handler: "
            f"{what} in the code that registers it"
        )
    if sub.source == SubscriptionSource.CONFIG:
        raise SubscriptionManagedByConfigError(
            f"subscription {sub.name!r} is declared in the config file: {what} there and restart"
        )


def known_event_id(event_id: str) -> str:
    """``event_id`` if an event could have it.

    Raises:
        EventNotFoundError: it could not (no lookup needed; keeps NUL off the database).
    """
    if not _EVENT_ID.match(event_id):
        raise EventNotFoundError(f"no event with id {event_id[:40]!r}")
    return event_id


def known_delivery_id(delivery_id: str) -> str:
    """``delivery_id`` if a delivery could have it.

    Raises:
        DeliveryNotFoundError: it could not.
    """
    if not _DELIVERY_ID.match(delivery_id):
        raise DeliveryNotFoundError(f"no delivery with id {delivery_id[:40]!r}")
    return delivery_id


def known_subscription_name(name: str) -> str:
    """``name`` if a subscription could have it.

    Raises:
        SubscriptionNotFoundError: it could not.
    """
    try:
        return validate_name(name)
    except InvalidNameError:  # could never have been created
        raise SubscriptionNotFoundError(f"no subscription named {name[:40]!r}") from None
