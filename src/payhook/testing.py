"""Helpers for testing code that uses payhook: a fake clock that makes retry schedules instant."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from payhook._clock import SystemClock

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`payhook._clock.Clock` whose time only moves when told to, or when slept on.

    ``now()`` starts at ``start`` (default: the real time at construction, so signatures
    it produces still verify with libraries that read the wall clock) and moves only by
    :meth:`advance` or :meth:`sleep`. ``sleep(s)`` advances the time by ``s`` and returns
    at once (after yielding to the event loop, or after ``real_sleep_s`` of real time), so
    a dispatcher waiting for a 24 h retry resumes immediately with the clock 24 h later.

    Example::

        clock = FakeClock()
        dispatcher = Dispatcher(engine=engine, policy=policy, clock=clock)
        await dispatcher.run_until_idle()   # first attempt fails
        clock.advance(4.0)                  # the retry is due now
        await dispatcher.run_until_idle()   # second attempt
    """

    def __init__(self, start: datetime | None = None, *, real_sleep_s: float = 0.0) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        if real_sleep_s < 0:
            raise ValueError("real_sleep_s must be >= 0")
        self._start = start if start is not None else SystemClock().now()
        self._offset = 0.0
        self._real_sleep_s = real_sleep_s
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The fake current time (aware UTC)."""
        return self._start + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        """Real monotonic time plus every advance, so it never goes backwards."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and return without waiting (records the request)."""
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(min(self._real_sleep_s, seconds))
