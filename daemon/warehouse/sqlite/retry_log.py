"""The SQLite retry log: the `retry` command's rows, one per failed file sent back, and
the `dismiss` command's, one per failed file removed.

Each write is a transaction of its own on a write connection to the daemon's existing
database (never created here). Whether a sidecar left behind was recorded by a retry, or
a failed file is superseded, is the history's question, asked on the same connection.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, fields

from filedrop_etl.daemon.warehouse.api import Dismissal, Load, Retry
from filedrop_etl.daemon.warehouse.sql import DISMISSALS_TABLE, RETRIES_TABLE, q
from filedrop_etl.daemon.warehouse.sqlite import tables
from filedrop_etl.daemon.warehouse.sqlite.connection import transaction
from filedrop_etl.daemon.warehouse.sqlite.history import SqliteHistory


class SqliteRetryLog:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def record_retry(self, *, file_name: str, failed_as: str, sha256: str | None,
                     reason: str | None, sidecar: str | None, requested_by: str | None,
                     requested_at: str) -> int:
        with transaction(self.conn):
            cursor = self.conn.execute(
                f'INSERT INTO {q(RETRIES_TABLE)} ("file_name", "failed_as", "sha256", '
                '"reason", "sidecar", "requested_by", "requested_at") '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (file_name, failed_as, sha256, reason, sidecar, requested_by, requested_at))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def forget_retry(self, retry_id: int) -> None:
        with transaction(self.conn):
            self.conn.execute(f'DELETE FROM {q(RETRIES_TABLE)} WHERE "id" = ?', (retry_id,))

    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None:
        return SqliteHistory(self.conn).retry_of_sidecar(failed_as, sidecar)

    def superseding(self, feed: str, run_date: str, after: str) -> Load | None:
        return SqliteHistory(self.conn).superseding(feed, run_date, after)

    def record_dismissal(self, dismissal: Dismissal) -> int:
        names = ", ".join(q(f.name) for f in fields(Dismissal))
        with transaction(self.conn):
            # A database the daemon of this release has not started on yet lacks it.
            self.conn.execute(tables.create(q(DISMISSALS_TABLE), tables.DISMISSALS, False))
            cursor = self.conn.execute(
                f"INSERT INTO {q(DISMISSALS_TABLE)} ({names}) "
                f"VALUES ({', '.join('?' * len(fields(Dismissal)))})", astuple(dismissal))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def forget_dismissal(self, dismissal_id: int) -> None:
        with transaction(self.conn):
            self.conn.execute(f'DELETE FROM {q(DISMISSALS_TABLE)} WHERE "id" = ?',
                              (dismissal_id,))

    def close(self) -> None:
        self.conn.close()
