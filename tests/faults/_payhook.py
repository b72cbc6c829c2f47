"""A real ``payhook serve`` process for fault tests: config, start, SIGKILL, restart, and the
process's memory and CPU time read from ``/proc``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests._ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBER_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ADMIN_TOKEN = "fault-test-admin-token-7Qx2"
API_V3_KEY = "0123456789abcdef0123456789abcdef"
API_V2_KEY = "192006250b4c09247ec02edce69f6a2d"
# Every secret the test configuration holds: none may ever be printed, logged or returned.
SECRETS = (
    SUBSCRIBER_SECRET,
    SUBSCRIBER_SECRET.removeprefix("whsec_"),
    ADMIN_TOKEN,
    API_V3_KEY,
    API_V2_KEY,
)

_CONFIG = """\
database_url = "{database_url}"
{admin}
max_body_bytes = {max_body_bytes}
log_level = "{log_level}"

[dispatcher]
retry_schedule  = [{schedule}]
request_timeout = "{request_timeout}"
concurrency     = {concurrency}
per_subscription_concurrency = {per_subscription_concurrency}
poll_interval   = "{poll_interval}"

[[channels]]
name     = "alipay"
provider = "alipay"
app_id   = "2021000000000001"
alipay_public_key_file = "keys/alipay_public.pem"
seller_id = "2088000000000001"
simulator_private_key_file = "keys/sandbox/alipay_private.pem"

[[channels]]
name     = "wechat"
provider = "wechatpay_v3"
mch_id   = "1900000001"
app_id   = "wx0000000000000001"
api_v3_key = "{api_v3_key}"
wechatpay_public_key_id   = "PUB_KEY_ID_0119000000012026112800000000000000"
wechatpay_public_key_file = "keys/wechatpay_public.pem"
platform_certificate_files = ["keys/wechatpay_platform.pem"]
timestamp_tolerance = "5m"
simulator_private_key_file = "keys/sandbox/wechatpay_private.pem"

[[channels]]
name     = "wechat-legacy"
provider = "wechatpay_v2"
mch_id   = "1900000002"
app_id   = "wx0000000000000002"
api_key  = "{api_v2_key}"
"""

_SUBSCRIPTION = """
[[subscriptions]]
name   = "orders"
url    = "{url}"
events = ["*"]
secret = "{secret}"
"""

CHANNELS = ("alipay", "wechat", "wechat-legacy")

__all__ = ["CHANNELS", "PayhookServe", "free_port", "write_config"]


def write_config(
    folder: Path,
    *,
    database_url: str,
    subscriber_url: str | None = None,
    retry_schedule: tuple[str, ...] = ("1s", "4s", "16s"),
    request_timeout: str = "10s",
    concurrency: int = 64,
    per_subscription_concurrency: int = 8,
    poll_interval: str = "1s",
    admin_token: str | None = ADMIN_TOKEN,
    max_body_bytes: int = 65536,
    log_level: str = "INFO",
) -> Path:
    """Write ``payhook.toml`` (three channels, sandbox keys, one subscription) into ``folder``."""
    shutil.copytree(ROOT / "samples" / "keys", folder / "keys", dirs_exist_ok=True)
    text = _CONFIG.format(
        database_url=database_url,
        admin=f'admin_token = "{admin_token}"' if admin_token else "",
        max_body_bytes=max_body_bytes,
        log_level=log_level,
        schedule=", ".join(f'"{s}"' for s in retry_schedule),
        request_timeout=request_timeout,
        concurrency=concurrency,
        per_subscription_concurrency=per_subscription_concurrency,
        poll_interval=poll_interval,
        api_v3_key=API_V3_KEY,
        api_v2_key=API_V2_KEY,
    )
    if subscriber_url is not None:
        text += _SUBSCRIPTION.format(url=subscriber_url, secret=SUBSCRIBER_SECRET)
    path = folder / "payhook.toml"
    path.write_text(text)
    return path


def _proc_stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after it are space separated.
    return raw[raw.rindex(")") + 2 :].split()


class PayhookServe:
    """``python -m payhook serve`` as a child process on a fixed port, restartable.

    Output goes to ``log`` (appended across restarts), never to a pipe that could fill up.
    """

    def __init__(
        self, config: Path, *, log: Path, port: int | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.config = config
        self.log = log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, timeout_s: float = 90.0, ready_path: str = "/readyz") -> None:
        """Start the process and wait until ``ready_path`` answers 200."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "payhook", "serve", "--config", str(self.config),
                    "--port", str(self.port), *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.config.parent,
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"payhook serve exited at start; see {self.log}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"payhook serve did not become ready; see {self.log}")
            time.sleep(0.05)

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self, *, wait: bool = True) -> None:
        """SIGKILL: no shutdown code runs, exactly like a power cut of the process.

        With ``wait=False`` the signal is sent and the call returns at once (the caller
        reaps the process with :meth:`wait_dead`), so the kill lands at the chosen instant.
        """
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        if wait:
            self.wait_dead()

    def wait_dead(self) -> None:
        """Wait for the killed process to be gone."""
        assert self.proc is not None
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 20 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the process now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (threads included)."""
        fields = _proc_stat(self.pid)
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def tail(self, lines: int = 40) -> str:
        """The end of the process log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PayhookServe:
        self.start()
        return self

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
