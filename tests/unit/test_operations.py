"""The operator service's pure parts: the one time parser, the subscription view and rules,
and the error codes the admin API answers with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payhook.asgi._admin_common import EDGE_CODES, ERROR_CODES
from payhook.errors import (
    InvalidRequestError,
    RequestError,
    SubscriptionIsHandlerError,
    SubscriptionManagedByConfigError,
)
from payhook.operations import (
    SECRET_MASK,
    Subscription,
    check_editable,
    parse_status,
    parse_time,
    subscription_json,
)
from payhook.storage._subscription_model import SubscriptionSecret

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - timedelta(hours=1)),
        ("90m", NOW - timedelta(minutes=90)),
        ("3d", NOW - timedelta(days=3)),
        ("30", NOW - timedelta(seconds=30)),
        ("0", NOW),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("2026-11-28T09:00:00Z", datetime(2026, 11, 28, 9, tzinfo=UTC)),
        ("2026-11-28T17:00:00+08:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
        ("2026-11-28 09:00:00.5z", datetime(2026, 11, 28, 9, 0, 0, 500000, tzinfo=UTC)),
        ("2026-12-31T23:59:60Z", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("9" * 60, datetime.min.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59-23:59", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_parse_time_reads_times_and_ages(text: str, expected: datetime) -> None:
    """An RFC 3339 time with an offset or an age before now, as aware UTC."""
    assert parse_time(text, name="since", now=NOW) == expected


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "1 h", " 1h", "-1h", "1w", "2026-11-28T09:00:00", "2026-11-28",
     "2026-13-01T00:00:00Z", "2026-11-28T09:00:00+24:00", "１h"],
)  # fmt: skip
def test_parse_time_refuses_the_rest(text: str) -> None:
    """Anything else is an invalid_parameter naming the field."""
    with pytest.raises(InvalidRequestError) as info:
        parse_time(text, name="since", now=NOW)
    assert info.value.code == "invalid_parameter"
    assert info.value.message.startswith("since: ")


def test_parse_status() -> None:
    """Statuses by name; anything else lists the valid ones."""
    assert parse_status("dead") == "dead"
    with pytest.raises(InvalidRequestError, match="pending, failed, succeeded, dead"):
        parse_status("lost")


def _sub(**changes: object) -> Subscription:
    values: dict[str, object] = {
        "id": "sub_1",
        "name": "crm",
        "kind": "http",
        "url": "https://crm.example/hook",
        "events": ("*",),
        "secrets": (SubscriptionSecret(secret=SECRET),),
        "enabled": True,
        "disabled_reason": None,
        "source": "api",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return Subscription(**values)  # type: ignore[arg-type]


def test_subscription_json_masks_the_secret() -> None:
    """The one view: the secret only when given (creation), else the mask; none for handlers."""
    masked = subscription_json(_sub(), NOW)
    assert masked["secret"] == SECRET_MASK
    assert SECRET not in repr(masked)
    assert masked["secrets"] == [{"expires_at": None}]
    assert subscription_json(_sub(), NOW, secret=SECRET)["secret"] == SECRET
    handler = _sub(kind="handler", url=None, secrets=(), source="code")
    assert subscription_json(handler, NOW)["secret"] is None


def test_only_api_subscriptions_are_editable() -> None:
    """Config and handler subscriptions may only be toggled: one rule for API and CLI."""
    check_editable(_sub(), what="remove it")
    with pytest.raises(SubscriptionManagedByConfigError, match="config file"):
        check_editable(_sub(source="config"), what="remove it")
    with pytest.raises(SubscriptionIsHandlerError, match="in-process handler"):
        check_editable(_sub(kind="handler", source="code"), what="remove it")


def _request_errors(cls: type[RequestError]) -> list[type[RequestError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _request_errors(sub)
    return found


def test_error_codes_are_the_published_ones() -> None:
    """Every code the admin API has always answered with, with its status, and no other."""
    assert ERROR_CODES == {
        "invalid_parameter": 400,
        "invalid_cursor": 400,
        "invalid_json": 400,
        "unauthorized": 401,
        "not_found": 404,
        "event_not_found": 404,
        "delivery_not_found": 404,
        "subscription_not_found": 404,
        "method_not_allowed": 405,
        "subscription_exists": 409,
        "subscription_managed_by_config": 409,
        "subscription_is_handler": 409,
        "delivery_in_flight": 409,
        "conflict": 409,
        "body_too_large": 413,
        "invalid_body": 422,
        "invalid_name": 422,
        "invalid_url": 422,
        "refused_target": 422,
        "invalid_events": 422,
        "invalid_secret": 422,
        "weak_secret": 422,
        "invalid_subscription": 422,
        "internal_error": 500,
        "storage_unavailable": 503,
    }
    classes = _request_errors(RequestError)[1:]
    assert len({cls.code for cls in classes}) == len(classes), "two errors share a code"
    assert not set(EDGE_CODES) & {cls.code for cls in classes}
    for cls in classes:
        error = cls("x")
        assert error.reason == cls.code
        assert ERROR_CODES[error.code] == error.status_code
