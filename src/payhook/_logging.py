"""Logging set-up for the CLI: human text or one JSON object per line, with payhook's fields.

Records go through the standard library's ``QueueHandler`` to a ``QueueListener`` thread
that formats them and writes them to stderr, off the callback path. stderr is written through
a buffer: line-buffered, it would cost a write system call per INFO line, i.e. per callback.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import logging.handlers
import sys
import threading
import time
from datetime import UTC, datetime
from queue import Empty, SimpleQueue
from typing import Any, TextIO

__all__ = ["configure_logging", "flush_logs"]

# INFO lines (one per callback) reach stderr at most this long after they are logged;
# WARNING and above are written at once, and everything is written at exit.
FLUSH_INTERVAL_S = 0.2

_FIELDS = (
    "action",
    "channel",
    "reason",
    "event_id",
    "event_ids",
    "delivery_id",
    "subscription",
    "order_id",
    "attempt",
    "status_code",
    "remote",
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in _FIELDS if getattr(record, k, None) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value …`` (time as ``2026-11-28 12:00:00,123``)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        # What logging.Formatter.format does for this format string, with the seconds part
        # of the time rendered once per second: a line is logged per callback.
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        text = (
            f"{self._stamp},{int(record.msecs):03d} {record.levelname} {record.name}: "
            f"{record.getMessage()}"
        )
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


# Argument types a record can be formatted from later, because they cannot change meanwhile.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})
# A queue this long wakes the writer before its interval (a burst of INFO lines).
_WAKE_AT = 4096


class _Handoff(logging.handlers.QueueHandler):
    """Puts records on the in-process queue as they are; a WARNING or above (or a long
    queue) wakes the writer.

    The standard ``prepare`` formats every record in the caller's thread, so that it can be
    pickled to another process. This queue stays in the process: only a record whose
    arguments could change before the writer formats it (anything but a tuple of str, int,
    float, bool and None) has its message rendered here. ``extra`` values are read when the
    line is formatted: payhook's own call sites pass values that nothing changes afterwards.
    """

    def __init__(self, queue: SimpleQueue[Any], wake: threading.Event) -> None:
        super().__init__(queue)
        self._records = queue
        self._wake = wake

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if args and not (type(args) is tuple and all(type(a) in _IMMUTABLE for a in args)):
            record.msg = record.getMessage()
            record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        queue = self._records
        queue.put_nowait(record)
        if record.levelno >= logging.WARNING or queue.qsize() >= _WAKE_AT:
            self._wake.set()


class _Writer(logging.handlers.QueueListener):
    """Formats and writes the queued records in its own thread.

    It wakes when a WARNING or above is queued, and otherwise every ``interval_s``: the
    lines of a busy period go out in one write, not one system call per callback. The
    handlers flush whenever the queue has been emptied.
    """

    def __init__(
        self,
        queue: SimpleQueue[Any],
        wake: threading.Event,
        *handlers: logging.Handler,
        interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        super().__init__(queue, *handlers)
        self._records: SimpleQueue[logging.LogRecord] = queue
        self._wake = wake
        self._interval_s = interval_s

    def dequeue(self, block: bool) -> logging.LogRecord:  # or the stop sentinel
        queue = self._records
        while True:
            try:
                return queue.get_nowait()
            except Empty:
                pass
            self._wake.clear()
            try:  # queued between the two looks: the wake-up may already be spent
                return queue.get_nowait()
            except Empty:
                pass
            self._flush()
            self._wake.wait(self._interval_s)

    def enqueue_sentinel(self) -> None:
        super().enqueue_sentinel()
        self._wake.set()

    def _flush(self) -> None:
        for handler in self.handlers:
            # stderr closed or broken: keep serving; its lines cannot be written anyway.
            with contextlib.suppress(OSError, ValueError):
                handler.flush()


class _StreamHandler(logging.StreamHandler[TextIO]):
    """Writes to a buffered stream and flushes it for WARNING and above only (the writer
    flushes the rest when its queue is empty)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never take the caller down
            self.handleError(record)


def start_writer(
    target: logging.Handler, *, interval_s: float = FLUSH_INTERVAL_S
) -> tuple[logging.handlers.QueueHandler, logging.handlers.QueueListener]:
    """A queue handler for the loggers and the started writer thread that feeds ``target``."""
    queue: SimpleQueue[Any] = SimpleQueue()
    wake = threading.Event()
    writer = _Writer(queue, wake, target, interval_s=interval_s)
    writer.start()
    return _Handoff(queue, wake), writer


_writer: logging.handlers.QueueListener | None = None
_atexit_registered = False


def flush_logs() -> None:
    """Write every record logged so far and stop the writer thread.

    Records logged afterwards are written at once, by the thread that logs them. Called at
    exit and on SIGTERM (see ``payhook._runtime``); calling it again does nothing.
    """
    global _writer
    writer, _writer = _writer, None
    if writer is None:
        return
    writer.stop()
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handoff)] + list(
        writer.handlers
    )
    for handler in writer.handlers:
        with contextlib.suppress(OSError, ValueError):
            handler.flush()


def _stderr_handler() -> logging.Handler | None:
    """A handler on a buffered stream over stderr's file descriptor, or None when stderr
    is not a file (a test runner replaced it): then records are written as they come."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    stream = io.TextIOWrapper(
        open(fd, "wb", buffering=64 * 1024, closefd=False),  # noqa: SIM115 - lives with the process
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
        errors="backslashreplace",
        line_buffering=False,
        write_through=False,
    )
    return _StreamHandler(stream)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send payhook's logs (and uvicorn's) to stderr in ``fmt``."""
    # payhook's formatters use neither the caller's frame nor thread or process names:
    # not collecting them saves a few microseconds per record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented in the logging HOWTO (Optimization)
    global _writer, _atexit_registered
    flush_logs()  # configured again (tests): the previous writer writes its lines first
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    target = _stderr_handler()
    handler: logging.Handler
    if target is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
    else:
        target.setFormatter(formatter)
        handler, _writer = start_writer(target)
        if not _atexit_registered:  # runs before logging's own atexit hook (registered first)
            atexit.register(flush_logs)
            _atexit_registered = True
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # DEBUG is for payhook's own loggers only: database drivers log SQL parameters
    # (subscription secrets, callback bodies) at DEBUG.
    root.setLevel(logging.INFO if level == "DEBUG" else level)
    logging.getLogger("payhook").setLevel(level)
    for name in ("aiosqlite", "asyncpg", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Alembic narrates every migration at INFO ("Context impl …", "Running upgrade …");
    # payhook prints what it applied itself ("applied 0004: …"), so only DEBUG shows them.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
