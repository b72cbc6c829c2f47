"""Retention in running processes (contract §14): ``serve`` and ``worker`` prune shortly after
they start, then every hour, through the operator service.

A failed prune (database down, locked) is logged as a warning and counted; the next one comes
an hour later. Shutdown ends a prune between two batches.

The waits are real time (not the injected clock's ``sleep``): a test clock that jumps ahead
on every sleep would otherwise turn an hourly task into a loop that moves time forward for
everything else in the process. The windows are measured on the injected clock's ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from payhook._metrics import Metrics
from payhook.config import RetentionSettings
from payhook.errors import PayhookError
from payhook.operations import RETENTION_TABLES, Operations, PruneReport, RetentionWindows

__all__ = [
    "DEFAULT_FIRST_DELAY_S",
    "DEFAULT_INTERVAL_S",
    "Pruner",
    "describe_counts",
    "describe_windows",
    "format_duration",
    "retention_windows",
]

logger = logging.getLogger("payhook.retention")

DEFAULT_INTERVAL_S = 3600.0
# "Shortly after start": not during start-up itself, when a restarted server has callbacks
# and deliveries to catch up on.
DEFAULT_FIRST_DELAY_S = 60.0
# How long shutdown waits for the batch in progress before cancelling it.
_STOP_GRACE_S = 10.0

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """``604800.0`` -> ``"7d"``: the largest unit that divides it, as the config writes it."""
    if seconds == int(seconds):
        whole = int(seconds)
        for unit, size in _UNITS:
            if whole and whole % size == 0:
                return f"{whole // size}{unit}"
    return f"{seconds:g}s"


def retention_windows(settings: RetentionSettings) -> RetentionWindows:
    """The ``[retention]`` section as the storage's windows."""
    return RetentionWindows(
        refused_callbacks=timedelta(seconds=settings.refused_callbacks),
        attempts=timedelta(seconds=settings.attempts),
        events=timedelta(seconds=settings.events),
    )


def describe_windows(settings: RetentionSettings) -> str:
    """``refused callbacks 7d, attempts 30d, events 400d``."""
    return (
        f"refused callbacks {format_duration(settings.refused_callbacks)}, "
        f"attempts {format_duration(settings.attempts)}, "
        f"events {format_duration(settings.events)}"
    )


def describe_counts(report: PruneReport) -> str:
    """``payhook_events 3, payhook_deliveries 6, …`` (tables with rows only)."""
    counts = report.counts
    return ", ".join(f"{t} {counts[t]}" for t in RETENTION_TABLES if counts[t]) or "nothing"


class Pruner:
    """Prunes ``first_delay_s`` after :meth:`run` starts, then every ``interval_s``.

    Args:
        operations: the operator service of the process's database.
        settings: the ``[retention]`` windows.
        metrics: rows pruned by table, failures and the time of the last success.
    """

    def __init__(
        self,
        operations: Operations,
        settings: RetentionSettings,
        *,
        metrics: Metrics,
        interval_s: float = DEFAULT_INTERVAL_S,
        first_delay_s: float = DEFAULT_FIRST_DELAY_S,
    ) -> None:
        if not interval_s > 0 or first_delay_s < 0:
            raise ValueError("interval_s must be > 0 and first_delay_s >= 0")
        self._operations = operations
        self._settings = settings
        self._windows = retention_windows(settings)
        self._metrics = metrics
        self._interval_s = interval_s
        self._first_delay_s = first_delay_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Pruner({describe_windows(self._settings)}, every {self._interval_s:g}s)"

    async def run_once(self) -> PruneReport | None:
        """One prune now; None when it failed (logged as a warning and counted)."""
        try:
            report = await self._operations.prune(self._windows, stop=self._stopping.is_set)
        except Exception as exc:  # noqa: BLE001 - a background loop: log, try again later
            detail = exc.message if isinstance(exc, PayhookError) else exc.__class__.__name__
            self._metrics.retention_failures.inc()
            logger.warning(
                "retention: prune failed (%s); next try in %s",
                detail,
                format_duration(self._interval_s),
                extra={"action": "retention_failed"},
            )
            return None
        for table in RETENTION_TABLES:
            if report.counts[table]:
                self._metrics.retention_pruned.labels(table).inc(report.counts[table])
        if report.complete:
            self._metrics.retention_last_success.set(self._operations.now().timestamp())
        if report.total:
            logger.info(
                "retention: removed %d rows (%s)%s",
                report.total,
                describe_counts(report),
                "" if report.complete else "; stopped early by shutdown",
                extra={"action": "retention_pruned"},
            )
        return report

    async def run(self) -> None:
        """Prune until :meth:`stop`."""
        delay = self._first_delay_s
        while not await self._stopped_within(delay):
            await self.run_once()
            delay = self._interval_s

    def start(self) -> asyncio.Task[None]:
        """Run in a task of the running loop."""
        if self._task is None:
            if self._settings.refund_risk:
                logger.warning(
                    "retention: events are kept %s, under a year: an Alipay refund that "
                    "arrives after the trade's earlier refunds were pruned gets a wrong "
                    "refund_amount",
                    format_duration(self._settings.events),
                    extra={"action": "retention_refund_risk"},
                )
            self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self) -> None:
        """End :meth:`run`: a prune in progress stops after its current batch."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=_STOP_GRACE_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception:  # noqa: BLE001, S110 - run() logs its own failures
            pass

    async def _stopped_within(self, seconds: float) -> bool:
        if self._stopping.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        return self._stopping.is_set()
