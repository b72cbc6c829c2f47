"""Canonical event types (contract §5)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventType"]


class EventType(StrEnum):
    """The canonical event types payhook publishes."""

    ORDER_PAID = "payment.order.paid"
    ORDER_CLOSED = "payment.order.closed"
    ORDER_FAILED = "payment.order.failed"
    REFUND_SUCCEEDED = "payment.refund.succeeded"
    REFUND_FAILED = "payment.refund.failed"
    NOTIFICATION_RECEIVED = "payment.notification.received"
