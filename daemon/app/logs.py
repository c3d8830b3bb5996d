"""Logging set-up: structlog and the standard library through one JSON renderer.

Configured once at start-up. Every record (our structlog events, standard-library
records such as watchdog's overflow warning, Python warnings, and uncaught exceptions in
any thread) leaves through one handler as one line: JSON when the stream is not a TTY,
readable console output when it is. Keys are stable: `timestamp` (ISO-8601 UTC),
`level`, `event`, plus the event's own keys. Nothing else in the project configures
logging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

import structlog
from structlog.typing import Processor

_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


def configure(stream: TextIO | None = None, *, json: bool | None = None,
              level: int = logging.INFO) -> None:
    """Route every log record in the process to `stream` (default stdout)."""
    stream = stream or sys.stdout
    as_json = not stream.isatty() if json is None else json
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False) if as_json
        else structlog.dev.ConsoleRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name,
                           structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks as data, without frame locals: those could hold row values.
            *([structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
              if as_json else []),
            renderer,
        ],
    )
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so `structlog.testing.capture_logs` sees loggers made at import.
        cache_logger_on_first_use=False,
    )
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception
    sys.unraisablehook = _log_unraisable


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose own failure is reported once, as JSON, on stderr.

    The standard handler would print a plain-text traceback to stderr for every record
    it failed to write (stdout closed by a reader that went away, say).
    """

    reported = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (stdlib name)
        if self.reported:
            return
        self.reported = True
        error = sys.exc_info()[1]
        line = {"timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "level": "error", "event": "log_write_failed", "reason": repr(error),
                "hint": "the log stream was closed; later log lines are lost"}
        with contextlib.suppress(Exception):
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()


def _log_uncaught(kind: type[BaseException], value: BaseException,
                  tb: TracebackType | None) -> None:
    structlog.get_logger("daemon").critical("unhandled_exception", exc_info=(kind, value, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    structlog.get_logger("daemon").critical(
        "unhandled_exception", thread=args.thread.name if args.thread else None,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )


def _log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    # Python would print these ("Exception ignored in ...") as plain text on stderr.
    value = unraisable.exc_value
    structlog.get_logger("daemon").error(
        "unraisable_exception", reason=unraisable.err_msg or "exception ignored",
        object=repr(unraisable.object),
        exc_info=(unraisable.exc_type, value, unraisable.exc_traceback) if value else None,
    )
