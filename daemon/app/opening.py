"""The warehouse at start-up: opened, or waited for while a fault ends by itself.

Another process's write lock (a backup, a migration, an sqlite3 shell), a full disk
and, for a server, the server out of reach end without the daemon's help, so the start
waits for them with backoff, says why at each attempt, and takes a stop signal while it
waits. A `--once` run (cron, a timer) waits at most `once_wait_seconds`, then gives up
with `EXIT_GAVE_UP`: a run that hung there would have the next ones pile up behind it.
What the rest of the start does is `daemon.app.service`'s.
"""

from __future__ import annotations

import itertools
import signal
import time
from dataclasses import dataclass

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon import warehouse
from filedrop_etl.daemon.app import notify, signals
from filedrop_etl.daemon.warehouse.api import (
    FOLDER_NAMES,
    Folders,
    Warehouse,
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
    WarehouseUnavailable,
)
from filedrop_etl.daemon.watch.watcher import retry_delay

log = structlog.get_logger("daemon")

# sysexits.h's EX_TEMPFAIL, "try again later": a `--once` run that gave up waiting for
# its database loaded nothing and may simply run again. Neither 1 nor 2, which need a
# person (failed files, a wrong setting), nor 3 (another daemon holds a lock).
EXIT_GAVE_UP = 75
# Event and hint for each fault waited for at start-up.
_WAIT_AT_START: dict[type[WarehouseFault], tuple[str, str]] = {
    WarehouseBusy: ("database_busy", "another process holds a lock on the database the "
                    "start needs (a backup, a migration, an sqlite3 shell or a psql session "
                    "left in a transaction?); the daemon starts once it is released"),
    WarehouseFull: ("database_full", "free space on the database's filesystem; the daemon "
                    "starts once there is room"),
    WarehouseUnavailable: ("database_unavailable", "the daemon starts once the server "
                           "answers; check that it runs and that this host may reach it"),
}
# What a `--once` run that gave up on each of those says to see to before the next run.
_SEE_TO = {
    "database_busy": "find what holds the database's lock (a backup, a migration, an "
                     "sqlite3 shell or a psql session left in a transaction)",
    "database_full": "free space on the database's filesystem",
    "database_unavailable": "check that the server runs and that this host may reach it",
}
# While it waits at start-up, the daemon asks systemd for this much more than the next
# attempt can take (the backoff step, a lock waited for, a silent server given up) each
# time it says why.
_EXTEND_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Ended:
    """The start ended while waiting: the exit code, and why (`daemon_stopped`'s reason)."""

    code: int
    reason: str


def open_waiting(settings: Settings, notifier: notify.Notifier, created: list[str], *,
                 once: bool) -> Warehouse | Ended:
    """Open the warehouse (migrated, this start recorded with the folders it `created`),
    waiting with backoff while another process holds the database busy or locked, its
    disk is full or its server out of reach; `Ended` instead if a signal that ends the
    daemon came while waiting, or a `--once` run waited `once_wait_seconds` (a last
    attempt at the deadline first).

    Exiting at once would only have a service manager restart the daemon into the same
    lock or full disk, over and over. Any other error is raised at once. Under systemd,
    each attempt extends the start timeout (READY comes only once the inbox is swept),
    so a daemon that waits is not killed as one that hangs.
    """
    started = time.monotonic()
    bound = settings.once_wait_seconds if once else None
    for attempt in itertools.count(1):
        folders = Folders(**{n: str(getattr(settings, n)) for n in FOLDER_NAMES}, created=created)
        try:
            return warehouse.open_warehouse(settings, folders)
        except WarehouseFault as exc:
            waiting = _WAIT_AT_START.get(type(exc))
            if waiting is None or (isinstance(exc, WarehouseUnavailable) and not settings.shared):
                raise
            event, hint = waiting
            delay = retry_delay(attempt)
            left = None if bound is None else started + bound - time.monotonic()
            if left is not None:
                if left <= 0:
                    return _give_up(settings, event, exc, attempt, started)
                delay = min(delay, left)
            log.error(event, db=settings.where, reason=exc.message, hint=hint,
                      attempt=attempt, retry_in_seconds=round(delay, 3),
                      **({} if left is None else {"gives_up_in_seconds": round(left, 1)}))
            notifier.waiting(f"{event}: {exc.message} (attempt {attempt}, next in {delay:g} s)",
                             delay + settings.busy_timeout_seconds
                             + settings.network_timeout_seconds + _EXTEND_MARGIN_SECONDS)
        # The daemon's signals are still blocked here (see `daemon.app.cli`): take one while
        # waiting, so that a stop is prompt, and no handler is needed yet.
        taken = signal.sigtimedwait(signals.TAKEN, delay)
        code = None if taken is None else signals.on_start_up(taken.si_signo)
        if taken is not None and code is not None:
            return Ended(code, signals.name(taken.si_signo))
    raise AssertionError("unreachable: the attempts never run out")


def _give_up(settings: Settings, event: str, exc: WarehouseFault, attempts: int,
             started: float) -> Ended:
    """Say why a `--once` run ends without loading anything (`once_gave_up`)."""
    log.error("once_gave_up", db=settings.where, waited_for=event, reason=exc.message,
              attempts=attempts, waited_seconds=round(time.monotonic() - started, 1),
              once_wait_seconds=settings.once_wait_seconds, exit_code=EXIT_GAVE_UP,
              hint=f"this run loaded nothing and left the inbox as it was; {_SEE_TO[event]}; "
              f"the next run tries again (exit code {EXIT_GAVE_UP}: try later), or raise "
              "once_wait_seconds (off: wait as the daemon does)")
    return Ended(EXIT_GAVE_UP, "once_gave_up")
