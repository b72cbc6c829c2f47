"""The outbound dispatcher: the worker loop, retry policy, results, and the sinks it uses."""

from __future__ import annotations

from payhook.dispatch._policy import DEFAULT_RETRY_SCHEDULE_S, RetryPolicy
from payhook.dispatch._worker import Dispatcher
from payhook.dispatch.sinks import (
    SINKS,
    ErrorClass,
    Handler,
    Outcome,
    Sink,
    SinkContext,
    SinkFactory,
)
from payhook.dispatch.sinks.http import USER_AGENT, build_headers

__all__ = [
    "DEFAULT_RETRY_SCHEDULE_S",
    "SINKS",
    "USER_AGENT",
    "Dispatcher",
    "ErrorClass",
    "Handler",
    "Outcome",
    "RetryPolicy",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "build_headers",
]
