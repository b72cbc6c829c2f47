"""Connection flood: one address holds ~2,100 idle connections; do callbacks from another
address still get through? (issue 16 item 7, ``max_connections_per_address``)

Command (from the repository root)::

    .venv/bin/python bench/connection_flood.py --connections 2100 --reopen-rate 205

The attacker (its own process) connects from 127.0.0.1, says nothing, and re-opens every
connection the server closes at up to ``--reopen-rate`` per second, so that it holds
``--connections`` whenever the server lets it. A provider sends signed Alipay callbacks from
127.0.0.2 (a client socket bound to that address), one at a time, each on a new connection,
for ``--duration`` seconds (longer than the server's 10 s idle deadline, so the attacker's
re-opening is part of the picture). Three runs against ``payhook serve`` on a SQLite file,
each on a fresh server:

- ``baseline``: no flood (the latency reference, same run);
- ``capped``: the flood, ``max_connections_per_address`` at its default (256);
- ``uncapped``: the flood, ``max_connections_per_address = 0`` (how it was before).

Reports per run: callbacks answered ``success``, the other answers, latency p50/p99/max of the
successful ones and, for the flooded runs, the p50 ratio to the baseline, the connections
the attacker held at the end and ``payhook_connections_refused_total``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
ATTACKER = "127.0.0.1"
PROVIDER = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path) -> Path:
    shutil.copytree(SAMPLES / "keys", folder / "keys")
    text = (SAMPLES / "payhook.toml").read_text()
    config = folder / "payhook.toml"
    config.write_text(text)
    return config


class Serve:
    """``payhook serve --no-dispatcher`` on a fresh SQLite file."""

    def __init__(self, folder: Path, per_address: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
        env["PAYHOOK_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder / 'payhook.db'}"
        if per_address is not None:
            env["PAYHOOK_MAX_CONNECTIONS_PER_ADDRESS"] = str(per_address)
        env["PAYHOOK_LOG_LEVEL"] = "WARNING"
        self.log = (folder / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "payhook", "serve", "--config", str(folder / "payhook.toml"),
             "--port", str(self.port), "--no-dispatcher"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"payhook serve did not start: see {folder / 'serve.log'}")
            time.sleep(0.1)

    def refused_total(self) -> float:
        text = _client(PROVIDER).get(self.url + "/metrics").text
        for line in text.splitlines():
            if line.startswith("payhook_connections_refused_total "):
                return float(line.split()[1])
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60)


# -- the attacker: its own process, its own event loop ---------------------------------------


async def _flood(port: int, connections: int, rate: float, stop: float, held: list[int]) -> None:
    slots = asyncio.Semaphore(connections)
    open_now = 0

    async def one() -> None:
        nonlocal open_now
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(ATTACKER, 0)
            )
        except OSError:
            slots.release()
            return
        open_now += 1
        try:
            with contextlib.suppress(OSError):
                while await reader.read(4096):  # a 503 or a 408, then the close
                    pass
        finally:
            open_now -= 1
            writer.close()
            slots.release()

    tasks: set[asyncio.Task[None]] = set()
    first = True
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        await slots.acquire()
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if not first or len(tasks) >= connections:
            first = False
            await asyncio.sleep(1 / rate)  # re-opening is rate-limited, the first wave is not
    held.append(open_now)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def attacker(port: int, connections: int, rate: float, seconds: float, queue: Any) -> None:
    held: list[int] = []

    async def run() -> None:
        stop = asyncio.get_running_loop().time() + seconds
        await _flood(port, connections, rate, stop, held)

    asyncio.run(run())
    queue.put(held[0] if held else 0)


# -- the provider ------------------------------------------------------------------------------


@dataclass
class Result:
    success: int = 0
    other: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


def provider_callbacks(url: str, config: Path, seconds: float, tag: str) -> Result:
    from payhook.config import load_settings
    from payhook.providers import build_simulator

    simulator = build_simulator(load_settings(config).channel("alipay"))
    result = Result()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        built = simulator.build(
            order_id=f"{tag}-{n}", amount=100, event="paid", refund_amount=None,
            now=datetime.now(UTC),
        )  # fmt: skip
        started = time.perf_counter()
        try:
            with _client(PROVIDER) as client:
                reply = client.post(
                    f"{url}/notify/alipay", content=built.body, headers=dict(built.headers)
                )
            answer = f"{reply.status_code} {reply.text[:40]!r}"
            ok = reply.status_code == 200 and reply.content == b"success"
        except httpx.TransportError as exc:
            answer, ok = exc.__class__.__name__, False
        elapsed_ms = (time.perf_counter() - started) * 1000
        if ok:
            result.success += 1
            result.latencies_ms.append(elapsed_ms)
        else:
            result.other[answer] = result.other.get(answer, 0) + 1
        time.sleep(0.2)
    return result


def run(kind: str, folder: Path, args: argparse.Namespace) -> dict[str, object]:
    folder.mkdir()
    config = write_config(folder)
    server = Serve(folder, {"baseline": None, "capped": None, "uncapped": 0}[kind])
    try:
        flood: multiprocessing.Process | None = None
        queue: Any = multiprocessing.Queue()
        if kind != "baseline":
            flood = multiprocessing.Process(
                target=attacker,
                args=(server.port, args.connections, args.reopen_rate,
                      args.duration + args.settle + 2, queue),
            )  # fmt: skip
            flood.start()
            time.sleep(args.settle)  # the first wave is in
        result = provider_callbacks(server.url, config, args.duration, kind)
        held = None
        if flood is not None:
            held = queue.get(timeout=120)
            flood.join(timeout=60)
        refused = server.refused_total()
    finally:
        server.stop()
    lat = sorted(result.latencies_ms)
    return {
        "run": kind,
        "success": result.success,
        "other": result.other,
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
        "max_ms": round(lat[-1], 1) if lat else None,
        "attacker_held_at_end": held,
        "connections_refused_total": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=2100)
    parser.add_argument("--reopen-rate", type=float, default=205.0)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of callbacks")
    parser.add_argument("--settle", type=float, default=3.0, help="flood head start, seconds")
    parser.add_argument("--only", default="baseline,capped,uncapped")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="payhook-flood-") as tmp:
        for kind in args.only.split(","):
            print(f"{kind} ...", flush=True)
            results.append(run(kind, Path(tmp) / kind, args))
            print(results[-1], flush=True)
    base = next((r["p50_ms"] for r in results if r["run"] == "baseline"), None)
    for r in results:
        p50 = r["p50_ms"]
        if isinstance(base, float) and isinstance(p50, float) and r["run"] != "baseline":
            print(f"{r['run']}: p50 latency ratio to the baseline {p50 / base:.2f}")


if __name__ == "__main__":
    main()
