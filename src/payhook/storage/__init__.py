"""SQLAlchemy Core storage: intake, events, subscriptions, outbox. All SQL lives here."""

from __future__ import annotations

from payhook.storage._intake import IntakeRecord, IntakeResult
from payhook.storage._signal import OutboxSignal
from payhook.storage._store import Store

__all__ = ["IntakeRecord", "IntakeResult", "OutboxSignal", "Store"]
