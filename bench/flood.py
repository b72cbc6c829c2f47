"""Refused-callback flood: valid Alipay callback latency without and during a flood, same run.

Command (from the repository root)::

    .venv/bin/python bench/flood.py --seconds 20
    .venv/bin/python bench/flood.py --seconds 20 --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

Issue 16 item 6 / contract §14: refused callbacks are audited as bounded records, written at
lower priority than accepted callbacks, dropped (and counted) under pressure, never delaying
an accepted one. Per database (SQLite always; PostgreSQL with ``--postgres URL``), one
``payhook serve --no-dispatcher`` (pinned to core 0, as ``bench/inbound.py``) and, per round:

- ``quiet``: one client sends distinct, validly signed Alipay callbacks (keep-alive),
  ``--rate`` a second (default 20; 0: back to back), for ``--seconds``; each answer's
  latency is taken;
- ``flood``: ``--clients`` connections in a separate process send refused callbacks without
  pause (a validly signed notification padded with ``&pad=`` to ~60 KB, so the signature no
  longer matches: Alipay's 400 ``fail``) while the same client sends valid callbacks for
  ``--seconds``. The same rate in both phases: the same work for the valid callbacks (and
  the same growth of the database from them), whatever the machine's speed.

The clients run on core 1, the flood process at nice 10 (so the valid client's own
scheduling does not wait behind it). Reported per round and as the median of rounds: p50/p99/max of
the valid callbacks in each phase, the ratio p99 flood / p99 quiet (goal <= 2.0), how much
the database grew during the flood phase, valid callbacks included (SQLite: file + WAL;
PostgreSQL: ``pg_database_size``; goal <= 5 MiB; the quiet phase's growth is shown beside
it), the refused callbacks sent, audited and dropped (``payhook_refused_audits_dropped_total``).
Every valid callback must be answered ``success``, and every refused one audited or counted
as dropped; otherwise, or when a goal is missed, the run exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inbound import SAMPLES, Server, pg_reset, pg_settle

PAD = 60_000
GOAL_RATIO = 2.0
GOAL_GROWTH = 5 * 1024 * 1024
CTYPE = "application/x-www-form-urlencoded; charset=utf-8"


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


class Bodies:
    """Distinct, validly signed Alipay callbacks, made on demand."""

    def __init__(self) -> None:
        from payhook.config import load_settings
        from payhook.providers import build_simulator

        settings = load_settings(SAMPLES / "payhook.toml")
        self._simulator = build_simulator(settings.channel("alipay"))
        self._n = 0

    def next(self) -> bytes:
        self._n += 1
        callback = self._simulator.build(
            order_id=f"FLOOD-{os.getpid()}-{self._n}", amount=8888, event="paid",
            refund_amount=None, now=datetime.now(UTC),
        )  # fmt: skip
        return callback.body


def flood(port: int, body: bytes, clients: int, stop: EventType, sent: Any, core: int) -> None:
    """The flood process: ``clients`` keep-alive connections posting ``body`` without pause."""
    if core >= 0:
        pin(core)
    # Below the valid client on the shared core: the latency measured is the server's, not
    # the client's wait for a CPU behind the flood's own work.
    os.nice(10)
    head = (
        f"POST /notify/alipay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {CTYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop.is_set():
            writer.write(request)
            await writer.drain()
            status = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", status, re.I)
            await reader.readexactly(int(length.group(1)) if length else 0)
            with sent.get_lock():
                sent.value += 1
        writer.close()

    async def run() -> None:
        await asyncio.gather(*(one() for _ in range(clients)))

    asyncio.run(run())


def send_valid(conn: http.client.HTTPConnection, body: bytes) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    conn.request("POST", "/notify/alipay", body=body, headers={"Content-Type": CTYPE})
    response = conn.getresponse()
    reply = response.read()
    return (time.perf_counter() - start) * 1000, response.status, reply


def valid_phase(
    port: int, bodies: Bodies, seconds: float, rate: float
) -> tuple[list[float], list[str]]:
    """Valid callbacks for ``seconds``, ``rate`` a second (one after another when ``rate`` is
    0 or the answers are slower): latencies (ms), bad answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    bad: list[str] = []
    start = time.monotonic()
    end = start + seconds
    try:
        while time.monotonic() < end:
            if rate > 0:
                wait = start + len(latencies) / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            ms, status, reply = send_valid(conn, bodies.next())
            latencies.append(ms)
            if (status, reply) != (200, b"success"):
                bad.append(f"{status} {reply[:60]!r}")
    finally:
        conn.close()
    return latencies, bad


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def metrics(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()

    def total(name: str, **labels: str) -> float:
        value = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{"):
                got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
                if all(got.get(k) == v for k, v in labels.items()):
                    value += float(line.rsplit(" ", 1)[1])
        return value

    return {
        "refused": total("payhook_callbacks_total", outcome="refused"),
        "dropped": total("payhook_refused_audits_dropped_total"),
    }


class Database:
    """Size and audit rows of the database under test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.path = Path(url.split("///", 1)[1]) if self.sqlite else None

    def size(self) -> int:
        if self.path is not None:
            wal = self.path.with_name(self.path.name + "-wal")
            return sum(p.stat().st_size for p in (self.path, wal) if p.exists())
        return int(self._pg("SELECT pg_database_size(current_database())"))

    def audited(self) -> int:
        if self.path is not None:
            with sqlite3.connect(self.path) as conn:
                return int(
                    conn.execute("SELECT count(*) FROM payhook_refused_callbacks").fetchone()[0]
                )
        return int(self._pg("SELECT count(*) FROM payhook_refused_callbacks"))

    def _pg(self, sql: str) -> Any:
        import asyncpg

        async def run() -> Any:
            conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                return await conn.fetchval(sql)
            finally:
                await conn.close()

        return asyncio.run(run())


def run_round(
    args: argparse.Namespace, server: Server, db: Database, bodies: Bodies, refused_body: bytes
) -> dict[str, Any]:
    quiet_before = db.size()
    quiet, bad_quiet = valid_phase(server.port, bodies, args.seconds, args.rate)
    before = db.size()
    m0 = metrics(server.port)
    audited0 = db.audited()
    stop = multiprocessing.Event()
    sent = multiprocessing.Value("q", 0)
    proc = multiprocessing.Process(
        target=flood,
        args=(server.port, refused_body, args.clients, stop, sent, -1 if args.no_pin else 1),
        daemon=True,
    )
    proc.start()
    while sent.value < args.clients:  # every flood connection is sending
        time.sleep(0.01)
    flood_start = time.monotonic()
    loud, bad_loud = valid_phase(server.port, bodies, args.seconds, args.rate)
    stop.set()
    proc.join(30)
    flood_s = time.monotonic() - flood_start
    # The audit is written behind the answers: let it finish before measuring the growth.
    deadline = time.monotonic() + 30
    while True:
        m1 = metrics(server.port)
        audited = db.audited() - audited0
        refused = m1["refused"] - m0["refused"]
        dropped = m1["dropped"] - m0["dropped"]
        if audited + dropped >= refused or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    growth = db.size() - before
    return {
        "quiet_n": len(quiet),
        "quiet_p50": pct(quiet, 50),
        "quiet_p99": pct(quiet, 99),
        "quiet_max": max(quiet),
        "flood_n": len(loud),
        "flood_p50": pct(loud, 50),
        "flood_p99": pct(loud, 99),
        "flood_max": max(loud),
        "ratio_p99": pct(loud, 99) / pct(quiet, 99),
        "growth_mib": growth / 2**20,
        "quiet_growth_mib": (before - quiet_before) / 2**20,
        "refused_sent": int(sent.value),
        "refused_per_s": sent.value / flood_s,
        "refused_counted": refused,
        "audited": audited,
        "dropped": dropped,
        "bad_answers": bad_quiet + bad_loud,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=8, help="flood connections")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="valid callbacks a second (0: back to back)"
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=200, help="valid callbacks first")
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL server")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores 0 and 1")
    args = parser.parse_args()
    if not args.no_pin:
        pin(1)
    bodies = Bodies()
    refused_body = bodies.next() + b"&pad=" + b"x" * PAD
    print(
        f"flood: {args.clients} connections x {len(refused_body)} B refused callbacks; "
        f"phases of {args.seconds:.0f} s; {args.rounds} round(s); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    kinds = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.postgres else [])
    summary: dict[str, Any] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="payhook-flood-") as tmp:
        for kind in kinds:
            folder = Path(tmp) / kind
            folder.mkdir()
            url = f"sqlite+aiosqlite:///{folder}/payhook.db" if kind == "sqlite" else None
            if kind == "postgresql":
                url = pg_reset(args.postgres)
                if url is None:
                    print("postgresql: not reachable, skipped", flush=True)
                    continue
            assert url is not None
            server = Server("payhook", folder, url)
            if args.no_pin:
                os.sched_setaffinity(server.proc.pid, set(range(os.cpu_count() or 1)))
            rounds: list[dict[str, Any]] = []
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                for _ in range(args.warmup):
                    send_valid(conn, bodies.next())
                conn.close()
                db = Database(url)
                for rnd in range(args.rounds):
                    res = run_round(args, server, db, bodies, refused_body)
                    rounds.append(res)
                    print(
                        f"{kind:10s} round {rnd + 1}: quiet n={res['quiet_n']} "
                        f"p50 {res['quiet_p50']:.2f} p99 {res['quiet_p99']:.2f} "
                        f"max {res['quiet_max']:.1f} ms | flood n={res['flood_n']} "
                        f"p50 {res['flood_p50']:.2f} p99 {res['flood_p99']:.2f} "
                        f"max {res['flood_max']:.1f} ms | p99 ratio {res['ratio_p99']:.2f} | "
                        f"grew {res['growth_mib']:.2f} MiB (quiet phase "
                        f"{res['quiet_growth_mib']:.2f}) | refused {res['refused_sent']} "
                        f"({res['refused_per_s']:.0f}/s), audited {res['audited']}, "
                        f"dropped {res['dropped']:.0f}",
                        flush=True,
                    )
                    for answer in res["bad_answers"][:5]:
                        print(f"  valid callback not acknowledged: {answer}", flush=True)
            finally:
                server.stop()
                if kind == "postgresql":
                    pg_settle(args.postgres)
            ratio = statistics.median(r["ratio_p99"] for r in rounds)
            growth = statistics.median(r["growth_mib"] for r in rounds)
            bad = sum(len(r["bad_answers"]) for r in rounds)
            counted = all(r["audited"] + r["dropped"] == r["refused_counted"] for r in rounds)
            ok = ratio <= GOAL_RATIO and growth * 2**20 <= GOAL_GROWTH and not bad and counted
            failed |= not ok
            summary[kind] = {
                "p99_quiet_ms": statistics.median(r["quiet_p99"] for r in rounds),
                "p99_flood_ms": statistics.median(r["flood_p99"] for r in rounds),
                "ratio_p99": ratio,
                "growth_mib": growth,
                "valid_not_acknowledged": bad,
                "every_refusal_audited_or_counted": counted,
                "goals_met": ok,
            }
            print(
                f"{kind}: p99 flood / p99 quiet = {ratio:.2f} (goal <= {GOAL_RATIO}), "
                f"database growth {growth:.2f} MiB (goal <= {GOAL_GROWTH / 2**20:.0f} MiB), "
                f"valid callbacks not acknowledged: {bad}, every refusal audited or counted: "
                f"{counted} -> {'OK' if ok else 'MISSED'}",
                flush=True,
            )
    print(json.dumps(summary))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
