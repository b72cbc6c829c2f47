"""Building blocks shared by every settings model: strict frozen models and durations.

``config`` builds the whole configuration from these, and each provider's channel settings
model (``payhook.providers``) uses them too, so they live below both and import nothing of
payhook.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Duration", "SettingsModel", "duration_validator", "parse_duration"]

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``"30m"`` -> 1800.0. Units: ms, s, m, h, d; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 30m, 2h, 1d)")


Duration = Annotated[float, Field(ge=0)]


class SettingsModel(BaseModel):
    """A configuration section: unknown keys are errors, values are frozen, and inputs
    (which may be secrets) never appear in validation messages."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def duration_validator(*fields: str) -> Any:
    """A before-validator accepting ``"10s"``-style durations for ``fields``."""
    return field_validator(*fields, mode="before")(lambda v: parse_duration(v))
