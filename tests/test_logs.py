"""Logging: every record in the process leaves as one JSON line with stable keys."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import structlog

from filedrop_etl.daemon.app import logs


@contextmanager
def configured(stream: io.StringIO, json: bool | None) -> Iterator[None]:
    """`logs.configure(stream)` for the block; the global logging state restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook,
             sys.unraisablehook)
    try:
        logs.configure(stream, json=json)
        yield
    finally:
        logging.captureWarnings(False)
        (root.handlers[:], level, sys.excepthook, threading.excepthook,
         sys.unraisablehook) = saved
        root.setLevel(level)
        structlog.reset_defaults()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """JSON logging into a buffer for the test."""
    stream = io.StringIO()
    with configured(stream, json=True):
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_events_have_timestamp_level_and_event(log_stream: io.StringIO) -> None:
    structlog.get_logger("daemon").info("file_processed", file="a.parquet", rows=3)
    [line] = lines(log_stream)
    assert line["event"] == "file_processed" and line["level"] == "info"
    assert line["file"] == "a.parquet" and line["rows"] == 3
    assert line["timestamp"].endswith("Z")
    datetime.fromisoformat(line["timestamp"].removesuffix("Z"))


def test_standard_library_records_share_the_renderer(log_stream: io.StringIO) -> None:
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost")
    [line] = lines(log_stream)
    assert line["level"] == "warning" and line["logger"] == "watchdog.observers.inotify_c"
    assert "overflowed" in line["event"] and line["timestamp"].endswith("Z")


def test_python_warnings_become_json_lines(log_stream: io.StringIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something is deprecated", DeprecationWarning, stacklevel=1)
    [line] = lines(log_stream)
    assert line["logger"] == "py.warnings" and "something is deprecated" in line["event"]


def test_an_uncaught_thread_exception_is_one_json_line(log_stream: io.StringIO) -> None:
    def boom() -> None:
        raise RuntimeError("kaput")

    thread = threading.Thread(target=boom, name="doomed")
    thread.start()
    thread.join()
    [line] = lines(log_stream)
    assert line["event"] == "unhandled_exception" and line["thread"] == "doomed"
    assert line["level"] == "critical"
    assert line["exception"][0]["exc_type"] == "RuntimeError"


def test_exceptions_are_data_without_frame_locals(log_stream: io.StringIO) -> None:
    row_value = "row value"  # noqa: F841 - must not leak into the log through frame locals
    try:
        raise ValueError("bad")
    except ValueError:
        structlog.get_logger("daemon").exception("worker_crashed")
    [line] = lines(log_stream)
    assert line["exception"][0]["exc_value"] == "bad"
    assert "row value" not in log_stream.getvalue()


def test_a_tty_gets_readable_console_output() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    with configured(stream, json=None):
        structlog.get_logger("daemon").info("daemon_started", pid=1)
    output = stream.getvalue()
    assert "daemon_started" in output and not output.lstrip().startswith("{")


def test_a_closed_log_stream_is_reported_once_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with configured(Closed(), json=True):
        for _ in range(3):
            structlog.get_logger("daemon").info("file_processed")
    [line] = capsys.readouterr().err.splitlines()
    report = json.loads(line)
    assert report["event"] == "log_write_failed" and "BrokenPipeError" in report["reason"]
