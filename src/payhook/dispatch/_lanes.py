"""Local bookkeeping of claimed deliveries: what may be claimed, started, and when to wake.

Pure (no I/O): the worker asks :class:`Lanes` how many rows to claim and for which
subscriptions, queues what it claimed, and takes startable rows from it.

- At most ``concurrency`` deliveries are in flight, and at most ``per_subscription`` per
  subscription, so one slow subscriber only ever holds its own slots.
- A claim may run ahead of the senders by as much again (a prefetch of ``concurrency``
  rows overall and ``per_subscription`` per subscription), so the next batch is claimed
  while the current one is being sent.
- A queued row is only started while its lease still covers a full request; otherwise it
  is given back unsent rather than sent by a worker that may no longer own it.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime, timedelta

from payhook.storage import ClaimedDelivery

__all__ = ["Lanes"]


class Lanes:
    """Counts of claimed deliveries, per subscription and overall."""

    def __init__(self, *, concurrency: int, per_subscription: int, request_timeout_s: float):
        self.concurrency = concurrency
        self.per_subscription = per_subscription
        self.max_outstanding = 2 * concurrency
        self.max_outstanding_per_sub = 2 * per_subscription
        self.claim_min = max(1, concurrency // 2)
        self._need = timedelta(seconds=request_timeout_s)
        self.queue: deque[ClaimedDelivery] = deque()
        self.busy: dict[str, ClaimedDelivery] = {}
        self._busy_by_sub: Counter[str] = Counter()
        self._held_by_sub: Counter[str] = Counter()  # queued + busy
        self.blocked: set[str] = set()  # subscriptions not to claim for (e.g. after a 410)

    def __repr__(self) -> str:
        return f"Lanes(queued={len(self.queue)}, busy={len(self.busy)})"

    @property
    def outstanding(self) -> int:
        """Claimed rows not finished yet (queued or in flight)."""
        return len(self.queue) + len(self.busy)

    @property
    def room(self) -> int:
        """How many more rows may be claimed now."""
        return self.max_outstanding - self.outstanding

    def should_claim(self) -> bool:
        """Whether a claim is worth a round trip: a decent batch, or anything when idle."""
        room = self.room
        return room >= self.claim_min or (room > 0 and not self.queue)

    def remaining(self) -> dict[str, int]:
        """Per subscription id with rows held, how many more may be claimed (0: none)."""
        left = {
            sid: max(0, self.max_outstanding_per_sub - n)
            for sid, n in self._held_by_sub.items()
            if n > 0
        }
        left.update(dict.fromkeys(self.blocked, 0))
        return left

    def capped(self) -> bool:
        """Whether a claim now would leave out a subscription for holding its full share."""
        return any(
            n >= self.max_outstanding_per_sub and sid not in self.blocked
            for sid, n in self._held_by_sub.items()
        )

    def add(self, rows: list[ClaimedDelivery]) -> None:
        """Queue freshly claimed rows."""
        for row in rows:
            self.queue.append(row)
            self._held_by_sub[row.subscription_id] += 1

    def take(self, now: datetime) -> tuple[list[ClaimedDelivery], list[ClaimedDelivery]]:
        """Rows to start now (marked busy), and rows to give back unsent: their lease is too
        short for a full request, or their subscription is blocked (it answered 410).
        """
        start: list[ClaimedDelivery] = []
        dropped: list[ClaimedDelivery] = []
        index = 0
        while index < len(self.queue) and len(self.busy) < self.concurrency:
            row = self.queue[index]
            if row.lease_until - now < self._need or row.subscription_id in self.blocked:
                del self.queue[index]
                self._release_hold(row.subscription_id)
                dropped.append(row)
                continue
            if self._busy_by_sub[row.subscription_id] >= self.per_subscription:
                index += 1
                continue
            del self.queue[index]
            self.busy[row.id] = row
            self._busy_by_sub[row.subscription_id] += 1
            start.append(row)
        return start, dropped

    def finish(self, row: ClaimedDelivery) -> bool:
        """Forget a finished row; True when that makes a new claim worthwhile."""
        if self.busy.pop(row.id, None) is None:
            return False
        sid = row.subscription_id
        was_full = self._held_by_sub[sid] >= self.max_outstanding_per_sub
        self._busy_by_sub[sid] -= 1
        if self._busy_by_sub[sid] <= 0:
            del self._busy_by_sub[sid]
        self._release_hold(sid)
        return was_full or self.room >= self.claim_min or not self.busy

    def drain_queue(self) -> list[ClaimedDelivery]:
        """Remove and return every queued (not started) row."""
        rows = list(self.queue)
        self.queue.clear()
        for row in rows:
            self._release_hold(row.subscription_id)
        return rows

    def _release_hold(self, sid: str) -> None:
        self._held_by_sub[sid] -= 1
        if self._held_by_sub[sid] <= 0:
            del self._held_by_sub[sid]
