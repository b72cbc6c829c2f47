"""Sinks: where a claimed delivery goes, one module per subscription kind (contract §13).

:data:`SINKS` is the one mapping from :class:`~payhook._types.SubscriptionKind` to the sink
that delivers it. A new sink is a module here providing a :class:`Sink` class (built from a
:class:`SinkContext`), a ``SubscriptionKind`` member for its URL scheme, and one line below;
nothing else in the dispatcher or the outbox names a kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from payhook._types import SubscriptionKind
from payhook.dispatch.sinks._base import ErrorClass, Outcome, Sink, SinkContext, SinkFactory
from payhook.dispatch.sinks.handler import Handler, HandlerSink
from payhook.dispatch.sinks.http import HttpSink

__all__ = [
    "SINKS",
    "ErrorClass",
    "Handler",
    "HandlerSink",
    "HttpSink",
    "Outcome",
    "Sink",
    "SinkContext",
    "SinkFactory",
]

SINKS: Mapping[str, SinkFactory] = MappingProxyType(
    {
        SubscriptionKind.HTTP: HttpSink,
        SubscriptionKind.HANDLER: HandlerSink,
    }
)
"""The sink for each subscription kind (keys are kind values; a dispatcher may be given
another mapping, e.g. with a test-only kind)."""
