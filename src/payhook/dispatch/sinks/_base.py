"""The sink contract: what the dispatcher hands a sink, and the :class:`Outcome` it gets back.

A sink delivers one claimed delivery to one kind of destination (an HTTP endpoint, an
in-process handler; contract §13 adds AMQP, NATS and Redis). The dispatcher owns everything
around a send: claiming, concurrency, retries, the dead state and writing results back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from payhook._clock import Clock
from payhook.events import Handler

if TYPE_CHECKING:
    from payhook.storage import ClaimedDelivery

__all__ = [
    "ERROR_TEXT_CHARS",
    "ErrorClass",
    "Outcome",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "clean_text",
    "describe_error",
    "elapsed_ms",
]

ERROR_TEXT_CHARS = 500


class ErrorClass(StrEnum):
    """Why an attempt failed, as stored in ``payhook_delivery_attempts.error_class``."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    DNS = "dns"
    TLS = "tls"
    HTTP = "http"
    HANDLER = "handler"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The result of one attempt.

    ``retry_after_s`` is the receiver's own hint (an HTTP ``Retry-After``), in seconds;
    the retry policy honours it when it is longer than the schedule's wait.
    ``disable_reason`` is set when the receiver asks to stop receiving (HTTP 410, per
    Standard Webhooks): the subscription is disabled, and the reason recorded.
    """

    ok: bool
    latency_ms: int
    status_code: int | None = None
    error_class: ErrorClass | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after_s: float | None = None
    disable_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkContext:
    """What the dispatcher gives every sink it builds; a sink takes what it needs.

    Args:
        clock: time source for timestamps and latencies.
        request_timeout_s: how long one attempt may take (contract §6 ``request_timeout``).
        concurrency: the most deliveries in flight at once, across all sinks.
        handlers: in-process subscribers by subscription name (``@hook.on``).
        refuse_private_targets: also refuse private, loopback and other non-public
            addresses, not only link-local and metadata ones
            (:func:`payhook._targets.refused_address`).
    """

    clock: Clock
    request_timeout_s: float
    concurrency: int
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    refuse_private_targets: bool = False


class Sink(Protocol):
    """Delivers claimed deliveries of one :class:`~payhook._types.SubscriptionKind`.

    The dispatcher builds one sink per kind (``sink = factory(context)``), calls
    :meth:`open` before its first send and :meth:`close` when it stops (a dispatcher can
    run again after that, so ``open`` must work after ``close``), and awaits :meth:`send`
    for each delivery, many at a time, on one event loop.

    Example: a sink that writes events to a list::

        class ListSink:
            names = None  # every subscription of its kind

            def __init__(self, context: SinkContext) -> None:
                self.sent: list[bytes] = []

            async def open(self) -> None: ...
            async def close(self) -> None: ...

            async def send(self, delivery: ClaimedDelivery) -> Outcome:
                self.sent.append(delivery.body)
                return Outcome(ok=True, latency_ms=0)
    """

    @property
    def names(self) -> Collection[str] | None:
        """The subscriptions this sink can serve, by name; ``None`` for all of its kind.

        A process-local sink (in-process handlers) lists the ones this process has, and
        the claim leaves the others for a process that has them.
        """
        ...

    async def open(self) -> None:
        """Prepare to send (e.g. create a client session). Must not fail because a
        destination is unreachable: connect lazily in :meth:`send`, where a failure is a
        failed attempt."""
        ...

    async def send(self, delivery: ClaimedDelivery) -> Outcome:
        """Make one attempt. Never raises except on cancellation: a failure is an Outcome."""
        ...

    async def close(self) -> None:
        """Release what :meth:`open` acquired."""
        ...


SinkFactory = Callable[[SinkContext], Sink]
"""Builds a sink for a dispatcher; a sink class taking a :class:`SinkContext` is one."""


def clean_text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, without NUL (PostgreSQL text refuses it)."""
    return value[:limit].replace("\x00", "\ufffd")


def describe_error(exc: BaseException, redact: tuple[tuple[str, str], ...] = ()) -> str:
    """``"ExceptionName: message"`` for an attempt record, bounded and with secrets replaced.

    Args:
        exc: what the sink's client (or the handler) raised.
        redact: ``(text, replacement)`` pairs applied to the message, e.g. a URL that may
            carry credentials replaced by its redacted form.
    """
    text = str(exc)
    for secret, shown in redact:
        if secret:
            text = text.replace(secret, shown)
    name = type(exc).__name__
    return clean_text(f"{name}: {text}" if text else name, ERROR_TEXT_CHARS)


def elapsed_ms(clock: Clock, started: float) -> int:
    """Whole milliseconds since ``started`` (a ``clock.monotonic()`` reading)."""
    return max(0, int((clock.monotonic() - started) * 1000))
