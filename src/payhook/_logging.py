"""Logging set-up for the CLI: human text or one JSON object per line, with payhook's fields."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["configure_logging"]

# INFO lines (one per callback) reach stderr at most this long after they are logged;
# WARNING and above are written at once.
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
# Records waiting to be formatted beyond this are written at once (a stalled flusher).
_MAX_PENDING = 4096


class _BufferedHandler(logging.StreamHandler[TextIO]):
    """Writes to a buffered stream: WARNING and above are written and flushed at once, the
    rest within ``FLUSH_INTERVAL_S`` by a background thread (and at exit, by
    ``logging.shutdown``).

    stderr is line-buffered, which costs a write system call per INFO line, i.e. per
    callback. And below WARNING a record is only queued: the flusher formats the queue in
    one go, which costs a fraction of formatting each line on the callback path (measured
    under load: ~10 µs a callback). A record is formatted at once when it carries an
    exception or stack, when its arguments could change before it is formatted (anything
    but a tuple of str, int, float, bool and None), or in front of a WARNING, so lines keep
    their order. ``extra`` values are read when the line is formatted: payhook's own call
    sites pass values that nothing changes afterwards.
    """

    def __init__(self, stream: TextIO, *, interval_s: float = FLUSH_INTERVAL_S) -> None:
        super().__init__(stream)
        self._interval_s = interval_s
        self._pending: deque[logging.LogRecord] = deque()
        self._flusher = threading.Thread(target=self._flush_often, name="payhook-log-flush")
        self._flusher.daemon = True
        self._flusher.start()

    def handle(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno < logging.WARNING
            and not record.exc_info
            and not record.stack_info
            and type(record.args) is tuple  # a mapping's values could change too
            and all(type(arg) in _IMMUTABLE for arg in record.args)
            and len(self._pending) < _MAX_PENDING
        ):
            passed: object = self.filter(record)  # Python >= 3.12 may return a record
            if not passed:
                return False
            if isinstance(passed, logging.LogRecord):  # a filter may hand back a new record
                record = passed
            self._pending.append(record)  # deque.append is atomic: no lock needed
            return True
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            with self.lock:  # type: ignore[union-attr]
                self._write_pending()
                self.stream.write(text + self.terminator)
                if record.levelno >= logging.WARNING:
                    self.stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never take the caller down
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()
        super().flush()

    def _write_pending(self) -> None:
        """Format and write the queued records, oldest first (the caller holds the lock)."""
        lines = []
        pending = self._pending
        while pending:
            record = pending.popleft()
            try:
                lines.append(self.format(record) + self.terminator)
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001 - a bad record must not lose the others
                self.handleError(record)
        if lines:
            self.stream.write("".join(lines))

    def _flush_often(self) -> None:
        while True:
            time.sleep(self._interval_s)
            # stderr closed or broken: keep serving; its lines cannot be written anyway.
            with contextlib.suppress(OSError, ValueError):
                self.flush()


def _stderr_handler() -> logging.Handler:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (a test runner): as is
        return logging.StreamHandler(sys.stderr)
    stream = io.TextIOWrapper(
        open(fd, "wb", buffering=64 * 1024, closefd=False),  # noqa: SIM115 - lives with the process
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
        errors="backslashreplace",
        line_buffering=False,
        write_through=False,
    )
    return _BufferedHandler(stream)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send payhook's logs (and uvicorn's) to stderr in ``fmt``."""
    # payhook's formatters use neither the caller's frame nor thread or process names:
    # not collecting them saves a few microseconds per record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented in the logging HOWTO (Optimization)
    handler = _stderr_handler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # DEBUG is for payhook's own loggers only: database drivers log SQL parameters
    # (subscription secrets, callback bodies) at DEBUG.
    root.setLevel(logging.INFO if level == "DEBUG" else level)
    logging.getLogger("payhook").setLevel(level)
    for name in ("aiosqlite", "asyncpg", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
