"""The PostgreSQL retry log: the `retry` command's rows, one per failed file sent back,
and the `dismiss` command's, one per failed file removed.

Each write is a transaction of its own on a session to the existing, migrated warehouse;
whether a sidecar left behind was recorded by a retry, or a failed file is superseded,
is the history's question.
"""

from __future__ import annotations

from dataclasses import astuple, fields

from filedrop_etl.daemon.warehouse.api import Dismissal, Load, Retry
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt, transaction
from filedrop_etl.daemon.warehouse.postgresql.history import PostgresHistory
from filedrop_etl.daemon.warehouse.sql import q


class PostgresRetryLog:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record_retry(self, *, file_name: str, failed_as: str, sha256: str | None,
                     reason: str | None, sidecar: str | None, requested_by: str | None,
                     requested_at: str) -> int:
        with transaction(self.conn):
            row = self.conn.execute(stmt(
                f'INSERT INTO {self.conn.books.retries} ("file_name", "failed_as", "sha256", '
                '"reason", "sidecar", "requested_by", "requested_at") '
                'VALUES (%s, %s, %s, %s, %s, %s, %s::timestamptz) RETURNING "id"'),
                (file_name, failed_as, sha256, reason, sidecar, requested_by,
                 requested_at)).fetchone()
        assert row is not None
        return int(str(row[0]))

    def forget_retry(self, retry_id: int) -> None:
        with transaction(self.conn):
            self.conn.execute(stmt(f'DELETE FROM {self.conn.books.retries} WHERE "id" = %s'),
                              (retry_id,))

    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None:
        return PostgresHistory(self.conn).retry_of_sidecar(failed_as, sidecar)

    def superseding(self, feed: str, run_date: str, after: str) -> Load | None:
        return PostgresHistory(self.conn).superseding(feed, run_date, after)

    def record_dismissal(self, dismissal: Dismissal) -> int:
        names = [f.name for f in fields(Dismissal)]
        casts = {"run_date": "::date", "dismissed_at": "::timestamptz"}
        with transaction(self.conn):
            row = self.conn.execute(stmt(
                f"INSERT INTO {self.conn.books.dismissals} ({', '.join(map(q, names))}) VALUES "
                f"({', '.join('%s' + casts.get(n, '') for n in names)}) RETURNING \"id\""),
                astuple(dismissal)).fetchone()
        assert row is not None
        return int(str(row[0]))

    def forget_dismissal(self, dismissal_id: int) -> None:
        with transaction(self.conn):
            self.conn.execute(stmt(f'DELETE FROM {self.conn.books.dismissals} WHERE "id" = %s'),
                              (dismissal_id,))

    def close(self) -> None:
        self.conn.close()
