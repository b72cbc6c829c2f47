"""The in-process sink: calls the application's ``@hook.on`` handler with the :class:`Event`.

Handler deliveries go through the same outbox as any other (retries, dead state, replay).
The sink is process-local: it serves only the subscriptions whose handler this process
registered, and the claim leaves the others for a process that has them.
"""

from __future__ import annotations

import asyncio

from payhook.dispatch.sinks._base import (
    ErrorClass,
    Outcome,
    SinkContext,
    describe_error,
    elapsed_ms,
)
from payhook.events import Event, Handler
from payhook.storage import ClaimedDelivery

__all__ = ["Handler", "HandlerSink", "classify_handler_error"]


class HandlerSink:
    """Runs the handler registered under the delivery's subscription name, with a timeout."""

    def __init__(self, context: SinkContext) -> None:
        self._handlers = dict(context.handlers)
        self._clock = context.clock
        self._timeout_s = context.request_timeout_s
        self.names = frozenset(self._handlers)  # the only handler subscriptions claimed here

    def __repr__(self) -> str:
        return f"HandlerSink(names={sorted(self.names)!r})"

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, delivery: ClaimedDelivery) -> Outcome:
        """Run the handler on the delivery's event; a raise (or timeout) is a failed attempt."""
        clock = self._clock
        started = clock.monotonic()
        handler = self._handlers.get(delivery.subscription_name)
        if handler is None:  # the claim only takes this process's handlers
            return Outcome(
                ok=False,
                latency_ms=0,
                error_class=ErrorClass.HANDLER,
                error=f"no handler named {delivery.subscription_name!r} in this process",
            )
        try:
            event = Event.from_body(delivery.body)
            async with asyncio.timeout(self._timeout_s):
                await handler(event)
        except Exception as exc:  # noqa: BLE001 - user code: any error is a failed attempt
            return classify_handler_error(exc, latency_ms=elapsed_ms(clock, started))
        return Outcome(ok=True, latency_ms=elapsed_ms(clock, started))


def classify_handler_error(exc: BaseException, *, latency_ms: int) -> Outcome:
    """The outcome of an in-process handler that raised (or timed out)."""
    error_class = ErrorClass.TIMEOUT if isinstance(exc, TimeoutError) else ErrorClass.HANDLER
    return Outcome(
        ok=False, latency_ms=latency_ms, error_class=error_class, error=describe_error(exc)
    )
