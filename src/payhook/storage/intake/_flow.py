"""The intake algorithm, once for every database: a generator of steps that does no I/O.

Like httpx's ``Auth.auth_flow``, :func:`intake_flow` yields what it needs done (the steps of
``_steps.py``) and receives each answer through ``send``; a driver runs the steps in one
transaction with its own SQL: the SQLite writer thread (``_sqlite.py``, synchronous, many
callbacks per group commit) and asyncpg on PostgreSQL (``_postgres.py``). The flow decides
everything the databases must agree on: event identity and duplicates, Alipay refund
shares, which subscriptions get outbox rows, the audit verdict, the result. Only verified
callbacks come here: a refused one is audited apart, at lower priority (``storage/_audit.py``).

A driver runs the flow like this (the SQLite one, minus error handling)::

    flow = intake_flow(record, now)
    answer = None
    try:
        while True:
            step = flow.send(answer)
            answer = execute(step)
    except StopIteration as stop:
        result = stop.value
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from payhook._stores import IntakeRecord, IntakeResult, RefusedCallback
from payhook._types import NotificationVerdict
from payhook.errors import StorageUnavailableError
from payhook.events import EventDraft, EventType, filter_matches, new_id, render_event
from payhook.storage.intake._steps import (
    READ_SUBSCRIPTIONS,
    FindEvent,
    InsertDeliveries,
    InsertEvent,
    InsertNotification,
    LockTrade,
    PreviousRefundTotal,
    Step,
    SubscriptionFilters,
)

__all__ = ["Intake", "IntakeFlow", "IntakeRecord", "IntakeResult", "intake_flow", "refund_share"]


class Intake(Protocol):
    """A database driver of the flow: runs it for one callback in one transaction."""

    async def record(self, record: IntakeRecord, now: datetime) -> IntakeResult:
        """Commit the intake transaction; returns once the commit is durable.

        Raises:
            StorageUnavailableError: the database cannot take the write right now.
        """
        ...

    async def write_refused(self, records: Sequence[RefusedCallback]) -> None:
        """Insert refused-callback audit records in one transaction, at lower priority than
        :meth:`record`: it may wait, a callback never waits for more than one such write.

        Raises:
            StorageUnavailableError: the database cannot take the write.
        """
        ...

    async def ping(self) -> None:
        """Raise StorageUnavailableError when intake writes cannot be taken right now."""
        ...

    async def close(self) -> None:
        """Release what the driver holds of its own (threads; never the engine)."""
        ...


# What a driver iterates: steps out, answers in (typed per step in _steps.py).
IntakeFlow = Generator[Step, Any, IntakeResult]


def _needs_refund_share(draft: EventDraft) -> bool:
    # A refund whose own amount is known (WeChat Pay states it; for Alipay, a provider
    # refund query, contract §11, will) keeps it: only a cumulative total needs a share.
    return (
        draft.type is EventType.REFUND_SUCCEEDED
        and draft.refund_amount is None
        and draft.refunded_total is not None
    )


def refund_share(refunded_total: int, previous_total: int | None) -> int:
    """This refund's share of a trade's cumulative ``refunded_total`` (contract §5, §9).

    ``previous_total`` is the largest cumulative total already recorded for the trade, in
    whatever order the notifications arrived. The share is the increase over it, and 0 for
    a refund whose total is not larger: a larger total recorded earlier already counted it
    (Alipay's RF-2 at 30.00 arriving before RF-1 at 10.00 gives RF-2 30.00 and RF-1 0).
    So the shares of a trade's refunds always add up to the largest total seen.
    """
    return max(0, refunded_total - (previous_total or 0))


def intake_flow(record: IntakeRecord, now: datetime) -> IntakeFlow:
    """The steps of one callback's intake transaction; returns its :class:`IntakeResult`.

    For each draft: an Alipay refund (cumulative ``refunded_total``, no ``refund_amount``)
    that is not stored yet gets its share (:func:`refund_share`), the increase over the
    largest cumulative amount already recorded for the trade, read under the trade's lock;
    a refund whose total is not larger is still a new event, with ``refund_amount`` 0. The
    event is inserted unless its key exists (then the callback repeats a stored fact); a new
    event gets one outbox row per enabled subscription whose filters match its type,
    subscriptions being read at most once. Last comes the audit row, whose verdict is
    ``duplicate`` when an accepted callback carried only facts already stored.

    Raises:
        StorageUnavailableError: an event's key conflicted but its row could not be read
            (deleted meanwhile): nothing is acknowledged, the provider sends it again.
    """
    now_ms = int(now.timestamp() * 1000)
    event_ids: list[str] = []
    new_ids: list[str] = []
    new_types: list[str] = []
    deliveries = 0
    subscriptions: Sequence[SubscriptionFilters] | None = None
    for draft in record.drafts:
        if _needs_refund_share(draft):
            # A copy of a stored refund must not read the trade's totals (its own included).
            found: str | None = yield FindEvent(draft.key)
            if found is not None:
                event_ids.append(found)
                continue
            # Serialise the trade's refunds so each sees the others' cumulative totals
            # (without it, two concurrent refunds would both count the same money).
            yield LockTrade(f"{draft.provider}:{draft.merchant_id}:{draft.transaction_id}")
            assert draft.refunded_total is not None
            previous: int | None = yield PreviousRefundTotal(
                provider=draft.provider,
                merchant_id=draft.merchant_id,
                transaction_id=draft.transaction_id,
                scope=draft.refund_scope,
            )
            # The stored event keeps refund_id and refunded_total beside the derived share,
            # so the fact stays exact whatever the share. Contract §11 plugs in upstream of
            # this: a draft whose refund_amount comes from the provider's refund query skips
            # the share (_needs_refund_share) and is stored as stated, keeping its
            # refunded_total so later derived shares of the trade count it. Should one trade
            # mix exact and derived amounts, the amount already accounted for becomes the sum
            # of its stored refund_amount values, not MAX(refunded_total): they are equal as
            # long as every amount is derived here (docs/reliability.md, "Refund sums").
            draft = replace(draft, refund_amount=refund_share(draft.refunded_total, previous))
        event_id = new_id("evt", now_ms=now_ms)
        body = render_event(draft, event_id=event_id, channel=record.channel, created_at=now)
        inserted: bool = yield InsertEvent(event_id, draft, record.channel, now, body)
        if not inserted:  # the key exists: this callback repeats a stored fact
            existing: str | None = yield FindEvent(draft.key)
            if existing is None:
                raise StorageUnavailableError("an event was removed while its copy was stored")
            event_ids.append(existing)
            continue
        event_type = str(draft.type)
        event_ids.append(event_id)
        new_ids.append(event_id)
        new_types.append(event_type)
        if subscriptions is None:
            subscriptions = yield READ_SUBSCRIPTIONS
        matching = [
            sub_id for sub_id, filters in subscriptions if filter_matches(filters, event_type)
        ]
        if matching:
            delivery_ids = [new_id("dlv", now_ms=now_ms) for _ in matching]
            yield InsertDeliveries(event_id, delivery_ids, matching, now)
            deliveries += len(matching)
    verdict = NotificationVerdict.ACCEPTED
    if event_ids and not new_ids:
        verdict = NotificationVerdict.DUPLICATE
    yield InsertNotification(
        channel=record.channel,
        received_at=record.received_at,
        headers=json.dumps(record.headers),
        body=record.body,
        verdict=verdict,
        notification_id=record.notification_id,
        event_ids=json.dumps(event_ids) if event_ids else None,
    )
    return IntakeResult(
        event_ids=tuple(event_ids),
        new_event_ids=tuple(new_ids),
        new_event_types=tuple(new_types),
        deliveries=deliveries,
    )
