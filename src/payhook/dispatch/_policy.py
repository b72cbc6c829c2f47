"""The retry policy: how long to wait after a failed attempt, and when a delivery is dead."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from payhook.errors import ConfigurationError

__all__ = ["DEFAULT_RETRY_SCHEDULE_S", "RetryPolicy"]

# Starts fast so a blip costs seconds (1 s, 4 s, 16 s, 64 s, 256 s), then spans about three
# days: 1 s + … + 3 x 24 h ≈ 3 d 20.6 h on average, and still more than 3 days with the
# -20 % jitter, so a subscriber down over a long weekend loses nothing.
DEFAULT_RETRY_SCHEDULE_S: tuple[float, ...] = (
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    30 * 60.0,
    2 * 3600.0,
    6 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
    24 * 3600.0,
    24 * 3600.0,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When a failed delivery is tried again.

    ``schedule_s[i]`` is the wait after failed attempt ``i + 1``; after the last entry has
    been used, the next failure makes the delivery ``dead`` (kept, listed, re-sendable).
    Each wait is spread by ``±jitter`` (uniform) so that deliveries failed together by an
    outage do not all come back in the same second. A ``Retry-After`` hint (429/503) is
    honoured when it asks for a longer wait than the schedule, up to ``max_retry_after_s``.

    Example::

        policy = RetryPolicy(schedule_s=(1, 4, 16), jitter=0.2)
        policy.next_delay_s(1, rand=0.5)                    # 1.0: no jitter at rand=0.5
        policy.next_delay_s(2, retry_after_s=60, rand=0.5)  # 60.0: the hint is longer
        policy.next_delay_s(4)                              # None: the delivery is dead

    Tests use a schedule of zeros (``RetryPolicy(schedule_s=(0, 0, 0))``) or a fake clock.
    """

    schedule_s: tuple[float, ...]
    jitter: float = 0.2
    max_retry_after_s: float = 6 * 3600

    def __post_init__(self) -> None:
        if not self.schedule_s:
            raise ConfigurationError("the retry schedule needs at least one entry")
        previous = 0.0
        for value in self.schedule_s:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError("retry schedule entries must be numbers of seconds")
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError("retry schedule entries must be finite and >= 0")
            if value < previous:
                raise ConfigurationError("the retry schedule must not decrease")
            previous = value
        if not (math.isfinite(self.jitter) and 0 <= self.jitter < 1):
            raise ConfigurationError("retry jitter must be in [0, 1)")
        if not (math.isfinite(self.max_retry_after_s) and self.max_retry_after_s >= 0):
            raise ConfigurationError("max_retry_after_s must be finite and >= 0")

    @property
    def max_attempts(self) -> int:
        """Attempts a delivery gets before it is dead (the first one plus one per entry)."""
        return len(self.schedule_s) + 1

    def next_delay_s(
        self, attempt: int, *, retry_after_s: float | None = None, rand: float | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: the number of the attempt that just failed, starting at 1.
            retry_after_s: the subscriber's ``Retry-After`` hint in seconds, if any.
            rand: a number in [0, 1] choosing the jitter (0 → −jitter, 1 → +jitter);
                drawn at random when omitted.

        Returns:
            The wait in seconds, or ``None`` when the schedule is used up (dead).
        """
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        if attempt > len(self.schedule_s):
            return None
        base = self.schedule_s[attempt - 1]
        r = random.random() if rand is None else min(max(rand, 0.0), 1.0)
        delay = base * (1.0 + self.jitter * (2.0 * r - 1.0))
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > 0:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay
