"""FakeClock: time moves only when told to, and sleeping advances it at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payhook.testing import FakeClock

pytestmark = pytest.mark.anyio

START = datetime(2026, 11, 28, tzinfo=UTC)


async def test_sleep_advances_without_waiting() -> None:
    """A day-long sleep returns at once with the clock a day later."""
    clock = FakeClock(START)
    before = clock.monotonic()
    await clock.sleep(86400)
    assert (clock.now() - START).total_seconds() == 86400
    assert clock.monotonic() - before >= 86400
    assert clock.sleeps == [86400]


def test_advance_and_validation() -> None:
    """advance moves forward only; naive start times are refused."""
    clock = FakeClock(START)
    clock.advance(1.5)
    assert clock.now() == datetime(2026, 11, 28, 0, 0, 1, 500000, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="real_sleep_s"):
        FakeClock(START, real_sleep_s=-1)


def test_default_start_is_now() -> None:
    """Without a start the clock begins at the real time (so signatures verify)."""
    assert FakeClock().now().tzinfo is not None
