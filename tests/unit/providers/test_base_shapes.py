"""The provider contract's value types are frozen, keyword-only and slotted, and the outcome
values are the ones logs and metrics use (mutation run, issue 14)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from payhook._clock import SystemClock
from payhook.providers import Outcome
from payhook.providers._base import (
    ChannelRuntime,
    ParsedNotification,
    ProviderContext,
    ProviderSpec,
    RawNotification,
    Reply,
    SimulatedCallback,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

EXAMPLES: list[tuple[type[Any], dict[str, Any]]] = [
    (RawNotification, {"channel": "c", "headers": {}, "body": b"", "received_at": NOW}),
    (ParsedNotification, {"notification_id": None, "events": ()}),
    (Reply, {"status": 200, "body": b"", "content_type": None}),
    (SimulatedCallback, {"headers": {}, "body": b""}),
    (ProviderContext, {"clock": SystemClock()}),
    (ChannelRuntime, {"provider": object()}),
    (
        ProviderSpec,
        {
            "kind": "k",
            "event_provider": "k",
            "settings": object,
            "build": print,
            "simulator": print,
        },
    ),
]


@pytest.mark.parametrize(("cls", "fields"), EXAMPLES, ids=lambda v: getattr(v, "__name__", ""))
def test_value_types_are_frozen_keyword_only_and_slotted(
    cls: type[Any], fields: dict[str, Any]
) -> None:
    """No field can be reassigned, none passed by position, and there is no ``__dict__``."""
    value = cls(**fields)
    name = next(iter(fields))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, name, fields[name])
    with pytest.raises(TypeError):
        cls(*fields.values())
    assert not hasattr(value, "__dict__")


def test_defaults() -> None:
    """The optional fields' defaults."""
    assert ParsedNotification(notification_id=None, events=()).order_id is None
    assert ProviderContext(clock=SystemClock()).certificates is None
    assert ChannelRuntime(provider=object()).tasks == ()  # type: ignore[arg-type]
    spec = ProviderSpec(  # type: ignore[var-annotated]
        kind="k",
        event_provider="k",
        settings=object,
        build=print,
        simulator=print,  # type: ignore[arg-type]
    )
    assert spec.check is None
    assert spec.simulated_events == ("paid", "closed", "refund")


def test_outcome_values() -> None:
    """The values logs, metrics and the audit table record."""
    assert [str(o) for o in Outcome] == [
        "accepted",
        "refused_auth",
        "refused_malformed",
        "key_misconfigured",
        "storage_unavailable",
    ]
