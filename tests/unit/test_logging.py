"""The CLI's log handler: INFO lines queued and formatted in batches, WARNING at once, in order."""

from __future__ import annotations

import io
import logging
import time

from payhook._logging import _MAX_PENDING, TextFormatter, _BufferedHandler


def _handler(interval_s: float = 3600.0) -> tuple[_BufferedHandler, io.StringIO]:
    stream = io.StringIO()
    handler = _BufferedHandler(stream, interval_s=interval_s)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return handler, stream


def _record(level: int, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError as error:
            exc_info = (ValueError, error, error.__traceback__)
    return logging.LogRecord("payhook.test", level, __file__, 1, msg, args, exc_info)


def test_info_lines_wait_for_the_flush_and_keep_their_order() -> None:
    handler, stream = _handler()
    for n in range(3):
        handler.handle(_record(logging.INFO, "callback %s", n))
    assert stream.getvalue() == ""  # queued, not formatted yet
    handler.flush()
    assert stream.getvalue() == "INFO callback 0\nINFO callback 1\nINFO callback 2\n"


def test_a_warning_writes_the_queue_first_then_itself() -> None:
    handler, stream = _handler()
    handler.handle(_record(logging.INFO, "first"))
    handler.handle(_record(logging.WARNING, "second"))
    assert stream.getvalue() == "INFO first\nWARNING second\n"


def test_records_that_could_change_are_formatted_at_once() -> None:
    """A mutable argument is rendered as it was when logged; an exception at once too."""
    handler, stream = _handler()
    ids = ["evt_1"]
    handler.handle(_record(logging.INFO, "ids %s", ids))
    ids.append("evt_2")
    handler.handle(_record(logging.INFO, "failed", exc=True))
    text = stream.getvalue()
    assert text.startswith("INFO ids ['evt_1']\nINFO failed\nTraceback")
    assert "ValueError: boom" in text


def test_mapping_arguments_are_formatted_at_once() -> None:
    """``logger.info("%(ids)s", {"ids": ids})``: the mapping's values could change too."""
    handler, stream = _handler()
    ids = ["evt_1"]
    record = logging.LogRecord("payhook.test", logging.INFO, __file__, 1, "%(ids)s", None, None)
    record.args = {"ids": ids}
    handler.handle(record)
    ids.append("evt_2")
    assert stream.getvalue() == "INFO ['evt_1']\n"


def test_handler_filters_apply_to_queued_records() -> None:
    handler, stream = _handler()
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    handler.handle(_record(logging.INFO, "a secret"))
    handler.handle(_record(logging.INFO, "plain"))
    handler.flush()
    assert stream.getvalue() == "INFO plain\n"


def test_the_queue_is_bounded() -> None:
    """With the flusher stalled, the record past the bound is written at once, behind the
    queue: none is lost and the order holds."""
    handler, stream = _handler()
    for n in range(_MAX_PENDING):
        handler.handle(_record(logging.INFO, "n=%d", n))
    assert stream.getvalue() == ""
    handler.handle(_record(logging.INFO, "n=%d", _MAX_PENDING))
    assert not handler._pending
    assert stream.getvalue().count("\n") == _MAX_PENDING + 1
    handler.handle(_record(logging.INFO, "n=%d", _MAX_PENDING + 1))
    handler.flush()
    numbers = [int(line.split("=")[1]) for line in stream.getvalue().splitlines()]
    assert numbers == list(range(_MAX_PENDING + 2))


def test_a_record_that_cannot_be_formatted_does_not_lose_the_others() -> None:
    handler, stream = _handler()
    handler.handle(_record(logging.INFO, "%d apples", "not a number"))
    handler.handle(_record(logging.INFO, "fine"))
    logging.raiseExceptions, saved = False, logging.raiseExceptions
    try:
        handler.flush()
    finally:
        logging.raiseExceptions = saved
    assert stream.getvalue() == "INFO fine\n"


def test_the_flusher_writes_queued_lines_by_itself() -> None:
    handler, stream = _handler(interval_s=0.01)
    handler.setFormatter(TextFormatter())
    handler.handle(_record(logging.INFO, "callback accepted"))
    deadline = time.monotonic() + 10
    while "callback accepted" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert " INFO payhook.test: callback accepted\n" in stream.getvalue()
