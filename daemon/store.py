"""The SQLite side of a load: connection, transaction, staged rows, merge.

One connection factory (WAL, synchronous=FULL so a commit survives power loss before
the file is archived, a busy timeout) and one transaction context manager (BEGIN
IMMEDIATE; ROLLBACK on any exception, re-raised; no COMMIT into a database file that is
no longer the one at its path). A file's rows arrive in a staging
database written elsewhere (`daemon.staging`), attached here read-only for the checks
and the merge. All SQL binds its values and quotes its identifiers, which come only
from `config.contract`. The ledger's and the retries' rows are `daemon.ledger`'s and
`daemon.retries`'; the tables and their migration are `daemon.schema`'s. Readers that
must never write (the operator's commands) open it with `connect_readonly`. It knows
nothing of files or checks.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from config import contract
from daemon import dbfile
from daemon.errors import DatabaseUnavailable

_DATA = contract.COLUMN_NAMES
_VALUES = tuple(n for n in _DATA if n != contract.KEY)


def q(identifier: str) -> str:
    """Quote an SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


STAGING, FACT, LEDGER, KEY = (q(contract.STAGING_TABLE), q(contract.FACT_TABLE),
                              q(contract.LEDGER_TABLE), q(contract.KEY))
RETRIES_TABLE = "retries"
RETRIES = q(RETRIES_TABLE)
# The attached staging database and its table, as the checks and the merge read it.
STAGED = f'"staging".{STAGING}'
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
    `path` is still that one (`daemon.dbfile`).
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


@contextmanager
def attached_staging(conn: sqlite3.Connection, path: Path) -> Iterator[int]:
    """Attach a closed staging database as `staging`, yield its row count, detach.

    `immutable=1`: this connection takes no lock on the file and opens no journal for
    it, so the other SQLite library that wrote it can never see its locks disturbed.
    """
    conn.execute("ATTACH DATABASE ? AS staging", (uri(path, immutable="1"),))
    try:
        rows, = conn.execute(f"SELECT COUNT(*) FROM {STAGED}").fetchone()
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


def surplus_rows(conn: sqlite3.Connection, column: str, limit: int) -> tuple[int, list[str]]:
    """Staged rows beyond the first for each repeated non-null value of `column`, and up to
    `limit` of those values; the samples are looked for only when there are repeats."""
    col = q(column)
    total, = conn.execute(
        f"SELECT COUNT({col}) - COUNT(DISTINCT {col}) FROM {STAGED}").fetchone()
    if not total:
        return 0, []
    samples = conn.execute(
        f"SELECT {col} FROM {STAGED} WHERE {col} IS NOT NULL GROUP BY {col} "
        f"HAVING COUNT(*) > 1 ORDER BY {col} LIMIT ?", (limit,)).fetchall()
    return int(total), [str(s) for s, in samples]


@dataclass(frozen=True)
class MergeCounts:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int = 0


def _differs(left: str, right: str) -> str:
    return " OR ".join(f"{left}.{q(n)} IS NOT {right}.{q(n)}" for n in _VALUES)


def merge(conn: sqlite3.Connection, *, rows: int, loaded_at: str, load_id: int,
          keys_sorted: bool, keys_counted: bool = False,
          replace_date: str | None = None) -> MergeCounts:
    """Upsert the staged rows (unique keys) into the fact table, rewriting only rows whose
    values changed.

    With `replace_date`, the file is the whole truth for that run date: fact rows of the
    date whose key is absent from staging are deleted. Keys are fed to the upsert in
    order (sorted here unless `keys_sorted`): the fact's key index then grows at its
    right edge. The split of SQLite's change count into inserts and updates costs only
    the inserted rows: new rows take rowids above the largest one before the upsert.
    `keys_sorted` promises strictly ascending keys, so unique ones; `keys_counted` says
    the caller counted repeats in staging and found none (`surplus_rows`). Otherwise the
    keys are counted here, and a repeated key raises `RuntimeError`: an upsert would
    silently write its row twice. (On unsorted keys that count costs about as much as
    the merge itself, so it is not paid twice.)
    """
    if not (keys_sorted or keys_counted):
        repeats, _ = surplus_rows(conn, contract.KEY, limit=0)
        if repeats:
            raise RuntimeError(f"{repeats} staged rows repeat a key: the caller must refuse "
                               "repeated keys before the merge")
    top, = conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {FACT}").fetchone()
    target = ", ".join(map(q, (*_DATA, "loaded_at", "load_id")))
    assignments = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in (*_VALUES, "loaded_at", "load_id"))
    order = "" if keys_sorted else f" ORDER BY {KEY}"
    # `WHERE true` disambiguates ON CONFLICT after a SELECT; the DO UPDATE's WHERE is
    # what keeps `loaded_at` stable for rows whose values did not change.
    changed = conn.execute(
        f"INSERT INTO {FACT} ({target}) "
        f"SELECT {', '.join(map(q, _DATA))}, ?, ? FROM {STAGED} WHERE true{order} "
        f"ON CONFLICT ({KEY}) DO UPDATE SET {assignments} "
        f"WHERE {_differs(FACT, 'excluded')}",
        (loaded_at, load_id),
    ).rowcount
    inserted, = conn.execute(f"SELECT COUNT(*) FROM {FACT} WHERE rowid > ?", (top,)).fetchone()
    updated = changed - inserted
    if not 0 <= updated <= rows - inserted:
        raise RuntimeError(f"merge of {rows} rows changed {changed}, of which {inserted} "
                           "were new: `rows` is not the staged row count")
    deleted = 0
    # After the upsert every staged key is a fact row of the date (the checks saw to
    # that), so the date's rows beyond `rows` are exactly those to delete; counting them
    # on the date index spares the anti-join when there are none, the usual case.
    if replace_date is not None and _rows_of_date(conn, replace_date) > rows:
        deleted = conn.execute(
            f"DELETE FROM {FACT} WHERE {q(contract.DATE_COLUMN)} = ? "
            f"AND {KEY} NOT IN (SELECT {KEY} FROM {STAGED})",
            (replace_date,),
        ).rowcount
    return MergeCounts(rows, inserted, updated, rows - inserted - updated, deleted)


def _rows_of_date(conn: sqlite3.Connection, run_date: str) -> int:
    count, = conn.execute(f"SELECT COUNT(*) FROM {FACT} WHERE {q(contract.DATE_COLUMN)} = ?",
                          (run_date,)).fetchone()
    return int(count)
