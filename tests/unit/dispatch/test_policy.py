"""RetryPolicy: the schedule, jitter bounds, Retry-After handling and validation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from payhook.dispatch import DEFAULT_RETRY_SCHEDULE_S, RetryPolicy
from payhook.errors import ConfigurationError

DEFAULT = RetryPolicy(schedule_s=DEFAULT_RETRY_SCHEDULE_S)

schedules = st.lists(
    st.floats(min_value=0, max_value=7 * 86400, allow_nan=False), min_size=1, max_size=15
).map(lambda xs: tuple(sorted(xs)))
jitters = st.floats(min_value=0, max_value=0.99)
rands = st.floats(min_value=0, max_value=1)


def test_default_schedule_starts_fast_and_outlasts_three_days() -> None:
    """The default waits start at 1 s, 4 s, 16 s, 64 s, 256 s and, even with every jitter
    draw at -20 %, the last attempt comes more than three days after the first."""
    assert DEFAULT_RETRY_SCHEDULE_S[:5] == (1.0, 4.0, 16.0, 64.0, 256.0)
    shortest = sum(DEFAULT.next_delay_s(n, rand=0.0) or 0.0 for n in range(1, DEFAULT.max_attempts))
    assert shortest > 3 * 86400
    assert sum(DEFAULT_RETRY_SCHEDULE_S) < 5 * 86400


def test_dead_after_the_last_entry() -> None:
    """After the last scheduled wait has been used the next failure is final (None)."""
    policy = RetryPolicy(schedule_s=(1.0, 2.0))
    assert policy.next_delay_s(1, rand=0.5) == 1.0
    assert policy.next_delay_s(2, rand=0.5) == 2.0
    assert policy.next_delay_s(3, rand=0.5) is None
    assert policy.max_attempts == 3


@pytest.mark.parametrize(
    ("rand", "expected"),
    [(0.0, 80.0), (0.5, 100.0), (1.0, 120.0), (-3.0, 80.0), (7.0, 120.0)],
    ids=["low", "middle", "high", "clamped-low", "clamped-high"],
)
def test_jitter_spreads_plus_minus_twenty_percent(rand: float, expected: float) -> None:
    """rand 0 gives -20 %, 0.5 the exact entry, 1 gives +20 % (out-of-range rand is clamped)."""
    policy = RetryPolicy(schedule_s=(100.0,))
    assert policy.next_delay_s(1, rand=rand) == pytest.approx(expected)


def test_random_jitter_stays_in_range() -> None:
    """Without an explicit rand the delay still stays within ±jitter."""
    policy = RetryPolicy(schedule_s=(100.0,), jitter=0.2)
    delays = [policy.next_delay_s(1) for _ in range(500)]
    assert all(d is not None and 80.0 <= d <= 120.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("hint", "expected"),
    [(None, 10.0), (5.0, 10.0), (60.0, 60.0), (10 * 3600.0, 6 * 3600.0), (float("nan"), 10.0)],
    ids=["none", "shorter", "longer", "capped", "nan"],
)
def test_retry_after_honoured_when_longer_and_bounded(hint: float | None, expected: float) -> None:
    """A Retry-After hint wins only when it asks for more, and never past max_retry_after_s."""
    policy = RetryPolicy(schedule_s=(10.0,))
    assert policy.next_delay_s(1, retry_after_s=hint, rand=0.5) == pytest.approx(expected)


def test_retry_after_does_not_revive_a_dead_delivery() -> None:
    """Past the schedule a Retry-After hint does not buy another attempt."""
    policy = RetryPolicy(schedule_s=(10.0,))
    assert policy.next_delay_s(2, retry_after_s=30.0) is None


def test_attempt_numbers_start_at_one() -> None:
    """Attempt 0 is a programming error."""
    with pytest.raises(ValueError, match="start at 1"):
        DEFAULT.next_delay_s(0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule_s": ()},
        {"schedule_s": (5.0, 1.0)},
        {"schedule_s": (-1.0,)},
        {"schedule_s": (float("inf"),)},
        {"schedule_s": (True,)},
        {"schedule_s": (1.0,), "jitter": 1.0},
        {"schedule_s": (1.0,), "jitter": -0.1},
        {"schedule_s": (1.0,), "max_retry_after_s": -1.0},
    ],
    ids=["empty", "decreasing", "negative", "infinite", "bool", "jitter-1", "jitter-neg", "cap"],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    """A policy that makes no sense is a configuration error."""
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(schedule=schedules, jitter=jitters, rand=rands)
def test_delays_are_non_decreasing_for_the_same_draw(
    schedule: tuple[float, ...], jitter: float, rand: float
) -> None:
    """With the same jitter draw, each wait is at least as long as the previous one."""
    policy = RetryPolicy(schedule_s=schedule, jitter=jitter)
    delays = [policy.next_delay_s(n, rand=rand) for n in range(1, len(schedule) + 1)]
    assert all(d is not None for d in delays)
    assert all(a <= b for a, b in itertools.pairwise(delays))  # type: ignore[operator]


@given(
    schedule=schedules,
    jitter=jitters,
    rand=rands,
    hint=st.none() | st.floats(min_value=0, max_value=1e9),
    attempt=st.integers(min_value=1, max_value=20),
)
def test_delays_are_bounded(
    schedule: tuple[float, ...], jitter: float, rand: float, hint: float | None, attempt: int
) -> None:
    """Every wait lies within the jittered entry and the Retry-After cap; past the end, None."""
    policy = RetryPolicy(schedule_s=schedule, jitter=jitter, max_retry_after_s=3600.0)
    delay = policy.next_delay_s(attempt, retry_after_s=hint, rand=rand)
    if attempt > len(schedule):
        assert delay is None
        return
    assert delay is not None
    base = schedule[attempt - 1]
    assert base * (1 - jitter) - 1e-9 <= delay
    assert delay <= max(base * (1 + jitter), 3600.0) + 1e-9
