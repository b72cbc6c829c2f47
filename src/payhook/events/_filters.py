"""Subscription event filters: ``*``, exact types and prefix wildcards (``payment.refund.*``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["filter_matches", "validate_filter"]

_FILTER = re.compile(r"\*|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*(?:\.\*)?\Z")


def validate_filter(pattern: str) -> bool:
    """Whether ``pattern`` is a valid event filter."""
    return bool(_FILTER.fullmatch(pattern))


def filter_matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether any of ``patterns`` selects ``event_type``."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False
