"""RetryPolicy: the whole documented default schedule, its jitter, and each validation boundary.

The README documents the default waits: 1 s, 4 s, 16 s, 64 s, 256 s, 30 m, 2 h, 6 h, 12 h,
24 h, 24 h, 24 h, each spread by ±20 %. These tests pin every entry, so that a changed
number is a failing test rather than a silent change of when subscribers hear from us.
"""

from __future__ import annotations

import dataclasses

import pytest

from payhook.dispatch import DEFAULT_RETRY_SCHEDULE_S, RetryPolicy
from payhook.errors import ConfigurationError

MINUTE = 60.0
HOUR = 3600.0
DOCUMENTED = (
    1.0, 4.0, 16.0, 64.0, 256.0, 30 * MINUTE, 2 * HOUR, 6 * HOUR, 12 * HOUR,
    24 * HOUR, 24 * HOUR, 24 * HOUR,
)  # fmt: skip
DEFAULT = RetryPolicy(schedule_s=DEFAULT_RETRY_SCHEDULE_S)


def test_default_schedule_is_the_documented_one() -> None:
    """Every entry, in order, exactly: twelve waits, then the delivery is dead."""
    assert DEFAULT_RETRY_SCHEDULE_S == DOCUMENTED
    assert [type(wait) for wait in DEFAULT_RETRY_SCHEDULE_S] == [float] * 12
    assert DEFAULT.max_attempts == 13


def test_default_jitter_and_retry_after_cap() -> None:
    """The defaults: ±20 % jitter, a Retry-After hint honoured up to six hours."""
    assert DEFAULT.jitter == 0.2
    assert DEFAULT.max_retry_after_s == 6 * HOUR


@pytest.mark.parametrize(("attempt", "wait"), list(enumerate(DOCUMENTED, 1)), ids=str)
def test_each_default_wait_and_its_jitter_bounds(attempt: int, wait: float) -> None:
    """Attempt n waits the n-th entry: exactly at rand 0.5, -20 % at rand 0, +20 % at rand 1."""
    assert DEFAULT.next_delay_s(attempt, rand=0.5) == wait
    assert DEFAULT.next_delay_s(attempt, rand=0.0) == pytest.approx(0.8 * wait)
    assert DEFAULT.next_delay_s(attempt, rand=1.0) == pytest.approx(1.2 * wait)
    assert DEFAULT.next_delay_s(attempt, rand=0.25) == pytest.approx(0.9 * wait)


def test_dead_after_the_twelfth_failure() -> None:
    """The thirteenth failed attempt ends the delivery, whatever the hint."""
    assert DEFAULT.next_delay_s(12, rand=0.5) == 24 * HOUR
    assert DEFAULT.next_delay_s(13, rand=0.5) is None
    assert DEFAULT.next_delay_s(13, retry_after_s=60.0, rand=0.5) is None


def test_policy_is_immutable_and_keyword_only() -> None:
    """A policy is a value: frozen, and built with keywords only."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.jitter = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy((1.0,))  # type: ignore[misc]


def test_retry_after_exactly_at_the_cap_and_zero() -> None:
    """A hint equal to the cap is honoured in full; a zero or negative hint is ignored."""
    policy = RetryPolicy(schedule_s=(10.0,), max_retry_after_s=100.0)
    assert policy.next_delay_s(1, retry_after_s=100.0, rand=0.5) == 100.0
    assert policy.next_delay_s(1, retry_after_s=0.0, rand=0.0) == pytest.approx(8.0)
    assert policy.next_delay_s(1, retry_after_s=-50.0, rand=0.5) == 10.0
    assert policy.next_delay_s(1, retry_after_s=float("inf"), rand=0.5) == 10.0


def test_a_short_retry_after_counts_after_a_zero_wait() -> None:
    """Any positive hint, even under a second, lengthens a shorter (here zero) wait."""
    policy = RetryPolicy(schedule_s=(0.0,))
    assert policy.next_delay_s(1, retry_after_s=0.5, rand=0.5) == 0.5


def test_retry_after_beats_a_short_jittered_wait() -> None:
    """The hint is compared with the jittered wait, not the bare entry."""
    policy = RetryPolicy(schedule_s=(10.0,), jitter=0.5)
    assert policy.next_delay_s(1, retry_after_s=6.0, rand=0.0) == 6.0
    assert policy.next_delay_s(1, retry_after_s=14.0, rand=1.0) == 15.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule_s": (0.0,)},
        {"schedule_s": (0, 0, 0)},
        {"schedule_s": (1.0, 1.0)},
        {"schedule_s": (1, 2.5)},
        {"schedule_s": (1.0,), "jitter": 0.0},
        {"schedule_s": (1.0,), "jitter": 0.99},
        {"schedule_s": (1.0,), "max_retry_after_s": 0.0},
    ],
    ids=["zero", "zeros", "equal-entries", "int-and-float", "no-jitter", "jitter-high", "cap-0"],
)
def test_boundary_policies_are_accepted(kwargs: dict[str, object]) -> None:
    """Zero waits, equal neighbours, no jitter and a zero cap are all valid."""
    RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule_s": ()}, "at least one entry"),
        ({"schedule_s": ("1",)}, "must be numbers"),
        ({"schedule_s": (False,)}, "must be numbers"),
        ({"schedule_s": (None,)}, "must be numbers"),
        ({"schedule_s": (float("nan"),)}, "finite and >= 0"),
        ({"schedule_s": (-0.5,)}, "finite and >= 0"),
        ({"schedule_s": (1.0, 0.5)}, "must not decrease"),
        ({"schedule_s": (2.0, 3.0, 2.5)}, "must not decrease"),
        ({"schedule_s": (1.0,), "jitter": float("nan")}, r"jitter must be in \[0, 1\)"),
        ({"schedule_s": (1.0,), "jitter": 1.5}, r"jitter must be in \[0, 1\)"),
        ({"schedule_s": (1.0,), "max_retry_after_s": float("inf")}, "max_retry_after_s"),
        ({"schedule_s": (1.0,), "max_retry_after_s": float("nan")}, "max_retry_after_s"),
    ],
    ids=["empty", "string", "bool", "none", "nan", "negative", "decreasing",
         "decreasing-later", "jitter-nan", "jitter-high", "cap-inf", "cap-nan"],
)  # fmt: skip
def test_invalid_policies_are_refused_with_the_reason(
    kwargs: dict[str, object], message: str
) -> None:
    """Each refusal says what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_zero_and_negative_are_programming_errors() -> None:
    """Attempt numbers start at 1; attempt 1 is valid."""
    assert DEFAULT.next_delay_s(1, rand=0.5) == 1.0
    for attempt in (0, -1):
        with pytest.raises(ValueError, match="start at 1"):
            DEFAULT.next_delay_s(attempt)
