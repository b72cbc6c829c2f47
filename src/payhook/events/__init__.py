"""Canonical event model: pure, no I/O."""

from __future__ import annotations

from payhook.events._filters import filter_matches, validate_filter
from payhook.events._handler import Handler
from payhook.events._ids import new_id
from payhook.events._model import Event, EventData, EventDraft, render_event
from payhook.events._money import format_amount, parse_amount, parse_fen
from payhook.events._times import BEIJING, parse_beijing, parse_rfc3339, to_rfc3339
from payhook.events._types import EventType

__all__ = [
    "BEIJING",
    "Event",
    "EventData",
    "EventDraft",
    "EventType",
    "Handler",
    "filter_matches",
    "format_amount",
    "new_id",
    "parse_amount",
    "parse_beijing",
    "parse_fen",
    "parse_rfc3339",
    "render_event",
    "to_rfc3339",
    "validate_filter",
]
