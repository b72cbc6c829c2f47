"""From an attempt's outcome to the row update: succeeded, failed (retry when), or dead."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from payhook._types import DeliveryStatus
from payhook.dispatch._policy import RetryPolicy
from payhook.dispatch.sinks import Outcome
from payhook.events import to_rfc3339
from payhook.storage import ClaimedDelivery, Completion

__all__ = ["build_completion"]

logger = logging.getLogger("payhook.dispatch")


def build_completion(
    row: ClaimedDelivery, outcome: Outcome, policy: RetryPolicy, *, now: datetime
) -> Completion:
    """The :class:`Completion` for ``outcome`` (logged without secrets or bodies).

    A failure is retried after ``policy``'s next wait (or the subscriber's longer
    ``Retry-After``); past the schedule the delivery is ``dead``. An outcome asking to be
    disabled (HTTP 410) also disables the subscription, with the reason and time recorded.
    """
    disable_reason = None
    if outcome.ok:
        status, next_at = DeliveryStatus.SUCCEEDED, now
    else:
        extra = {
            "delivery_id": row.id,
            "event_id": row.event_id,
            "subscription": row.subscription_name,
            "attempt": row.attempt,
        }
        delay = policy.next_delay_s(row.attempt, retry_after_s=outcome.retry_after_s)
        if delay is None:
            status, next_at = DeliveryStatus.DEAD, now
            logger.warning(
                "delivery is dead after %d attempts (%s)",
                row.attempt,
                outcome.error,
                extra={"action": "delivery_dead", **extra},
            )
        else:
            status, next_at = DeliveryStatus.FAILED, now + timedelta(seconds=delay)
            logger.info(
                "delivery attempt failed (%s); next attempt in %.1f s",
                outcome.error,
                delay,
                extra={"action": "delivery_failed", "error_class": outcome.error_class, **extra},
            )
        if outcome.disable_reason:
            disable_reason = f"{outcome.disable_reason} at {to_rfc3339(now)}"
            logger.warning(
                "the subscriber asked to be disabled (%s): disabling the subscription",
                outcome.disable_reason,
                extra={"action": "subscription_disabled", **extra},
            )
    return Completion(
        delivery_id=row.id,
        claim_token=row.claim_token,
        subscription_id=row.subscription_id,
        status=status,
        next_attempt_at=next_at,
        attempted_at=now - timedelta(milliseconds=outcome.latency_ms),
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error_class=outcome.error_class,
        error=outcome.error,
        response_body=outcome.response_body,
        disable_reason=disable_reason,
    )
