"""Which file the daemon's database is, and noticing when its path no longer holds it.

SQLite writes to the file descriptor it opened, whatever happens at the path: after an
`rm etl.db`, or a restored backup moved into its place, a daemon would go on committing
into a file nobody reads (or beside a file its write-ahead log does not belong to) and
archive the files it loaded. A writing connection made by `connection.connect` is a
`Connection`, which remembers the device and inode it opened; `check_same_file` (run by
the store before every COMMIT and by the pipeline before every archive) refuses to go
on when the path holds another file or none, and `DatabaseFile` tells the worker, once
a heartbeat, so that it stops taking files and says so. It does no SQL beyond emptying
the write-ahead log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

import structlog

from filedrop_etl.daemon.warehouse.api import DatabaseMoved

log = structlog.get_logger("daemon.dbfile")

Moved = Literal["missing", "replaced"]


class Connection(sqlite3.Connection):
    """A writing connection that remembers which file it opened, by device and inode:
    SQLite keeps writing to its open file descriptor whatever happens at the path."""

    path: Path
    opened: tuple[int, int] | None = None


def identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of the file at `path` (symlinks followed, as SQLite does), None
    if there is none."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def moved(conn: sqlite3.Connection) -> Moved | None:
    """Whether the file at the database's path is still the one `conn` opened: None if
    so (or if `conn` is not a `Connection`), else `missing` (deleted or renamed away) or
    `replaced` (another file there, a restored backup say). A stat: cheap enough for
    every commit."""
    if not isinstance(conn, Connection) or conn.opened is None:
        return None
    now = identity(conn.path)
    if now == conn.opened:
        return None
    return "missing" if now is None else "replaced"


def check_same_file(conn: sqlite3.Connection) -> None:
    """`DatabaseMoved` unless the file at the database's path is the one `conn` opened."""
    lost = moved(conn)
    if lost is not None:
        assert isinstance(conn, Connection)
        raise DatabaseMoved(
            f"the database {conn.path} is no longer the file the daemon opened: "
            + ("no file is at that path (deleted or renamed away)" if lost == "missing"
               else "another file took its path (a restored backup?)"),
            hint=f"put the database the daemon opened back at {conn.path}, or restart the "
            "daemon to use the file now at that path; meanwhile files wait in the inbox "
            "and the work directory, and nothing is committed or archived")


def empty_wal(conn: sqlite3.Connection) -> None:
    """Move what the write-ahead log holds into the file `conn` opened and empty the log.

    For a database whose path another file took: the log is found by the path
    (`<db>-wal`), so frames of the old file left in it would be applied to the new one
    by whoever opens it next (and corrupt it). A failure is only logged: it changes
    nothing the daemon does next.
    """
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        log.warning("wal_checkpoint_failed", reason=str(exc),
                    hint="before opening the database now at the path, remove any "
                    "<db>-wal and <db>-shm files beside it that belong to the old one")


class DatabaseFile:
    """The worker's view of its database file (the seam's `FileIdentity`): whether the
    path still holds it, said once when that stops and once when it holds it again."""

    def __init__(self, conn: sqlite3.Connection, db: Path) -> None:
        self.conn = conn
        self.db = db
        self.problem: Moved | None = None

    @property
    def file_problem(self) -> str | None:
        return self.problem

    def check_in_place(self) -> None:
        check_same_file(self.conn)

    def check_file(self) -> str | None:
        """What is wrong with the file at the path now (None: nothing); logs
        `database_lost` (and empties the write-ahead log into the file the daemon
        opened) or `database_returned` as it changes."""
        # Each state is set before it is logged: a reader of the log line must find
        # /healthz already saying the same.
        was = self.problem
        try:
            check_same_file(self.conn)
        except DatabaseMoved as exc:
            self.problem = moved(self.conn)
            if self.problem is not None and was is None:
                log.error("database_lost", db=str(self.db), lost=self.problem,
                          reason=exc.message, hint=exc.hint)
                empty_wal(self.conn)
            return self.problem
        self.problem = None
        if was is not None:
            log.warning("database_returned", db=str(self.db),
                        hint="the file the daemon opened is back at its path: loading resumes")
        return None
