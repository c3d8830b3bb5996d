"""The SQLite backend's doors, imported by `BACKEND` when one is first opened.

`open_warehouse` gives the worker its warehouse (connected, migrated, its start
recorded, staging files left by a killed run removed); `reading` and `writing` give the
operator's commands and the page (through `KeptReading`) the history and the retry log,
and `migrating` is the `migrate` command's, translating every SQLite error raised in
their block into the seam's terms, so that nothing outside this package sees `sqlite3`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path

import structlog

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon import lock
from filedrop_etl.daemon.errors import DatabaseUnavailable
from filedrop_etl.daemon.warehouse.api import (
    Folders,
    Migration,
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
)
from filedrop_etl.daemon.warehouse.sqlite import connection, nodes, schema, staging
from filedrop_etl.daemon.warehouse.sqlite.faults import translated
from filedrop_etl.daemon.warehouse.sqlite.history import SqliteHistory, check_schema
from filedrop_etl.daemon.warehouse.sqlite.retry_log import SqliteRetryLog
from filedrop_etl.daemon.warehouse.sqlite.warehouse import SqliteWarehouse

log = structlog.get_logger("daemon")

__all__ = ["KeptReading", "SqliteWarehouse", "migrating", "open_warehouse", "reading",
           "writing"]


def open_warehouse(db: Path, feeds: Iterable[Contract], *, busy_timeout_seconds: float,
                   node: str, folders: Folders) -> SqliteWarehouse:
    """Connect, migrate (every feed's tables), record this start; a `WarehouseFault` to
    wait out (busy, full); `SchemaMismatch` or `DatabaseUnavailable` to stop on."""
    try:
        with translated():
            conn = connection.connect(db, busy_timeout_seconds)
            try:
                schema.init_schema(conn, feeds)
                nodes.record_start(conn, node, folders)
            except BaseException:
                conn.close()
                raise
    except (WarehouseBusy, WarehouseFull):
        raise
    except WarehouseFault as exc:
        raise DatabaseUnavailable(exc.message, hint="check that the path is writable and "
                                  "is a SQLite database") from exc
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseUnavailable(str(exc), hint="check that the path is writable and is "
                                  "a SQLite database") from exc
    for leftover in staging.leftover_files(db):
        # Scratch of a killed run: holding the lock, no one else uses it.
        leftover.unlink(missing_ok=True)
        log.info("staging_leftover_removed", path=str(leftover))
    return SqliteWarehouse(conn, db, node)


# For the commands: what is not a fault of the environment is still named, not a trace.
_READ_HINT = "check that the path is the daemon's SQLite database and that you may read it"


@contextmanager
def reading(db: Path, busy_timeout_seconds: float) -> Iterator[SqliteHistory]:
    """The read-only history of the existing database at `db`, its schema checked."""
    with translated(_READ_HINT), \
            closing(connection.connect_readonly(db, busy_timeout_seconds)) as conn:
        history = SqliteHistory(conn)
        history.schema_version()
        yield history


class KeptReading:
    """The history for a long-lived reader (the status page). A SQLite reader is a file
    handle, not a server's session: it is opened for each use (a millisecond), so that
    it always reads the file now at the path, where a kept one would go on reading a file
    deleted or replaced there."""

    def __init__(self, db: Path, busy_timeout_seconds: float) -> None:
        self.db, self.timeout = db, busy_timeout_seconds

    def reading(self) -> AbstractContextManager[SqliteHistory]:
        return reading(self.db, self.timeout)

    def close(self) -> None:
        pass  # nothing kept


@contextmanager
def writing(db: Path, feeds: Iterable[Contract],
            busy_timeout_seconds: float) -> Iterator[SqliteRetryLog]:
    """The retry log of the existing database at `db`, with its `retries` table.

    A version-1 database has none: it is migrated here. A later one is left to the
    daemon's next start: rebuilding the fact table (version 4) takes a while, and a
    daemon of the older release may still be running on it. The daemon holds no long
    write lock, so the busy timeout is all the waiting needed.
    """
    with translated(_READ_HINT), closing(connection.connect(db, busy_timeout_seconds,
                                                    create=False)) as conn:
        if check_schema(conn) < schema.RETRIES_VERSION:
            schema.init_schema(conn, feeds)
        yield SqliteRetryLog(conn)


def migrating(db: Path, feeds: Iterable[Contract], busy_timeout_seconds: float,
              lock_file: Path,
              grant: str | None = None) -> Migration:
    """Create the database at `db`, or migrate it in place (the `migrate` command).

    Refused while a daemon holds `lock_file` on a database that is behind: that daemon
    is of an older release (this one migrates at its start) and could not load into the
    migrated tables; stop it first. SQLite has no roles: `grant` must be None.
    """
    if grant is not None:
        raise ValueError("a SQLite database has no roles to grant to")
    with translated(_WRITE_HINT), closing(connection.connect(db, busy_timeout_seconds)) as conn:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0]) or None
        if found != schema.SCHEMA_VERSION and lock.probe(lock_file).held:
            raise DatabaseUnavailable(
                f"a daemon is running on {db} (it holds {lock_file}) and the database is "
                f"at schema version {found}: it is of an older release, and could not load "
                "into the migrated tables",
                hint="stop that daemon first; a daemon of this release migrates the "
                "database at its own start")
        schema.init_schema(conn, feeds)
    return Migration(found, schema.SCHEMA_VERSION)


_WRITE_HINT = "check that the path is writable and is a SQLite database"
