"""``[retention]`` (contract §14): defaults, durations, and the windows refused as unsafe."""

from __future__ import annotations

from pathlib import Path

import pytest

from payhook._pruner import describe_windows, format_duration, retention_windows
from payhook.config import load_settings
from payhook.errors import ConfigurationError

DAY = 86400.0


def _config(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "payhook.toml"
    path.write_text(f"[retention]\n{section}\n")
    return path


def test_defaults_are_the_contracts(tmp_path: Path) -> None:
    retention = load_settings(_config(tmp_path, "")).retention
    assert (retention.refused_callbacks, retention.attempts, retention.events) == (
        7 * DAY,
        30 * DAY,
        400 * DAY,
    )
    assert describe_windows(retention) == "refused callbacks 7d, attempts 30d, events 400d"
    assert not retention.refund_risk
    windows = retention_windows(retention)
    assert windows.events.days == 400
    assert windows.attempts.days == 30
    assert windows.refused_callbacks.days == 7


def test_durations_parse_like_the_rest_of_the_config(tmp_path: Path) -> None:
    text = 'refused_callbacks = "36h"\nattempts = "90m"\nevents = "800d"'
    retention = load_settings(_config(tmp_path, text)).retention
    assert retention.refused_callbacks == 36 * 3600
    assert retention.attempts == 5400
    assert retention.events == 800 * DAY
    assert describe_windows(retention) == "refused callbacks 36h, attempts 90m, events 800d"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('refused_callbacks = "0s"', "retention.refused_callbacks: must be greater than 0"),
        ('attempts = "0"', "retention.attempts: must be greater than 0"),
        ('attempts = "-1d"', "retention.attempts: not a duration"),
        ('events = "1d"', "retention.events: must be at least 2d"),
        ('events = "47h"', "retention.events: must be at least 2d"),
        ('events = "soon"', "retention.events: not a duration"),
        ('event = "400d"', "retention.event: unknown key"),
    ],
)
def test_bad_windows_are_refused(tmp_path: Path, line: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_config(tmp_path, line))
    assert expected in caught.value.message


def test_under_a_year_of_events_is_flagged(tmp_path: Path) -> None:
    """Accepted (a user may need it) but flagged: Alipay refund shares need the trade's
    earlier refunds (contract §9)."""
    assert load_settings(_config(tmp_path, 'events = "2d"')).retention.refund_risk
    assert load_settings(_config(tmp_path, 'events = "365d"')).retention.refund_risk
    assert not load_settings(_config(tmp_path, 'events = "366d"')).retention.refund_risk


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(7 * DAY, "7d"), (36 * 3600, "36h"), (90 * 60, "90m"), (45, "45s"), (1.5, "1.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
