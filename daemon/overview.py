"""The status of one installation at a glance: daemon, loads, inbox and failed files.

Owns the snapshot behind the `status` command (and the status page, which renders the
same `Overview`): whether a daemon holds the lock on the database and its pid, files
processed and failed (and their loads) today (UTC) and in all, the last success, files
waiting in the inbox and in flight in the work directory, and the failed files with
their reasons and the sidecars left there without their file. It only reads: the lock is
probed without waiting (`lock.probe`), the database through a read-only connection the
caller opens, the directories through `daemon.folders`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from config import Settings
from daemon import folders, ledger, lock, queries


@dataclass(frozen=True)
class Leftover:
    """A sidecar in failed/ without its file, and the retry that left it (None if none
    recorded it, or without a database)."""

    sidecar: folders.LeftoverSidecar
    retry: queries.Retry | None


@dataclass(frozen=True)
class Overview:
    """One reading of the status; the database parts are None without a database."""

    daemon: lock.LockState
    db: Path
    schema_version: int | None
    today: str  # the UTC date `loads_today` counts
    loads_today: queries.Tally | None
    loads_total: queries.Tally | None
    last_success: queries.Load | None
    # Loads recorded as finished later than now: a clock that ran ahead, since corrected.
    loads_in_the_future: int | None
    # Where the daemon said at its last start it keeps its folders, and which it made.
    recorded: queries.Daemon | None
    inbox: Path
    waiting: int  # in the inbox
    work: Path
    in_flight: int  # claimed, in the work directory: loading now, or to resume
    failed_dir: Path
    failed: list[folders.FailedFile]
    leftovers: list[Leftover]

    @property
    def healthy(self) -> bool:
        """No failed file waits for a retry."""
        return not self.failed


def gather(settings: Settings, conn: sqlite3.Connection | None, now: datetime) -> Overview:
    """The status at `now` (UTC); `conn` is a read-only connection, or None if there is no
    database."""
    daemon = lock.probe(settings.lock_file)
    version = loads_today = loads_total = last = future = recorded = None
    today = now.date()
    if conn is not None:
        stamp = ledger.stamp(now)
        version = queries.check_schema(conn)
        loads_today = queries.tally(conn, since=today.isoformat())
        loads_total = queries.tally(conn)
        last = queries.last_success(conn, stamp)
        future = queries.loads_in_the_future(conn, stamp)
        recorded = next(iter(queries.daemons(conn)), None)
    leftovers = [Leftover(x, None if conn is None else
                          queries.retry_of_sidecar(conn, x.name, x.content))
                 for x in folders.leftover_sidecars(settings.failed)]
    return Overview(daemon, settings.db, version, today.isoformat(), loads_today, loads_total,
                    last, future, recorded, settings.inbox, folders.waiting(settings.inbox),
                    settings.work, folders.waiting(settings.work), settings.failed,
                    folders.failed_files(settings.failed), leftovers)
