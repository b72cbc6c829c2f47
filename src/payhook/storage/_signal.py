"""In-process wake-up from the intake path to the dispatcher: "new deliveries are due"."""

from __future__ import annotations

import asyncio

__all__ = ["OutboxSignal"]


class OutboxSignal:
    """A level-triggered wake-up that any thread may raise and one event loop awaits.

    The intake path calls :meth:`notify` after a commit that created deliveries; the
    dispatcher awaits :meth:`wait` with its poll interval as the timeout. Across processes,
    PostgreSQL ``NOTIFY payhook_outbox`` (sent in the intake transaction) does the same.
    """

    CHANNEL = "payhook_outbox"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._pending = False

    def _bind(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._loop = loop
            self._event = asyncio.Event()
            if self._pending:
                self._event.set()
        return self._event

    def notify(self) -> None:
        """Wake the waiter (thread-safe; a no-op before anyone waits, but remembered)."""
        loop, event = self._loop, self._event
        if loop is None or event is None:
            self._pending = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a notification; True if one came."""
        event = self._bind()
        self._pending = False
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            event.clear()
        return True
