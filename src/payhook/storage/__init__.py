"""SQLAlchemy Core storage: intake, events, subscriptions, outbox. All SQL lives here."""

from __future__ import annotations

from payhook.storage._signal import OutboxSignal
from payhook.storage._store import Store
from payhook.storage.intake import IntakeRecord, IntakeResult

__all__ = ["IntakeRecord", "IntakeResult", "OutboxSignal", "Store"]
