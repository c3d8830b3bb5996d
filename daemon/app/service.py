"""The `run` command: the instance lock, the database, signals, and the exit code.

Signal handlers only set the stop flag and restore the default disposition, so the
first SIGTERM/SIGINT lets the file in flight finish (warm shutdown) and a second one
ends the process at once. `run(settings, once=)` returns the exit code: 0 done, 1 a
`--once` drain left failed files (or the worker crashed), 2 bad configuration or
database, 3 another daemon holds a lock (the database, the inbox or the work
directory), 75 a `--once` run gave up waiting for its database at start
(`daemon.app.opening`). Argv is `daemon.app.cli`'s.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

import pyarrow as pa
import structlog

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.daemon import crashpoints
from filedrop_etl.daemon.app import folders, notify, opening, serving, signals, worker
from filedrop_etl.daemon.errors import AlreadyRunning, DatabaseUnavailable, SchemaMismatch
from filedrop_etl.daemon.load import quarantine
from filedrop_etl.daemon.lock import InstanceLock
from filedrop_etl.daemon.outcomes import OUTCOMES
from filedrop_etl.daemon.warehouse.api import (
    WarehouseFault,
)
from filedrop_etl.daemon.watch.report import WorkerReport
from filedrop_etl.daemon.watch.watcher import directory_locks

log = structlog.get_logger("daemon")

EXIT_OK, EXIT_FAILED_FILES, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
# How soon the main thread reports a stop signal its handler (flags only) took.
_STOPPING_CHECK_SECONDS = 0.1


def _use_system_allocator_for_arrow() -> None:
    """pyarrow's default allocator (mimalloc) keeps freed batches resident: about 100 MB
    more peak memory on a 5M-row file, measured. An explicit ARROW_DEFAULT_MEMORY_POOL
    is left as the operator set it."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


def run(settings: Settings, *, once: bool) -> int:
    """The daemon itself: lock, database, watcher, until stopped; the exit code."""
    _use_system_allocator_for_arrow()
    try:
        armed = crashpoints.arm()
    except ConfigError as exc:
        log.error("config_invalid", reason=exc.message, hint=exc.hint)
        return EXIT_USAGE
    if armed:
        log.warning("crash_point_armed", point=armed, hint=f"for crash tests only: unset "
                    f"{crashpoints.ENV_VAR} to run normally")
    with ExitStack() as cleanup:
        notifier = cleanup.enter_context(notify.Notifier.from_environment())
        # Every refusal that can be foreseen comes before anything is made: a daemon refused
        # (the database's lock held, the inbox another daemon's, a folder it should not
        # make) leaves the tree as it found it. The locks that exist are taken first, then
        # the folders and lock file that do not are made, and locked in turn.
        lock = InstanceLock(settings.lock_file)
        locks = directory_locks(settings)
        cleanup.callback(lock.release)
        cleanup.callback(locks.release)
        if settings.http is not None and not serving.can_serve(settings.http):
            return EXIT_USAGE
        try:
            lock.acquire(create=False)
            folders.check(settings)
            locks.acquire(existing=True)
            lock.acquire()
            created = folders.prepare(settings)
            locks.acquire()
        except ConfigError as exc:
            log.error("config_invalid", reason=exc.message, hint=exc.hint)
            return EXIT_USAGE
        except AlreadyRunning as exc:
            log.error("daemon_already_running", reason=exc.message, hint=exc.hint)
            return EXIT_LOCKED
        except OSError as exc:
            log.error("lock_unavailable", reason=str(exc), hint="check the database directory")
            return EXIT_USAGE
        try:
            opened = opening.open_waiting(settings, notifier, created, once=once)
            if isinstance(opened, opening.Ended):
                _stopped(None, opened.reason)
                return opened.code
            cleanup.callback(opened.close)
        except (SchemaMismatch, DatabaseUnavailable, AlreadyRunning) as exc:
            event = ("daemon_already_running" if isinstance(exc, AlreadyRunning)
                     else "database_unavailable")
            log.error(event, db=settings.where, reason=exc.message, hint=exc.hint)
            return EXIT_LOCKED if isinstance(exc, AlreadyRunning) else EXIT_USAGE
        except (WarehouseFault, OSError) as exc:
            log.error("database_unavailable", db=settings.where, reason=str(exc),
                      hint="check that the path is writable and is a SQLite database")
            return EXIT_USAGE
        built = worker.build(settings, opened, once=once, locks=locks)
        built.watcher.prepare()  # the folders are made and claimed above: nothing to do twice
        _remove_leftovers("sidecar_leftover_removed",
                          quarantine.sidecar_leftovers(settings.failed))
        if settings.http is not None:
            server = serving.server(settings, settings.http, built)
            if server is None:
                return EXIT_USAGE
            # Started before the worker, which `_serve` starts: until then /healthz says
            # it is not running (503) and /readyz waits for the sweep, both true.
            cleanup.callback(server.stop)
            server.start()
        # The database as it may be shown (a URL without its secrets); `place` is what
        # follows from it, logged as the settings it fills (work, the lock) are.
        described = {k: _shown(v) for k, v in vars(settings).items() if k != "place"}
        described["db"] = settings.where
        described["feeds"] = feeds_shown(settings)
        described["unmatched"] = settings.feeds.unmatched
        return _serve(described, built, once, notifier)


def _shown(value: object) -> object:
    """A setting as `daemon_started` logs it: paths as text (in a mapping too: `bases`),
    the HTTP address as HOST:PORT, a tuple of names as a list."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, tuple):
        return serving.address_shown(value)
    return value


def feeds_shown(settings: Settings) -> list[dict[str, object]]:
    """The feeds as `daemon_started` logs them: data, in declaration order, each with
    the write mode its files are loaded in."""
    return [{"name": c.name, "pattern": c.file_name_template, "date_format": c.date_format,
             "table": c.fact_table, "key": list(c.key), "date_column": c.date_column,
             "write_mode": c.write_mode or settings.write_mode,
             "columns": {col.name: col.kind for col in c.columns}}
            for c in settings.feeds]




def _stopped(report: WorkerReport | None, reason: str) -> None:
    """The daemon's last line: the worker's tally, as the metrics and `daemon_status`
    give it (all 0 for a daemon stopped before its worker was made)."""
    tally: Mapping[str, int] = dict.fromkeys(OUTCOMES, 0) if report is None else report.tally()
    log.info("daemon_stopped", **tally, reason=reason)


def _quit_now(report: WorkerReport, notifier: notify.Notifier, code: int) -> NoReturn:
    """End the process at once (SIGQUIT), without waiting for the file in flight: it
    stays claimed and is resumed at the next start; the kernel drops the locks."""
    notifier.stopping(signals.name(signals.QUIT))
    _stopped(report, signals.name(signals.QUIT))
    sys.stdout.flush()
    os._exit(code)


def _remove_leftovers(event: str, leftovers: Iterable[Path]) -> None:
    """Scratch files of a killed run (staging databases, sidecars' temporary files):
    holding the lock, no one else uses them. A sidecar's failed file is still in the
    work directory and gets a new sidecar when it is resumed."""
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
        log.info(event, path=str(leftover))


def _serve(described: dict[str, object], built: worker.Worker, once: bool,
           notifier: notify.Notifier) -> int:
    watcher, report = built.watcher, built.report
    taken = signals.Signals(watcher, report)
    taken.install()
    try:
        log.info("daemon_started", pid=os.getpid(), once=once, **described)
        watcher.start()
        # Every other thread was started with the daemon's signals blocked (see
        # `daemon.app.cli`), so they reach this thread, whose join they interrupt to run the
        # handler at once. One taken by another thread would wait for the join to end.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.TAKEN)
        # Say when the first stop signal was taken: two sent back to back arrive as one
        # (a pending signal is not queued twice), so "again" means after this line.
        announced = False
        while True:
            stopped = watcher.wait(_STOPPING_CHECK_SECONDS)
            code = taken.dispatch()
            if code is not None:
                _quit_now(report, notifier, code)
            # Checked once more after the worker ended: an idle worker ends within one
            # wait of the signal, and systemd must still hear STOPPING=1.
            if taken.stops and not announced:
                announced = True
                log.info("daemon_stopping", reason=signals.name(taken.stops[0]),
                         hint="the file in flight is finished first; send the signal "
                         "again to exit at once (the file is then resumed at the next start)")
                notifier.stopping(signals.name(taken.stops[0]))
            if stopped:
                break
            # READY once swept, the watchdog while healthy (see `daemon.app.notify`).
            notifier.tick(report)
        watcher.join()
    finally:
        taken.restore()
    received = taken.stops
    outcomes = report.tally()
    _stopped(report, signals.name(received[0]) if received else
             ("worker_crashed" if watcher.crashed else "drained"))
    if watcher.crashed:
        return EXIT_FAILED_FILES
    file = watcher.warehouse.file_identity
    if once and file is not None and file.file_problem is not None:
        return EXIT_FAILED_FILES  # the drain stopped short: see `database_lost`
    if once and (outcomes["failed"] or outcomes["retry"] or outcomes["claim_failed"]):
        return EXIT_FAILED_FILES
    return EXIT_OK
