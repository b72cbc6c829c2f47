"""Inbound benchmark: the Alipay callback path against a bare Starlette endpoint, same run.

Command (from the repository root, wrk from Debian's ``wrk`` package)::

    .venv/bin/python bench/inbound.py --rounds 3 --duration 10

What it measures, per configuration, in rounds taken round-robin (A B C A B C ...) so drift
on a shared machine hits every configuration alike; the median of the rounds is reported:

- ``bare``: Starlette under the same uvicorn, reads the body, parses the form, answers
  ``success`` (the ceiling);
- ``sqlite``: ``payhook serve`` on a SQLite file (WAL, ``synchronous=FULL``): verify RSA2,
  store the event + one outbox row (one subscription), answer ``success``;
- ``postgresql``: the same on PostgreSQL (``--pg-url``; skipped when unreachable);
- ``wechat-v3-sqlite``: the WeChat Pay v3 path (verify + AES-GCM decrypt) on SQLite.

The server is pinned to core 0 and wrk to core 1 (``taskset``), 32 connections, every request
body distinct (pre-generated, validly signed): the warm-up sends the first
``--warmup-bodies``, the measured run the rest, each from its start, and on SQLite the
script counts the callbacks the server saw twice and warns if there were any (a duplicate
is cheaper than a new callback, so it would flatter the figure). The dispatcher is off (``--no-dispatcher``) so
the figure is the intake path alone. Reports req/s, p50/p99 at saturation, server CPU µs per
request, and the ratio of each payhook configuration to ``bare``. The goal is >= 0.30 on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
PY = sys.executable

LUA = r"""
local bodies = {}
local headers = {}
local idx = 0
local body_file, ctype = ...
init = function(args)
  local path = args[1]
  wrk.headers["Content-Type"] = args[2] or "application/x-www-form-urlencoded; charset=utf-8"
  for line in io.lines(path) do bodies[#bodies + 1] = line end
  idx = 0
end
request = function()
  idx = idx % #bodies + 1
  local line = bodies[idx]
  local sep = string.find(line, "\t", 1, true)
  if sep then
    local hdrs = {}
    for k, v in string.gmatch(string.sub(line, 1, sep - 1), "([^=;]+)=([^;]*)") do hdrs[k] = v end
    hdrs["Content-Type"] = wrk.headers["Content-Type"]
    return wrk.format("POST", nil, hdrs, string.sub(line, sep + 1))
  end
  return wrk.format("POST", nil, nil, line)
end
"""

BARE_APP = """
from urllib.parse import parse_qsl
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def notify(request):
    body = await request.body()
    parse_qsl(body.decode("latin-1"), keep_blank_values=True)
    return PlainTextResponse("success")

app = Starlette(routes=[Route("/notify/{channel}", notify, methods=["POST"])])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def make_alipay_bodies(n: int, path: Path) -> None:
    from payhook.config import load_settings
    from payhook.providers import build_simulator

    settings = load_settings(SAMPLES / "payhook.toml")
    simulator = build_simulator(settings.channel("alipay"))
    now = datetime.now(UTC)
    with path.open("w") as fh:
        for i in range(n):
            cb = simulator.build(
                order_id=f"BENCH-{os.getpid()}-{i}", amount=8888, event="paid",
                refund_amount=None, now=now,
            )  # fmt: skip
            fh.write(cb.body.decode("ascii") + "\n")


def make_wechat_bodies(n: int, path: Path) -> None:
    from payhook.config import load_settings
    from payhook.providers import build_simulator

    settings = load_settings(SAMPLES / "payhook.toml")
    simulator = build_simulator(settings.channel("wechat"))
    with path.open("w") as fh:
        for i in range(n):
            cb = simulator.build(
                order_id=f"BENCHWX-{os.getpid()}-{i}", amount=8888, event="paid",
                refund_amount=None, now=datetime.now(UTC),
            )  # fmt: skip
            hdrs = ";".join(
                f"{k}={v}" for k, v in cb.headers.items() if k.lower().startswith("wechatpay")
            )
            body = cb.body.decode("utf-8")
            assert "\n" not in body
            assert "\t" not in body
            fh.write(f"{hdrs}\t{body}\n")


def write_config(folder: Path, database_url: str) -> Path:
    shutil.copytree(SAMPLES / "keys", folder / "keys", dirs_exist_ok=True)
    text = (SAMPLES / "payhook.toml").read_text()
    text = re.sub(r"^database_url = .*$", f'database_url = "{database_url}"', text, flags=re.M)
    text = text.replace('admin_token  = "change-me-sandbox-token"\n', "")
    text = text.replace('events = ["payment.order.paid", "payment.refund.*"]', 'events = ["*"]')
    text = text.replace('timestamp_tolerance = "5m"', 'timestamp_tolerance = "1d"')
    config = folder / "payhook.toml"
    config.write_text(text)
    return config


def run_wrk(
    url: str, bodies: Path, duration: int, connections: int, ctype: str
) -> dict[str, float]:
    lua = bodies.with_suffix(".lua")
    lua.write_text(LUA)
    cmd = [
        "taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "--latency", "-s", str(lua), url, "--", str(bodies), ctype,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }


class Server:
    def __init__(self, kind: str, folder: Path, database_url: str | None) -> None:
        self.kind = kind
        self.port = free_port()
        env = dict(os.environ)
        if kind == "bare":
            (folder / "bare_app.py").write_text(BARE_APP)
            cmd = [
                PY, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port",
                str(self.port), "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            cwd = folder
        else:
            assert database_url is not None
            config = write_config(folder, database_url)
            subprocess.run(
                [PY, "-m", "payhook", "--config", str(config), "db", "upgrade"],
                check=True, capture_output=True,
            )  # fmt: skip
            cmd = [
                PY, "-m", "payhook", "serve", "--config", str(config),
                "--port", str(self.port), "--no-dispatcher",
            ]  # fmt: skip
            cwd = folder
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *cmd], cwd=cwd, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pg_reset(pg_url: str) -> str | None:
    import asyncpg

    async def run() -> str | None:
        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return None
        name = f"payhook_bench_{os.getpid()}"
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        return pg_url.rsplit("/", 1)[0] + f"/{name}"

    return asyncio.run(run())


def split_bodies(bodies: Path, warmup: int) -> tuple[Path, Path]:
    """The first ``warmup`` bodies for the warm-up, the rest for the measured run, so no
    callback is sent twice in one server's life (a duplicate costs less than a new one)."""
    warm, measured = bodies.with_suffix(".warm"), bodies.with_suffix(".run")
    if not warm.exists():
        lines = bodies.read_text().splitlines(keepends=True)
        warm.write_text("".join(lines[:warmup]))
        measured.write_text("".join(lines[warmup:]))
    return warm, measured


def duplicates(db: Path) -> int:
    """Callbacks the server answered as duplicates (0 when every body was new)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM payhook_notifications WHERE verdict = 'duplicate'"
        ).fetchone()
    return int(count)


def pg_settle(pg_url: str) -> None:
    """Drop the round's database and CHECKPOINT, so PostgreSQL's background writes after a
    round (checkpointer, autovacuum) do not eat into the next configuration's core."""
    import asyncpg

    async def run() -> None:
        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn, timeout=3)
        try:
            await conn.execute(
                f'DROP DATABASE IF EXISTS "payhook_bench_{os.getpid()}" WITH (FORCE)'
            )
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    asyncio.run(run())
    time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bodies", type=int, default=80000)
    parser.add_argument("--warmup-bodies", type=int, default=16000)
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", default="bare,sqlite,wechat-v3-sqlite,postgresql")
    args = parser.parse_args()
    configs = args.only.split(",")

    with tempfile.TemporaryDirectory(prefix="payhook-bench-") as tmp:
        folder = Path(tmp)
        alipay_bodies = folder / "alipay.txt"
        wechat_bodies = folder / "wechat.txt"
        print(f"generating {args.bodies} distinct signed bodies per channel ...", flush=True)
        make_alipay_bodies(args.bodies, alipay_bodies)
        if "wechat-v3-sqlite" in configs:
            make_wechat_bodies(args.bodies, wechat_bodies)
        results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
        for rnd in range(args.rounds):
            for kind in configs:
                sub = folder / f"{kind}-{rnd}"
                sub.mkdir()
                database_url: str | None = None
                channel, bodies, ctype = (
                    "alipay",
                    alipay_bodies,
                    ("application/x-www-form-urlencoded; charset=utf-8"),
                )
                if kind in ("sqlite", "wechat-v3-sqlite"):
                    database_url = f"sqlite+aiosqlite:///{sub}/payhook.db"
                elif kind == "postgresql":
                    database_url = pg_reset(args.pg_url)
                    if database_url is None:
                        print("postgresql: not reachable, skipped", flush=True)
                        continue
                if kind == "wechat-v3-sqlite":
                    channel, bodies, ctype = "wechat", wechat_bodies, "application/json"
                server = Server("bare" if kind == "bare" else "payhook", sub, database_url)
                try:
                    url = f"http://127.0.0.1:{server.port}/notify/{channel}"
                    warm, measured = split_bodies(bodies, args.warmup_bodies)
                    run_wrk(url, warm, 2, args.connections, ctype)  # warm-up
                    cpu0 = cpu_seconds(server.proc.pid)
                    res = run_wrk(url, measured, args.duration, args.connections, ctype)
                    cpu1 = cpu_seconds(server.proc.pid)
                    res["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / max(res["requests"], 1)
                finally:
                    server.stop()
                    if kind == "postgresql":
                        pg_settle(args.pg_url)
                if database_url is not None and database_url.startswith("sqlite"):
                    res["duplicates"] = float(duplicates(sub / "payhook.db"))
                results[kind].append(res)
                print(
                    f"round {rnd + 1} {kind:18s} {res['rps']:9.0f} req/s  p50 {res['p50_ms']:.2f} ms"
                    f"  p99 {res['p99_ms']:.2f} ms  cpu {res['cpu_us_per_req']:.0f} us/req"
                    f"  non-2xx {res['non2xx']:.0f}"
                    + (f"  repeated bodies {res['duplicates']:.0f}" if "duplicates" in res else ""),
                    flush=True,
                )
                if res.get("duplicates"):
                    print(
                        "  WARNING: bodies were sent twice (duplicates are cheaper): "
                        "raise --bodies above the requests of a round",
                        flush=True,
                    )
        summary = {}
        bare = (
            statistics.median(r["rps"] for r in results.get("bare", []))
            if results.get("bare")
            else None
        )
        print(
            "\nconfig              req/s median [min-max]   p50 ms  p99 ms  cpu us/req  ratio to bare"
        )
        for kind, runs in results.items():
            if not runs:
                continue
            rps = [r["rps"] for r in runs]
            med = statistics.median(rps)
            ratio = med / bare if bare else float("nan")
            summary[kind] = {"rps_median": med, "ratio": ratio}
            print(
                f"{kind:18s} {med:9.0f} [{min(rps):.0f}-{max(rps):.0f}]"
                f"  {statistics.median(r['p50_ms'] for r in runs):6.2f}"
                f"  {statistics.median(r['p99_ms'] for r in runs):6.2f}"
                f"  {statistics.median(r['cpu_us_per_req'] for r in runs):9.0f}"
                f"  {ratio:.3f}"
            )
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
