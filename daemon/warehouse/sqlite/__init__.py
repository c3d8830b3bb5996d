"""The embedded SQLite backend: one database file, one daemon, no server.

Exports `BACKEND`, the backend as a value (`api.Backend`): it takes any `db` setting
no other backend claims as a file's path (so `registry` asks it last), keeps its lock
beside the real file, and refuses a database inside a folder the daemon watches or
archives into. Its doors (`doors`) open the worker's warehouse, the read side, the
retry log and the migration; they and `sqlite3` are imported when first opened.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.config.contract import Column
from filedrop_etl.config.paths import shown
from filedrop_etl.daemon.warehouse.api import (
    Folders,
    History,
    KeptHistory,
    Migration,
    RetryLog,
    Warehouse,
)

__all__ = ["BACKEND", "SqliteBackend"]


class SqliteBackend:
    """SQLite, as the registry and the daemon's parts ask for it."""

    name = "sqlite"
    shared = False

    def accepts(self, db: str) -> bool:
        return True  # a path is whatever no other backend claims

    def read(self, db: str) -> str:
        # abspath, not resolve(): `..` is folded but a symlinked directory keeps its
        # name; made absolute at start-up, so that a later `chdir` cannot move it.
        return os.path.abspath(Path(db).expanduser())  # noqa: PTH100 (see above)

    def shown(self, db: str) -> str:
        return db

    def secrets(self, db: str) -> list[str]:
        return []

    def file(self, db: str) -> Path | None:
        return Path(db)

    def lock_file(self, settings: Settings) -> Path:
        # Beside the real file, symlinks resolved: two names of one database share one lock.
        real = Path(settings.db).resolve()
        return real.with_name(real.name + ".lock")

    def check_location(self, settings: Settings) -> None:
        # A database in a watched directory would be taken for a dropped file; in an
        # archive, its files would be counted and listed as archived (or failed) files
        # forever.
        db_dir = Path(settings.db).resolve().parent
        dirs = {"inbox": settings.inbox, "work": settings.work,
                "processed": settings.processed, "failed": settings.failed}
        for name, directory in dirs.items():
            if db_dir == directory.resolve():
                raise ConfigError(
                    f"the database {shown(settings, 'db')} is inside the {name} directory "
                    f"{shown(settings, name)}",
                    hint="keep the database outside the inbox, work, processed and failed "
                    "directories",
                )

    def column_type(self, column: Column) -> str:
        from filedrop_etl.daemon.warehouse.sqlite import types

        return types.column_type(column)

    def open_warehouse(self, settings: Settings, folders: Folders) -> Warehouse:
        from filedrop_etl.daemon.warehouse.sqlite import doors

        return doors.open_warehouse(Path(settings.db), settings.feeds,
                                    node=settings.node, folders=folders,
                                    busy_timeout_seconds=settings.busy_timeout_seconds)

    def reading(self, settings: Settings) -> AbstractContextManager[History]:
        from filedrop_etl.daemon.warehouse.sqlite import doors

        return doors.reading(Path(settings.db), settings.busy_timeout_seconds)

    def kept_reading(self, settings: Settings) -> KeptHistory:
        from filedrop_etl.daemon.warehouse.sqlite import doors

        return doors.KeptReading(Path(settings.db), settings.busy_timeout_seconds)

    def writing(self, settings: Settings) -> AbstractContextManager[RetryLog]:
        from filedrop_etl.daemon.warehouse.sqlite import doors

        return doors.writing(Path(settings.db), settings.feeds,
                             settings.busy_timeout_seconds)

    def migrate(self, settings: Settings, grant: str | None = None, *,
                reader: str | None = None) -> Migration:
        from filedrop_etl.daemon.warehouse.sqlite import doors

        return doors.migrating(Path(settings.db), settings.feeds,
                               settings.busy_timeout_seconds, settings.lock_file,
                               grant or reader)


BACKEND = SqliteBackend()
