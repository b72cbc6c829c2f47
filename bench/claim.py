"""Claim cost against backlog: the dispatcher's claim of 100 rows with 10k, 100k, 1M deliveries.

Command (from the repository root; PostgreSQL at 127.0.0.1:5432, user postgres)::

    .venv/bin/python bench/claim.py                      # 10k and 100k, both scenarios
    .venv/bin/python bench/claim.py --sizes 10000 100000 1000000
    .venv/bin/python bench/claim.py --database sqlite --sizes 10000 100000 1000000

For each backlog size and scenario the outbox is filled with SQL (``generate_series``),
vacuumed and analysed, then ``claim_due`` (the dispatcher's own claim, 100 rows, ten
subscriptions) runs 20 times in a row (after 3 unmeasured ones), each a committed claim;
the median and the slowest are reported, with the ratio of each size to 10k (goal: 1M
within 1.5x of 10k).

Scenarios (as in shared/docs/performance-anchors.md §6):

- ``mixed``: 70 % succeeded, 5 % failed and due, 20 % pending and due, 5 % pending later;
- ``alldue``: 100 % pending and due (an outage backlog).

The client is pinned to core 0 and PostgreSQL to core 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._outbound_common import (
    DEFAULT_PG,
    drop_postgres,
    fresh_postgres,
    pin_self,
    postgres_pinned,
    run,
)

from payhook.events import new_id
from payhook.storage._engine import create_engine
from payhook.storage._migrate import upgrade
from payhook.storage._outbox import claim_due
from payhook.storage._tables import events, sqlite_timestamp, subscriptions

SUBSCRIPTIONS = 10

# status / due time by row number g (0..n-1), as SQL expressions.
_STATUS = {
    "mixed": "CASE WHEN g % 100 < 70 THEN 'succeeded' WHEN g % 100 < 75 THEN 'failed' "
    "ELSE 'pending' END",
    "alldue": "'pending'",
}
_DUE = {
    "mixed": "CASE WHEN g % 100 >= 95 THEN {later} ELSE {past} END",
    "alldue": "{past}",
}
_PG = {
    "id": "'dlv_' || lpad(g::text, 24, '0')",
    "sub": "(CAST(:subs AS text[]))[1 + g % 10]",
    "series": "generate_series(0, :n - 1) AS g",
    "past": "CAST(:past AS timestamptz)",
    "later": "CAST(:later AS timestamptz)",
}
_SQLITE = {
    "id": "'dlv_' || substr('000000000000000000000000' || g, -24, 24)",
    "sub": "json_extract(:subs, '$[' || (g % 10) || ']')",
    "series": "(WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < :n) "
    "SELECT g FROM s)",
    "past": ":past",
    "later": ":later",
}


def _fill_sql(scenario: str, dialect: str) -> str:
    parts = _PG if dialect == "postgresql" else _SQLITE
    due = _DUE[scenario].format(past=parts["past"], later=parts["later"])
    columns = "id, event_id, subscription_id, status, attempt_count, next_attempt_at"
    values = f"{parts['id']}, :event, {parts['sub']}, {_STATUS[scenario]}, 0, {due}"
    stamps = f"{parts['past']}, {parts['past']}"
    return (
        f"INSERT INTO payhook_deliveries ({columns}, created_at, updated_at) "  # noqa: S608
        f"SELECT {values}, {stamps} FROM {parts['series']}"
    )


async def fill(engine: Any, n: int, scenario: str, sub_ids: list[str], event_id: str) -> None:
    now = datetime.now(UTC)
    past, later = now - timedelta(hours=1), now + timedelta(days=1)
    dialect = engine.dialect.name

    def stamp(value: datetime) -> Any:
        return value if dialect == "postgresql" else sqlite_timestamp(value)

    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM payhook_delivery_attempts"))
        await conn.execute(text("DELETE FROM payhook_deliveries"))
        subs: Any = sub_ids if dialect == "postgresql" else json.dumps(sub_ids)
        await conn.execute(
            text(_fill_sql(scenario, dialect)),
            {"n": n, "subs": subs, "event": event_id, "past": stamp(past), "later": stamp(later)},
        )
    async with engine.connect() as conn:
        if dialect == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE payhook_deliveries"))
        else:
            await conn.execute(text("ANALYZE"))
            await conn.commit()


async def setup(engine: Any) -> tuple[list[str], str]:
    now = datetime.now(UTC)
    sub_ids = [new_id("sub") for _ in range(SUBSCRIPTIONS)]
    event_id = new_id("evt")
    async with engine.begin() as conn:
        for i, sub_id in enumerate(sub_ids):
            await conn.execute(
                subscriptions.insert().values(
                    id=sub_id, name=f"s{i}", kind="http", url="http://127.0.0.1:9/x",
                    events='["*"]', secrets="[]", enabled=True, source="api",
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        await conn.execute(
            events.insert().values(
                id=event_id, event_key="bench", type="payment.order.paid", channel="c",
                provider="alipay", merchant_id="m", created_at=now, body=b"{}" * 500,
            )
        )  # fmt: skip
    return sub_ids, event_id


async def measure(engine: Any, claims: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + claims):
        t0 = time.perf_counter()
        rows = await claim_due(
            engine, now=datetime.now(UTC), limit=100, lease_s=40, per_subscription_cap=100
        )
        if i >= warmup:  # the first claims on a fresh table prepare and plan the statement
            times.append((time.perf_counter() - t0) * 1000)
        assert len(rows) == 100, len(rows)
    return times


async def main_async(args: argparse.Namespace) -> None:
    if args.database == "postgresql":
        url = await fresh_postgres(args.pg_url, "payhook_bench_claim")
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/claim.db"
    engine = create_engine(url)
    results: dict[tuple[str, int], list[float]] = {}
    try:
        if args.database == "sqlite":
            await upgrade(engine)
        sub_ids, event_id = await setup(engine)
        for scenario in args.scenarios:
            for n in args.sizes:
                t0 = time.perf_counter()
                await fill(engine, n, scenario, sub_ids, event_id)
                fill_s = time.perf_counter() - t0
                times = await measure(engine, args.claims, args.warmup)
                results[(scenario, n)] = times
                print(
                    f"{scenario:7} {n:>9,}: median {statistics.median(times):.2f} ms, "
                    f"max {max(times):.2f} ms (fill {fill_s:.1f} s)",
                    flush=True,
                )
    finally:
        await engine.dispose()
        if args.database == "postgresql":
            await drop_postgres(args.pg_url, url)
    print()
    print(f"database: {args.database}; claim of 100 rows, {args.claims} claims per case")
    print("| backlog | scenario | median ms | max ms | ratio to 10k |")
    print("|---|---|---|---|---|")
    for (scenario, n), times in results.items():
        base = results.get((scenario, min(args.sizes)))
        ratio = statistics.median(times) / statistics.median(base) if base else float("nan")
        print(
            f"| {n:,} | {scenario} | {statistics.median(times):.2f} | {max(times):.2f} "
            f"| {ratio:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--scenarios", nargs="+", default=["mixed", "alldue"])
    parser.add_argument("--claims", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured claims first")
    args = parser.parse_args()
    pin_self(0)
    with postgres_pinned(1):
        run(main_async(args))


if __name__ == "__main__":
    main()
