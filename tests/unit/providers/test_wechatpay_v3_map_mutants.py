"""Fixed examples for ``wechatpay_v3/_map.py``, from its mutation run (issue 14).

The mapping functions are called directly with decrypted resources. Each case asserts the
exact refusal: the error class, its reason and its message, which names the field that is
wrong so an operator knows where to look. See docs/mutation-testing.md.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from payhook.errors import NotificationError
from payhook.providers.wechatpay_v3._map import map_combined, map_other, map_paid, map_refund

MCH_ID = "1230000109"
APP_ID = "wxd678efh567hg6787"
ENVELOPE = {"id": "EV-1", "event_type": "TRANSACTION.SUCCESS"}


def _paid(**changes: object) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "mchid": MCH_ID,
        "appid": APP_ID,
        "out_trade_no": "O-1",
        "transaction_id": "T-1",
        "trade_state": "SUCCESS",
        "success_time": "2024-05-20T13:14:05+08:00",
        "amount": {"total": 8888, "currency": "CNY"},
    }
    return resource | changes


def _refund(**changes: object) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "mchid": MCH_ID,
        "out_trade_no": "O-1",
        "transaction_id": "T-1",
        "out_refund_no": "RF-1",
        "refund_id": "R-1",
        "amount": {"total": 8888, "refund": 1000, "currency": "CNY"},
    }
    return resource | changes


def _combined(**sub_changes: object) -> dict[str, Any]:
    sub: dict[str, Any] = {
        "mchid": "1900000101",
        "trade_state": "SUCCESS",
        "transaction_id": "T-1",
        "out_trade_no": "S-1",
        "success_time": "2024-05-20T13:14:05+08:00",
        "amount": {"total_amount": 100, "currency": "CNY"},
    }
    return {
        "combine_appid": APP_ID,
        "combine_mchid": MCH_ID,
        "combine_out_trade_no": "C-1",
        "sub_orders": [sub | sub_changes],
    }


def _refusal(call: Any, resource: dict[str, Any], *args: object) -> tuple[str | None, str]:
    with pytest.raises(NotificationError) as caught:
        call(resource, ENVELOPE, *args, mch_id=MCH_ID, app_id=APP_ID)
    return caught.value.reason, str(caught.value)


@pytest.mark.parametrize(
    ("resource", "verdict"),
    [
        (_paid(amount={"total": -1}), ("bad_amount", "amount.total is negative")),
        (_paid(success_time="yesterday"), ("bad_time", "success_time is not a valid time")),
    ],
    ids=["negative-total", "bad-success-time"],
)
def test_paid_refusals_name_the_field(resource: dict[str, Any], verdict: tuple[str, str]) -> None:
    """A paid resource's bad amount or time is refused with the field's own name."""
    assert _refusal(map_paid, resource) == verdict


@pytest.mark.parametrize(
    ("resource", "verdict"),
    [
        (
            _combined(amount={"total_amount": -1}),
            ("bad_amount", "amount.total_amount is negative"),
        ),
        (_combined(success_time="yesterday"), ("bad_time", "success_time is not a valid time")),
    ],
    ids=["negative-total-amount", "bad-success-time"],
)
def test_combined_refusals_name_the_field(
    resource: dict[str, Any], verdict: tuple[str, str]
) -> None:
    """A sub-order's bad amount or time is refused with the field's own name."""
    assert _refusal(map_combined, resource) == verdict


@pytest.mark.parametrize(
    ("resource", "verdict"),
    [
        (
            _refund(amount={"total": -1, "refund": 1000}),
            ("bad_amount", "amount.total is negative"),
        ),
        (
            _refund(amount={"total": 8888, "refund": -1}),
            ("bad_amount", "amount.refund is negative"),
        ),
    ],
    ids=["negative-total", "negative-refund"],
)
def test_refund_refusals_name_the_field(resource: dict[str, Any], verdict: tuple[str, str]) -> None:
    """A refund's bad order total or refund amount is refused with the field's own name."""
    assert _refusal(map_refund, resource, "REFUND.SUCCESS") == verdict


def test_a_foreign_merchant_log_cuts_the_event_type_and_names_the_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The event type is cut to exactly 64 characters; provider and channel are log fields."""
    event_type = "E" * 63 + "F" + "G" * 10
    with caplog.at_level(logging.WARNING, logger="payhook.providers.wechatpay_v3"):
        draft = map_other(
            {"mchid": "1900000002"},
            ENVELOPE,
            event_id="EV-1",
            event_type=event_type,
            mch_id=MCH_ID,
            channel="wx-main",
        )
    assert draft.merchant_id == "1900000002"
    (record,) = caplog.records
    expected = "E" * 63 + "F"
    assert record.getMessage() == (
        f"A {expected} notification on channel wx-main names another merchant."
    )
    assert record.action == "foreign_merchant"  # type: ignore[attr-defined]
    assert record.provider == "wechatpay"  # type: ignore[attr-defined]
    assert record.channel == "wx-main"  # type: ignore[attr-defined]
