"""The refused-callback audit queue: budget, bounds, batches, drops counted, flush on close.

The queue's write is handed in (the database drivers' low-priority writes are tested against
real SQLite and PostgreSQL in ``tests/integration/storage/test_refused_audit.py``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from payhook._stores import RefusedCallback
from payhook.errors import StorageUnavailableError
from payhook.storage._audit import AuditBudget, RefusedAudit

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class StillClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def refused(n: int, channel: str = "alipay") -> RefusedCallback:
    return RefusedCallback.build(
        channel=channel,
        received_at=NOW,
        reason="bad_signature",
        remote_addr="127.0.0.1",
        headers={},
        body=str(n).encode(),
    )


def offer(audit: RefusedAudit, n: int, channel: str = "alipay") -> bool:
    return audit.offer(channel, lambda: refused(n, channel))


class Sink:
    """Collects written batches; can be made to fail or to hold a write until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def write(self, records: Sequence[RefusedCallback]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise StorageUnavailableError("the database is unavailable")
        self.batches.append([r.excerpt.removeprefix("\n\n") for r in records])


def test_budget_spends_the_burst_then_refills_at_the_rate() -> None:
    clock = StillClock()
    budget = AuditBudget(rate_per_s=2.0, burst=3, clock=clock)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    clock.t += 0.4  # 0.8 of a token
    assert not budget.take()
    clock.t += 0.1  # 1 token
    assert budget.take()
    clock.t += 100  # never more than the burst
    assert [budget.take() for _ in range(4)] == [True, True, True, False]


def test_budget_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="burst"):
        AuditBudget(rate_per_s=1, burst=0, clock=StillClock())


async def test_records_are_written_in_batches_and_flushed_on_close() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    drops: list[tuple[str, str]] = []
    audit = RefusedAudit(
        sink.write, clock=StillClock(), on_dropped=lambda *d: drops.append(d), batch_size=4
    )
    assert all(offer(audit, n) for n in range(10))
    await asyncio.sleep(0)  # the drainer takes its first batch and waits on the gate
    sink.gate.set()
    await audit.close()
    assert sink.batches == [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9"]]
    assert (audit.written, drops) == (10, [])
    # Closed: a record is dropped and counted, never queued.
    assert not offer(audit, 10)
    assert drops == [("alipay", "shutdown")]


async def test_over_the_budget_records_are_dropped_and_counted() -> None:
    clock = StillClock()
    sink = Sink()
    drops: list[tuple[str, str]] = []
    audit = RefusedAudit(
        sink.write,
        clock=clock,
        on_dropped=lambda *d: drops.append(d),
        rate_per_s=1.0,
        burst=3,
    )
    offered = [offer(audit, n, "wechat") for n in range(5)]
    assert offered == [True, True, True, False, False]
    clock.t += 1.0
    assert offer(audit, 5, "wechat")
    await audit.close()
    assert [n for batch in sink.batches for n in batch] == ["0", "1", "2", "5"]
    assert drops == [("wechat", "rate"), ("wechat", "rate")]


async def test_a_full_queue_drops_and_counts() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    drops: list[tuple[str, str]] = []
    audit = RefusedAudit(
        sink.write,
        clock=StillClock(),
        on_dropped=lambda *d: drops.append(d),
        max_pending=2,
        batch_size=1,
    )
    assert offer(audit, 0)
    await asyncio.sleep(0)  # "0" is being written (held at the gate): the queue is empty
    assert [offer(audit, n) for n in (1, 2, 3)] == [True, True, False]
    assert audit.pending == 2
    sink.gate.set()
    await audit.close()
    assert sink.batches == [["0"], ["1"], ["2"]]
    assert drops == [("alipay", "queue_full")]


async def test_a_failed_write_drops_its_batch_and_counts_it() -> None:
    sink = Sink()
    sink.fail = True
    drops: list[tuple[str, str]] = []
    audit = RefusedAudit(sink.write, clock=StillClock(), on_dropped=lambda *d: drops.append(d))
    offer(audit, 0)
    offer(audit, 1, "wechat")
    await audit.close()
    assert drops == [("alipay", "write_failed"), ("wechat", "write_failed")]
    assert audit.written == 0
    # The drainer survived the failure: the next record is written.
    sink.fail = False
    audit.open()
    assert offer(audit, 2)
    await audit.close()
    assert sink.batches == [["2"]]


async def test_close_gives_up_after_its_timeout_and_counts_what_is_left() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()  # never opened: the database does not answer
    drops: list[tuple[str, str]] = []
    audit = RefusedAudit(
        sink.write, clock=StillClock(), on_dropped=lambda *d: drops.append(d), batch_size=2
    )
    for n in range(3):
        offer(audit, n)
    await audit.close(timeout_s=0)
    assert drops == [("alipay", "shutdown")] * 3
    assert sink.batches == []


async def test_a_dropped_record_is_never_built() -> None:
    """Past the budget the record is not even made: a flood spends no hashing on it."""
    built: list[int] = []

    def build(n: int) -> RefusedCallback:
        built.append(n)
        return refused(n)

    sink = Sink()
    audit = RefusedAudit(sink.write, clock=StillClock(), rate_per_s=0.0, burst=2)
    for n in range(5):
        audit.offer("alipay", functools.partial(build, n))
    await audit.close()
    assert built == [0, 1]


async def test_a_record_that_cannot_be_made_is_dropped_and_counted() -> None:
    drops: list[tuple[str, str]] = []
    audit = RefusedAudit(Sink().write, clock=StillClock(), on_dropped=lambda *d: drops.append(d))

    def broken() -> RefusedCallback:
        raise RuntimeError("bug")

    assert not audit.offer("alipay", broken)
    assert drops == [("alipay", "write_failed")]
    await audit.close()
