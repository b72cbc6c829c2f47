"""The CLI's logging: records handed to a writer thread through the standard QueueHandler and
QueueListener, formatted there, INFO lines written in batches, WARNING at once, in order,
and everything written on every way out of the process."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from payhook._logging import (
    _WAKE_AT,
    JsonFormatter,
    TextFormatter,
    _StreamHandler,
    start_writer,
)

Writer = tuple[logging.handlers.QueueHandler, logging.handlers.QueueListener, io.StringIO]


class _Stream(io.StringIO):
    """A stream that counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.fixture
def make_writer() -> Iterator[Callable[..., Writer]]:
    """Build a queue handler and its writer thread on a StringIO; stopped after the test."""
    started: list[logging.handlers.QueueListener] = []

    def make(interval_s: float = 3600.0, formatter: logging.Formatter | None = None) -> Writer:
        stream = _Stream()
        target = _StreamHandler(stream)
        target.setFormatter(formatter or logging.Formatter("%(levelname)s %(message)s"))
        handler, writer = start_writer(target, interval_s=interval_s)
        started.append(writer)
        return handler, writer, stream

    yield make
    for writer in started:
        if writer._thread is not None:  # type: ignore[attr-defined]
            writer.stop()


def _record(level: int, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError as error:
            exc_info = (ValueError, error, error.__traceback__)
    return logging.LogRecord("payhook.test", level, __file__, 1, msg, args, exc_info)


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_the_handler_and_listener_are_the_standard_library_ones(
    make_writer: Callable[..., Writer],
) -> None:
    """The hand-off is logging.handlers.QueueHandler and the writer its QueueListener."""
    handler, writer, _ = make_writer()
    assert isinstance(handler, logging.handlers.QueueHandler)
    assert isinstance(writer, logging.handlers.QueueListener)


def test_info_lines_wait_for_the_interval_or_the_stop_and_keep_their_order(
    make_writer: Callable[..., Writer],
) -> None:
    """Below WARNING nothing wakes the writer; stopping it writes every line, in order."""
    handler, writer, stream = make_writer()
    for n in range(3):
        handler.handle(_record(logging.INFO, "callback %s", n))
    time.sleep(0.05)
    assert stream.getvalue() == ""  # queued, not written yet
    writer.stop()
    assert stream.getvalue() == "INFO callback 0\nINFO callback 1\nINFO callback 2\n"


def test_a_warning_writes_the_queue_first_then_itself_and_flushes(
    make_writer: Callable[..., Writer],
) -> None:
    """A WARNING wakes the writer at once; the INFO lines queued before it come out first."""
    handler, _, stream = make_writer()
    handler.handle(_record(logging.INFO, "first"))
    handler.handle(_record(logging.WARNING, "second"))
    _wait_for(lambda: "second" in stream.getvalue())
    assert stream.getvalue() == "INFO first\nWARNING second\n"
    assert isinstance(stream, _Stream)
    assert stream.flushes >= 1


def test_the_writer_writes_queued_lines_by_itself_within_its_interval(
    make_writer: Callable[..., Writer],
) -> None:
    """With no WARNING and no stop, INFO lines still reach the stream after the interval."""
    handler, _, stream = make_writer(interval_s=0.01, formatter=TextFormatter())
    handler.handle(_record(logging.INFO, "callback accepted"))
    _wait_for(lambda: "callback accepted" in stream.getvalue())
    assert " INFO payhook.test: callback accepted\n" in stream.getvalue()


def test_a_long_queue_wakes_the_writer(make_writer: Callable[..., Writer]) -> None:
    """A burst of INFO lines is written before the interval once the queue is long."""
    handler, _, stream = make_writer()
    for n in range(_WAKE_AT):
        handler.handle(_record(logging.INFO, "n=%d", n))
    _wait_for(lambda: stream.getvalue().count("\n") == _WAKE_AT)
    numbers = [int(line.split("=")[1]) for line in stream.getvalue().splitlines()]
    assert numbers == list(range(_WAKE_AT))


def test_records_that_could_change_are_rendered_when_logged(
    make_writer: Callable[..., Writer],
) -> None:
    """A mutable argument is rendered as it was when logged; an exception is kept whole."""
    handler, writer, stream = make_writer()
    ids = ["evt_1"]
    handler.handle(_record(logging.INFO, "ids %s", ids))
    ids.append("evt_2")
    handler.handle(_record(logging.INFO, "failed", exc=True))
    writer.stop()
    text = stream.getvalue()
    assert text.startswith("INFO ids ['evt_1']\nINFO failed\nTraceback")
    assert "ValueError: boom" in text


def test_mapping_arguments_are_rendered_when_logged(make_writer: Callable[..., Writer]) -> None:
    """``logger.info("%(ids)s", {"ids": ids})``: the mapping's values could change too."""
    handler, writer, stream = make_writer()
    ids = ["evt_1"]
    record = logging.LogRecord("payhook.test", logging.INFO, __file__, 1, "%(ids)s", None, None)
    record.args = {"ids": ids}
    handler.handle(record)
    ids.append("evt_2")
    writer.stop()
    assert stream.getvalue() == "INFO ['evt_1']\n"


def test_handler_filters_apply(make_writer: Callable[..., Writer]) -> None:
    handler, writer, stream = make_writer()
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    handler.handle(_record(logging.INFO, "a secret"))
    handler.handle(_record(logging.INFO, "plain"))
    writer.stop()
    assert stream.getvalue() == "INFO plain\n"


def test_a_record_that_cannot_be_formatted_does_not_lose_the_others(
    make_writer: Callable[..., Writer],
) -> None:
    handler, writer, stream = make_writer()
    handler.handle(_record(logging.INFO, "%d apples", "not a number"))
    handler.handle(_record(logging.INFO, "fine"))
    logging.raiseExceptions, saved = False, logging.raiseExceptions
    try:
        writer.stop()
    finally:
        logging.raiseExceptions = saved
    assert stream.getvalue() == "INFO fine\n"


def test_records_from_many_threads_are_all_written(make_writer: Callable[..., Writer]) -> None:
    handler, writer, stream = make_writer()

    def log(thread: int) -> None:
        for n in range(500):
            handler.handle(_record(logging.INFO, "t%d n%d", thread, n))

    threads = [threading.Thread(target=log, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.stop()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2000
    for t in range(4):
        mine = [line for line in lines if line.startswith(f"INFO t{t} ")]
        assert mine == [f"INFO t{t} n{n}" for n in range(500)]


def test_json_lines_carry_payhook_fields() -> None:
    """One JSON object per line, with the stable fields passed through ``extra``."""
    record = _record(logging.INFO, "callback %s", "accepted")
    record.action = "callback_accepted"
    record.channel = "alipay"
    record.event_id = "evt_1"
    record.unrelated = "not a field"
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "callback accepted"
    assert (data["level"], data["logger"]) == ("INFO", "payhook.test")
    assert (data["action"], data["channel"], data["event_id"]) == (
        "callback_accepted",
        "alipay",
        "evt_1",
    )
    assert "unrelated" not in data


# -- every way out of a process writes the queued lines -----------------------------------


_CHILD = """
import logging, os, signal, sys
from payhook._logging import configure_logging
from payhook._runtime import prepare_long_running_process

configure_logging("INFO", "text")
prepare_long_running_process()
log = logging.getLogger("payhook.test")
for n in range(3):
    log.info("line %d", n)
log.info("last words")
how = sys.argv[1]
if how == "exception":
    raise RuntimeError("crash")
if how == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
if how == "sys_exit":
    sys.exit(3)
"""


@pytest.mark.parametrize(
    ("how", "returncode"),
    [("normal", 0), ("sys_exit", 3), ("exception", 1), ("sigterm", -signal.SIGTERM)],
)
def test_queued_lines_are_written_on_every_exit(how: str, returncode: int) -> None:
    """Normal exit, sys.exit, an uncaught exception and SIGTERM all write the queued INFO
    lines (SIGTERM still ends the process as killed by SIGTERM)."""
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == returncode, child.stderr
    lines = [line for line in child.stderr.splitlines() if "payhook.test" in line]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "line 0",
        "line 1",
        "line 2",
        "last words",
    ], child.stderr
    if how == "exception":
        assert "RuntimeError: crash" in child.stderr


_LATE = """
import logging
from payhook._logging import configure_logging, flush_logs

configure_logging("INFO", "json")
log = logging.getLogger("payhook.test")
log.info("queued", extra={"action": "queued", "secret": "not a field"})
flush_logs()
log.info("after the writer stopped", extra={"action": "late"})
configure_logging("INFO", "json")
log.warning("configured again")
"""


def test_json_lines_from_a_process_and_lines_after_the_writer_stopped() -> None:
    """Every line is one JSON object; a line logged after flush_logs is still written, and
    configuring again starts a new writer."""
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_LATE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    lines = [json.loads(line) for line in child.stderr.splitlines()]
    assert [(d["message"], d.get("action")) for d in lines] == [
        ("queued", "queued"),
        ("after the writer stopped", "late"),
        ("configured again", None),
    ]
    assert all("secret" not in d for d in lines)
