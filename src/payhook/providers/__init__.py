"""Inbound adapters: raw notification -> verified, parsed notification -> canonical events."""

from __future__ import annotations

from payhook.providers._base import (
    Outcome,
    ParsedNotification,
    Provider,
    RawNotification,
    Reply,
    SimulatedCallback,
    Simulator,
)

__all__ = [
    "Outcome",
    "ParsedNotification",
    "Provider",
    "RawNotification",
    "Reply",
    "SimulatedCallback",
    "Simulator",
]
