"""The outbound dispatcher: retry policy, outcome classification, signed requests, the worker."""

from __future__ import annotations

from payhook.dispatch._attempt import Handler
from payhook.dispatch._classify import ErrorClass, Outcome
from payhook.dispatch._policy import DEFAULT_RETRY_SCHEDULE_S, RetryPolicy
from payhook.dispatch._request import USER_AGENT, build_headers
from payhook.dispatch._worker import Dispatcher

__all__ = [
    "DEFAULT_RETRY_SCHEDULE_S",
    "USER_AGENT",
    "Dispatcher",
    "ErrorClass",
    "Handler",
    "Outcome",
    "RetryPolicy",
    "build_headers",
]
