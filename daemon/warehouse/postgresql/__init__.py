"""The PostgreSQL backend: one warehouse on a server, shared by several daemons.

Exports `BACKEND`, the backend as a value (`api.Backend`): it accepts a libpq URL
(`postgresql://` or `postgres://`; read, checked and shown without secrets by `url`),
carries the settings' network and statement timeouts on it, and keeps each node's lock
beside that node's work directory. Its doors (`doors`) open the worker's warehouse, the
read side, the retry log and the migration; they and psycopg are imported when first
opened, so that a daemon on SQLite never pays for psycopg's import.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import Column
from filedrop_etl.daemon.warehouse.api import (
    Folders,
    History,
    KeptHistory,
    Migration,
    RetryLog,
    Warehouse,
)
from filedrop_etl.daemon.warehouse.postgresql.url import (
    PostgresUrl,
    is_postgres_url,
    redact,
    secrets,
)

__all__ = ["BACKEND", "PostgresBackend", "url_of"]


def url_of(settings: Settings) -> PostgresUrl:
    """The server's URL with the settings' timeouts and bookkeeping schema: every session
    on the server is bounded alike, and finds the daemon's tables alike, whoever opens it."""
    return PostgresUrl(settings.db, network_timeout_seconds=settings.network_timeout_seconds,
                       statement_timeout_seconds=settings.statement_timeout_seconds,
                       bookkeeping_schema=settings.bookkeeping_schema)


class PostgresBackend:
    """PostgreSQL, as the registry and the daemon's parts ask for it."""

    name = "postgresql"
    shared = True

    def accepts(self, db: str) -> bool:
        return is_postgres_url(db)

    def read(self, db: str) -> str:
        return PostgresUrl(db).url  # ValueError: what libpq would misread or quote

    def shown(self, db: str) -> str:
        return redact(db)

    def secrets(self, db: str) -> list[str]:
        return secrets(db)

    def file(self, db: str) -> Path | None:
        return None

    def lock_file(self, settings: Settings) -> Path:
        # One daemon per node: beside the node's work directory.
        return settings.work.with_name(settings.work.name + ".lock")

    def check_location(self, settings: Settings) -> None:
        return None  # a server's database is in no folder of the daemon's

    def column_type(self, column: Column) -> str:
        from filedrop_etl.daemon.warehouse.postgresql import types

        return types.declared_type(column)

    def open_warehouse(self, settings: Settings, folders: Folders) -> Warehouse:
        from filedrop_etl.daemon.warehouse.postgresql import doors

        return doors.open_warehouse(url_of(settings), settings.feeds.all, settings=settings,
                                    folders=folders)

    def reading(self, settings: Settings) -> AbstractContextManager[History]:
        from filedrop_etl.daemon.warehouse.postgresql import doors

        return doors.reading(url_of(settings), settings.busy_timeout_seconds)

    def kept_reading(self, settings: Settings) -> KeptHistory:
        from filedrop_etl.daemon.warehouse.postgresql import doors

        return doors.KeptReading(url_of(settings), settings.busy_timeout_seconds)

    def writing(self, settings: Settings) -> AbstractContextManager[RetryLog]:
        from filedrop_etl.daemon.warehouse.postgresql import doors

        return doors.writing(url_of(settings), settings.feeds.all,
                             settings.busy_timeout_seconds)

    def migrate(self, settings: Settings, grant: str | None = None, *,
                reader: str | None = None) -> Migration:
        from filedrop_etl.daemon.warehouse.postgresql import doors

        return doors.migrating(url_of(settings), settings.feeds.all,
                               settings.busy_timeout_seconds, grant, reader)


BACKEND = PostgresBackend()
