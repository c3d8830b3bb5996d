"""The SQLite connection: the one factory, the one transaction, the staged file attached.

One connection factory (WAL, synchronous=FULL so a commit survives power loss before
the file is archived, a busy timeout) and one transaction context manager (BEGIN
IMMEDIATE; ROLLBACK on any exception, re-raised; no COMMIT into a database file that is
no longer the one at its path). A file's rows arrive in a staging database written
elsewhere (`staging`), attached here read-only for the checks and the merge. Readers
that must never write (the operator's commands) open it with `connect_readonly`. It
knows nothing of files, checks, the merge or the ledger.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from filedrop_etl.daemon.errors import DatabaseUnavailable
from filedrop_etl.daemon.warehouse.sql import q
from filedrop_etl.daemon.warehouse.sqlite import dbfile

# 64 MiB of page cache: a 1M-row merge touches ~100 MB of pages, and a cache that holds
# the hot index pages roughly halves its time; memory stays within the 5M-row budget.
CACHE_KIB = 64 * 1024


def uri(path: Path, **params: str) -> str:
    """A `file:` URI for SQLite naming exactly `path`."""
    # From the path's bytes (a name need not be UTF-8), with an empty authority (a path
    # may begin with `//`).
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return "file://" + quote(os.fsencode(path.absolute())) + (f"?{query}" if query else "")


def not_a_database_file(path: Path) -> DatabaseUnavailable:
    """The error for a database path that is a directory: SQLite says only "unable to
    open database file" (or, reading, "disk I/O error"), naming neither."""
    return DatabaseUnavailable(
        f"{path} is a directory, not a database file",
        hint="give the database file itself, the one the daemon uses (it creates it if "
        f"it does not exist), such as --db {path / 'etl.db'}")


def connect(path: Path, busy_timeout_seconds: float = 5.0, *,
            create: bool = True) -> sqlite3.Connection:
    """The one way this project opens its database for writing.

    `create=False` for a command that writes to the daemon's database but must not
    invent one where there is none: SQLite then refuses a missing file (CANTOPEN).
    A directory at `path` is `DatabaseUnavailable`. The connection remembers which file
    it opened, and every commit through `transaction` first checks that the file at
    `path` is still that one (`daemon.warehouse.sqlite.dbfile`).
    """
    if path.is_dir():
        raise not_a_database_file(path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are ours (see `transaction`), not the module's.
    # uri=True so that ATTACH can pass `immutable=1` for the staging database.
    conn = sqlite3.connect(uri(path) if create else uri(path, mode="rw"),
                           timeout=busy_timeout_seconds, isolation_level=None,
                           check_same_thread=False, uri=True, factory=dbfile.Connection)
    try:
        # Switching to WAL takes a lock: another process can make it fail (busy), and
        # the daemon then tries again at start-up, so do not leave this one open.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        # The file exists now (the journal mode is written in it): which one it is.
        conn.path, conn.opened = path, dbfile.identity(path)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(path: Path, busy_timeout_seconds: float = 5.0) -> sqlite3.Connection:
    """A connection that can only read: for status and reports beside a running daemon.

    `mode=ro` never creates the file (a missing database is `sqlite3.OperationalError`,
    CANTOPEN) and takes no write lock, so the daemon's loads never wait for it; in WAL
    mode a reader does not block the writer either. `query_only` is a second guard
    against a write slipping in. The busy timeout covers the rare moments a reader must
    wait (WAL recovery after a crash, the daemon switching the journal mode at start-up).
    A directory at `path` is `DatabaseUnavailable`.
    """
    if path.is_dir():
        raise not_a_database_file(path)
    conn = sqlite3.connect(uri(path, mode="ro"), timeout=busy_timeout_seconds,
                           isolation_level=None, check_same_thread=False, uri=True)
    try:
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def staged_table(table: str) -> str:
    """The attached staging database's table, as the checks and the merge read it."""
    return f'"staging".{q(table)}'


@contextmanager
def attached_staging(conn: sqlite3.Connection, path: Path, table: str) -> Iterator[int]:
    """Attach a closed staging database as `staging`, yield its `table`'s row count,
    detach.

    `immutable=1`: this connection takes no lock on the file and opens no journal for
    it, so the other SQLite library that wrote it can never see its locks disturbed.
    """
    conn.execute("ATTACH DATABASE ? AS staging", (uri(path, immutable="1"),))
    try:
        rows, = conn.execute(f"SELECT COUNT(*) FROM {staged_table(table)}").fetchone()
        yield int(rows)
    except BaseException as exc:
        # A failing DETACH must not hide the error that ended the block.
        try:
            conn.execute("DETACH DATABASE staging")
        except sqlite3.Error as detach_exc:
            exc.add_note(f"detaching the staging database failed too: {detach_exc}")
        raise
    conn.execute("DETACH DATABASE staging")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; ROLLBACK and re-raise on any exception, COMMIT's too,
    and `DatabaseMoved` (before COMMIT) if the database's path no longer holds the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        # Last, right before the commit: rows committed into a deleted file, or into one
        # whose path another file took, are rows nobody will find.
        dbfile.check_same_file(conn)
        conn.execute("COMMIT")
    except BaseException as exc:
        # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR): a second
        # ROLLBACK would fail and hide the error that matters.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_exc:
                exc.add_note(f"the rollback failed too: {rollback_exc}")
        raise
