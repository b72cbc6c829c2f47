"""The steps of the intake transaction: what the flow asks a database driver to do.

A step is a value (a slotted dataclass, not frozen: a frozen one costs three times as much to
create, on the hottest path; nothing changes a step once yielded). The driver executes it
inside the open transaction, with its own SQL, and sends back the answer its docstring
names. Every driver handles every step: each matches on :data:`Step` and ends with
``assert_never``, so mypy reports a step that a driver forgot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from payhook.events import EventDraft

__all__ = [
    "READ_SUBSCRIPTIONS",
    "FindEvent",
    "InsertDeliveries",
    "InsertEvent",
    "InsertNotification",
    "LockTrade",
    "PreviousRefundTotal",
    "ReadSubscriptions",
    "Step",
    "SubscriptionFilters",
    "parse_subscriptions",
]

# An enabled subscription as the intake needs it: its id and its event-type filters.
SubscriptionFilters = tuple[str, list[str]]


@dataclass(slots=True)
class FindEvent:
    """The id of the stored event whose key is ``key``. Answer: ``str | None``."""

    key: str


@dataclass(slots=True)
class LockTrade:
    """Keep, until commit, every other transaction from recording a refund of this trade.

    ``key`` names the trade (provider, merchant, transaction). Answer: ``None``. A driver
    whose transaction already excludes every other writer (SQLite: the writer holds the
    database write lock from ``BEGIN IMMEDIATE``) answers at once.
    """

    key: str


@dataclass(slots=True)
class PreviousRefundTotal:
    """The largest cumulative refunded amount recorded for the trade, whatever its size.

    ``MAX(refunded_total)`` over every ``payment.refund.succeeded`` event of the trade: not
    only the totals below the new one, since Alipay's notifications can arrive in any order
    and a larger total recorded earlier already counts the new refund (contract §9).

    ``scope`` (:attr:`EventDraft.refund_scope`) begins the key of every refund event of the
    trade and of no other event, so a driver may read that range of the unique ``event_key``
    index instead of a trade index; without it the driver must find the trade's refunds
    another way. Answer: ``int | None`` (``None``: no earlier refund).
    """

    provider: str
    merchant_id: str
    transaction_id: str | None
    scope: str | None


@dataclass(slots=True)
class InsertEvent:
    """Insert the event unless an event with the draft's key exists (then change nothing).

    Answer: ``bool``, True when this row was inserted. On a server database a conflicting
    insert waits for the transaction holding the key, as ``ON CONFLICT`` does.
    """

    event_id: str
    draft: EventDraft
    channel: str
    created_at: datetime
    body: bytes


@dataclass(slots=True)
class ReadSubscriptions:
    """The enabled subscriptions. Answer: ``Sequence[SubscriptionFilters]``.

    A driver may answer from what it read earlier in the same transaction (SQLite reads them
    once per group commit).
    """


READ_SUBSCRIPTIONS = ReadSubscriptions()


@dataclass(slots=True)
class InsertDeliveries:
    """Insert pending outbox rows, due at ``due_at``, for one new event. Answer: ``None``.

    ``delivery_ids[i]`` is the row for ``subscription_ids[i]``; never empty.
    """

    event_id: str
    delivery_ids: list[str]
    subscription_ids: list[str]
    due_at: datetime


@dataclass(slots=True)
class InsertNotification:
    """Insert the callback's audit row. Answer: ``None``.

    ``verdict`` is ``accepted`` or ``duplicate``; ``headers`` and ``event_ids`` are already
    the JSON text the columns hold.
    """

    channel: str
    received_at: datetime
    headers: str
    body: bytes
    verdict: str
    notification_id: str | None
    event_ids: str | None


Step = (
    FindEvent
    | LockTrade
    | PreviousRefundTotal
    | InsertEvent
    | ReadSubscriptions
    | InsertDeliveries
    | InsertNotification
)


def parse_subscriptions(rows: Iterable[tuple[str, str]]) -> list[SubscriptionFilters]:
    """The answer to ReadSubscriptions from ``(id, events)`` rows of payhook_subscriptions."""
    return [(sub_id, json.loads(events)) for sub_id, events in rows]
