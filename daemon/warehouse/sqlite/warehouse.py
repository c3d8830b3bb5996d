"""The SQLite backend's warehouse: the worker's role of the seam on one database file.

Each file's rows are staged in a private SQLite file (`staging`) attached read-only to
the daemon's connection; the checks count repeats there, then one transaction writes
the ledger row, the merge and the counts (`ledger`, `merge`). Every call runs inside
`faults.translated`, so SQLite's errors of the environment leave as the seam's faults;
its `file_identity` (`dbfile.DatabaseFile`) guards against a database file deleted or
replaced under the open connection. One daemon per file: nothing to share, so its
claims are `unshared.NoClaims`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon import clock, crashpoints
from filedrop_etl.daemon.warehouse.api import (
    Claims,
    FileIdentity,
    Load,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Recorded,
    Ticket,
)
from filedrop_etl.daemon.warehouse.sql import Tables
from filedrop_etl.daemon.warehouse.sqlite import dbfile, ledger, merge, staging
from filedrop_etl.daemon.warehouse.sqlite.connection import attached_staging, transaction
from filedrop_etl.daemon.warehouse.sqlite.faults import translated
from filedrop_etl.daemon.warehouse.sqlite.history import SqliteHistory
from filedrop_etl.daemon.warehouse.unshared import NoClaims

__all__ = ["SqliteStaged", "SqliteWarehouse", "attached_staging"]


class SqliteStaged:
    """One file's rows in the attached staging database."""

    def __init__(self, conn: sqlite3.Connection, tables: Tables, rows: int,
                 node: str | None = None) -> None:
        self.conn, self.tables, self.rows, self.node = conn, tables, rows, node

    def surplus_rows(self, columns: tuple[str, ...], limit: int) -> tuple[int, list[str]]:
        with translated():
            return merge.surplus_rows(self.conn, self.tables, columns, limit)

    def commit(self, load: LoadRecord, plan: MergePlan) -> MergeCounts:
        with translated(), transaction(self.conn):
            load_id = ledger.record_load(self.conn, load, status="processed",
                                         finished_at=load.started_at, node=self.node)
            counts = merge.merge(self.conn, self.tables, plan, rows=self.rows,
                                 loaded_at=clock.utc_now(), load_id=load_id)
            crashpoints.reached("during_merge")
            ledger.update_load_counts(self.conn, load_id, counts,
                                      finished_at=clock.utc_now())
        return counts


class SqliteWarehouse:
    """The worker's warehouse on an open, migrated connection it now owns (every feed's
    tables made): each load names the contract it loads by."""

    def __init__(self, conn: sqlite3.Connection, db: Path, node: str | None = None) -> None:
        self.conn, self.db = conn, db
        # The ledger's `node` of each attempt: the one daemon's, from the `node` setting.
        self.node = node
        self.value_limit = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        self.where = str(db)
        self.file_identity: FileIdentity | None = dbfile.DatabaseFile(conn, db)
        self.claims: Claims = NoClaims()

    def recorded(self, claim: str) -> Recorded | None:
        with translated():
            return ledger.recorded_outcome(self.conn, claim)

    @contextmanager
    def staged(self, contract: Contract,
               batches: Iterable[pa.RecordBatch]) -> Iterator[SqliteStaged]:
        with staging.staged(self.db, batches, contract) as (path, rows), \
                translated(), \
                attached_staging(self.conn, path, contract.staging_table) as staged_rows:
            if staged_rows != rows:
                raise RuntimeError(f"staged {staged_rows} rows of the {rows} read")
            yield SqliteStaged(self.conn, Tables(contract), rows, self.node)

    def record_failure(self, load: LoadRecord, *, rows: int | None, error: str,
                       ticket: Ticket | None = None) -> None:
        with translated(), transaction(self.conn):
            # Failed before, by an attempt killed before its quarantine: one row.
            recorded = (ledger.recorded_outcome(self.conn, load.claim)
                        if load.claim else None)
            if recorded is None or recorded.status != "failed":
                ledger.record_load(self.conn, load, status="failed", node=self.node,
                                   finished_at=clock.utc_now(), rows=rows, error=error)

    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        with translated():
            return SqliteHistory(self.conn).last_success(now, feed)

    def answers_again(self) -> None:
        return None  # a file has no session to lose; `file_identity` follows the file

    def close(self) -> None:
        self.conn.close()

