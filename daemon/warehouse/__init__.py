"""The warehouse seam: the one place that chooses the backend for a `db` setting.

A path is the embedded SQLite backend (`sqlite/`); a `postgresql://` URL is PostgreSQL
(`postgresql/`, imported only then). `backend` makes the choice, once, for everything
the daemon and the commands open (and `migrate` runs); the roles and the values that
cross the seam are `api`'s; nothing outside the backend packages imports a database
driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial

from filedrop_etl.config import Settings
from filedrop_etl.config.database import PostgresUrl
from filedrop_etl.daemon.warehouse.api import (
    Folders,
    History,
    KeptHistory,
    Migration,
    RetryLog,
    Warehouse,
)


@dataclass(frozen=True)
class Backend:
    """One backend's doors, bound to the settings they were chosen for."""

    name: str
    open: Callable[[Folders], Warehouse]
    reading: Callable[[], AbstractContextManager[History]]
    writing: Callable[[], AbstractContextManager[RetryLog]]
    kept: Callable[[], KeptHistory]
    # Create or migrate the schema; PostgreSQL also grants a runtime role (the argument).
    migrate: Callable[[str | None], Migration]


def backend(settings: Settings) -> Backend:
    """The backend the `db` setting names: PostgreSQL for a URL, else SQLite."""
    timeout = settings.busy_timeout_seconds
    if isinstance(settings.db, PostgresUrl):
        import filedrop_etl.daemon.warehouse.postgresql as postgresql

        url = settings.db
        return Backend(
            "postgresql",
            lambda folders: postgresql.open_warehouse(url, settings.contract,
                                                      settings=settings, folders=folders),
            partial(postgresql.reading, url, settings.contract, timeout),
            partial(postgresql.writing, url, settings.contract, timeout),
            partial(postgresql.KeptReading, url, settings.contract, timeout),
            partial(postgresql.migrating, url, settings.contract, timeout))
    import filedrop_etl.daemon.warehouse.sqlite as sqlite

    db = settings.db
    return Backend(
        "sqlite",
        lambda folders: sqlite.open_warehouse(db, settings.contract, node=settings.node,
                                              busy_timeout_seconds=timeout, folders=folders),
        partial(sqlite.reading, db, settings.contract, timeout),
        partial(sqlite.writing, db, settings.contract, timeout),
        partial(sqlite.KeptReading, db, settings.contract, timeout),
        partial(sqlite.migrating, db, settings.contract, timeout, settings.lock_file))


def open_warehouse(settings: Settings, folders: Folders) -> Warehouse:
    """The worker's warehouse, migrated and this start recorded. Raises a
    `WarehouseFault` the caller may wait out, or `SchemaMismatch`, `AlreadyRunning` or
    `DatabaseUnavailable` to stop on."""
    return backend(settings).open(folders)


@contextmanager
def reading(settings: Settings) -> Iterator[History]:
    """The read-only history; never creates a database. Errors raised in the block leave
    it as `WarehouseFault`, `DatabaseUnavailable` or `SchemaMismatch`."""
    with backend(settings).reading() as history:
        yield history


def kept_reading(settings: Settings) -> KeptHistory:
    """The read-only history for a long-lived reader (the status page): on PostgreSQL,
    one session kept across uses; close it when done. Its `reading` raises as
    `reading` does. Nothing is opened before the first use."""
    return backend(settings).kept()


@contextmanager
def writing(settings: Settings) -> Iterator[RetryLog]:
    """The retry log of the existing warehouse (with its `retries` table)."""
    with backend(settings).writing() as log:
        yield log


def migrate(settings: Settings, grant: str | None = None) -> Migration:
    """Create or migrate the warehouse's schema; on PostgreSQL, and given `grant`, grant
    that role what the daemons and `retry` need to run as it."""
    return backend(settings).migrate(grant)

