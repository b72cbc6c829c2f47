"""Provider local times to RFC 3339 with an offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from payhook.errors import NotificationError

__all__ = ["BEIJING", "parse_beijing", "parse_rfc3339", "to_rfc3339"]

# China Standard Time: UTC+8 all year, no daylight saving.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


# The shape Alipay sends nearly always (``yyyy-MM-dd HH:mm:ss``): read without strptime,
# which costs several times more on the callback path.
_PLAIN = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})\Z")


def parse_beijing(text: str, *, field: str) -> datetime:
    """Parse ``yyyy-MM-dd HH:mm:ss[.fff]`` or ``yyyyMMddHHmmss`` in Beijing time."""
    plain = _PLAIN.match(text)
    if plain is not None:
        year, month, day, hour, minute, second = map(int, plain.groups())
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING)
        except ValueError:  # e.g. month 13: not a time
            raise NotificationError(f"{field} is not a valid time", reason="bad_time") from None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=BEIJING)
        except (ValueError, TypeError):
            continue
    raise NotificationError(f"{field} is not a valid time", reason="bad_time")


def parse_rfc3339(text: str, *, field: str) -> datetime:
    """Parse an RFC 3339 time that carries an offset."""
    try:
        value = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        raise NotificationError(f"{field} is not a valid time", reason="bad_time") from None
    if value.tzinfo is None:
        raise NotificationError(f"{field} has no UTC offset", reason="bad_time")
    return value


def to_rfc3339(value: datetime) -> str:
    """Render an aware datetime as RFC 3339, keeping its offset (``Z`` for UTC)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    if value.utcoffset() == timedelta(0) and value.tzinfo is UTC:
        text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
        return text.replace("+00:00", "Z")
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
