"""The PostgreSQL retry log: the `retry` command's rows, one per failed file sent back.

Each write is a transaction of its own on a session to the existing, migrated warehouse;
whether a sidecar left behind was recorded by a retry is the history's question.
"""

from __future__ import annotations

from filedrop_etl.daemon.warehouse.api import Retry
from filedrop_etl.daemon.warehouse.postgresql.connection import Connection, stmt, transaction
from filedrop_etl.daemon.warehouse.postgresql.history import PostgresHistory


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

    def close(self) -> None:
        self.conn.close()
