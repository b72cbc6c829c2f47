"""Lanes: claim sizing, per-subscription caps, lease checks and wake decisions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payhook.dispatch._lanes import Lanes
from payhook.storage._outbox import ClaimedDelivery

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _row(n: int, sub: str, *, lease_s: float = 40.0) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=f"dlv_{n:04d}",
        event_id=f"evt_{n:04d}",
        subscription_id=sub,
        subscription_name=sub,
        kind="http",
        url="http://127.0.0.1:9/x",
        secrets_json="[]",
        body=b"{}",
        attempt=1,
        claim_token="t",
        claimed_at=NOW,
        lease_until=NOW + timedelta(seconds=lease_s),
    )


def _lanes() -> Lanes:
    return Lanes(concurrency=4, per_subscription=2, request_timeout_s=10.0)


def test_claims_run_ahead_of_the_senders_by_one_batch() -> None:
    """Up to twice the concurrency may be claimed; a claim waits for a decent batch."""
    lanes = _lanes()
    assert lanes.room == 8
    assert lanes.should_claim()
    lanes.add([_row(i, f"s{i}") for i in range(7)])
    assert lanes.room == 1
    start, _ = lanes.take(NOW)
    assert len(start) == 4  # concurrency
    assert not lanes.should_claim()  # one free place, and rows are still queued


def test_a_subscription_never_exceeds_its_share() -> None:
    """A subscription holds at most its cap in flight, and twice that in all."""
    lanes = _lanes()
    lanes.add([_row(i, "slow") for i in range(4)] + [_row(10, "fast")])
    assert lanes.remaining() == {"slow": 0, "fast": 3}
    start, _ = lanes.take(NOW)
    assert [r.subscription_id for r in start] == ["slow", "slow", "fast"]
    assert [r.id for r in lanes.queue] == ["dlv_0002", "dlv_0003"]
    # A slow row finishing frees a slot for the next slow row, and room to claim more.
    assert lanes.finish(start[0]) is True
    assert lanes.remaining()["slow"] == 1
    start2, _ = lanes.take(NOW)
    assert [r.id for r in start2] == ["dlv_0002"]


def test_rows_whose_lease_is_too_short_are_given_back() -> None:
    """A queued row whose lease no longer covers a full request is not sent."""
    lanes = _lanes()
    lanes.add([_row(1, "a", lease_s=9.0), _row(2, "a", lease_s=40.0)])
    start, give_back = lanes.take(NOW)
    assert [r.id for r in start] == ["dlv_0002"]
    assert [r.id for r in give_back] == ["dlv_0001"]
    assert lanes.outstanding == 1


def test_blocked_subscriptions_are_skipped_and_not_claimed() -> None:
    """After a 410, queued rows of that subscription go back and no more are claimed."""
    lanes = _lanes()
    lanes.blocked.add("gone")
    lanes.add([_row(1, "gone"), _row(2, "ok")])
    assert lanes.remaining()["gone"] == 0
    start, give_back = lanes.take(NOW)
    assert [r.id for r in start] == ["dlv_0002"]
    assert [r.id for r in give_back] == ["dlv_0001"]


def test_finish_wakes_the_claimer_when_it_matters() -> None:
    """Finishing wakes the claimer for a batch, a full subscription freeing up, or idleness."""
    lanes = Lanes(concurrency=8, per_subscription=1, request_timeout_s=10.0)
    rows = [_row(1, "a"), _row(2, "a"), _row(3, "b")]
    lanes.add(rows)
    start, _ = lanes.take(NOW)
    assert [r.id for r in start] == ["dlv_0001", "dlv_0003"]
    assert lanes.finish(start[0]) is True  # "a" was full (2 held, cap 1 -> 2 outstanding)
    assert lanes.finish(start[0]) is False  # unknown now: ignored
    drained = lanes.drain_queue()
    assert [r.id for r in drained] == ["dlv_0002"]
    assert lanes.finish(start[1]) is True  # nothing in flight any more
    assert lanes.outstanding == 0
    assert lanes.remaining() == {}


def test_capped_tells_when_a_claim_would_skip_a_full_subscription() -> None:
    """A subscription holding its full share (queued + in flight) caps the next claim;
    finishing one of its rows, or a 410 block, lifts that."""
    lanes = _lanes()
    lanes.add([_row(i, "a") for i in range(3)])
    assert not lanes.capped()  # 3 of a share of 4
    lanes.add([_row(3, "a")])
    assert lanes.capped()
    start, _ = lanes.take(NOW)
    lanes.finish(start[0])
    assert not lanes.capped()
    lanes.add([_row(9, "a")])
    lanes.blocked.add("a")
    assert not lanes.capped()  # a blocked subscription is skipped for another reason
