"""The warehouse seam: the one place that chooses the backend for a `db` setting.

A path is the embedded SQLite backend (`sqlite/`); a `postgresql://` URL is PostgreSQL
(`postgresql/`, imported only then). The roles and the values that cross the seam are
`api`'s; nothing outside the backend packages imports a database driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config import Settings
from config.database import PostgresUrl
from daemon.warehouse.api import Folders, History, RetryLog, Warehouse


def open_warehouse(settings: Settings, folders: Folders) -> Warehouse:
    """The worker's warehouse, migrated and this start recorded. Raises a
    `WarehouseFault` the caller may wait out, or `SchemaMismatch` /
    `DatabaseUnavailable` to stop on."""
    if isinstance(settings.db, PostgresUrl):
        import daemon.warehouse.postgresql as postgresql

        return postgresql.open_warehouse(settings.db, settings.contract, settings=settings,
                                         folders=folders)
    import daemon.warehouse.sqlite as sqlite

    return sqlite.open_warehouse(settings.db, settings.contract, node=settings.node,
                                 busy_timeout_seconds=settings.busy_timeout_seconds,
                                 folders=folders)


@contextmanager
def reading(settings: Settings) -> Iterator[History]:
    """The read-only history; never creates a database. Errors raised in the block leave
    it as `WarehouseFault`, `DatabaseUnavailable` or `SchemaMismatch`."""
    if isinstance(settings.db, PostgresUrl):
        import daemon.warehouse.postgresql as postgresql

        with postgresql.reading(settings.db, settings.contract,
                                settings.busy_timeout_seconds) as history:
            yield history
        return
    import daemon.warehouse.sqlite as sqlite

    with sqlite.reading(settings.db, settings.contract,
                        settings.busy_timeout_seconds) as history:
        yield history


@contextmanager
def writing(settings: Settings) -> Iterator[RetryLog]:
    """The retry log of the existing warehouse, migrated to this schema."""
    if isinstance(settings.db, PostgresUrl):
        import daemon.warehouse.postgresql as postgresql

        with postgresql.writing(settings.db, settings.contract,
                                settings.busy_timeout_seconds) as log:
            yield log
        return
    import daemon.warehouse.sqlite as sqlite

    with sqlite.writing(settings.db, settings.contract,
                        settings.busy_timeout_seconds) as log:
        yield log
