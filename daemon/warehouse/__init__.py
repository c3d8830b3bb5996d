"""The warehouse seam's doors, for the daemon and the commands: each opens what the
backend of the `db` setting (`registry.backend_of`) offers, from the settings alone.

The roles and the values that cross the seam are `api`'s; which backend a setting
names is `registry`'s to say; nothing outside the backend packages imports a database
driver, and nothing outside this package names a backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from filedrop_etl.config import Settings
from filedrop_etl.daemon.warehouse.api import (
    Folders,
    History,
    KeptHistory,
    Migration,
    RetryLog,
    Warehouse,
)
from filedrop_etl.daemon.warehouse.registry import backend_of


def open_warehouse(settings: Settings, folders: Folders) -> Warehouse:
    """The worker's warehouse, migrated and this start recorded. Raises a
    `WarehouseFault` the caller may wait out, or `SchemaMismatch`, `AlreadyRunning` or
    `DatabaseUnavailable` to stop on."""
    return backend_of(settings).open_warehouse(settings, folders)


@contextmanager
def reading(settings: Settings) -> Iterator[History]:
    """The read-only history; never creates a database. Errors raised in the block leave
    it as `WarehouseFault`, `DatabaseUnavailable` or `SchemaMismatch`."""
    with backend_of(settings).reading(settings) as history:
        yield history


def kept_reading(settings: Settings) -> KeptHistory:
    """The read-only history for a long-lived reader (the status page): on PostgreSQL,
    one session kept across uses; close it when done. Its `reading` raises as
    `reading` does. Nothing is opened before the first use."""
    return backend_of(settings).kept_reading(settings)


@contextmanager
def writing(settings: Settings) -> Iterator[RetryLog]:
    """The retry log of the existing warehouse (with its `retries` table)."""
    with backend_of(settings).writing(settings) as log:
        yield log


def migrate(settings: Settings, grant: str | None = None, *,
            reader: str | None = None) -> Migration:
    """Create or migrate the warehouse's schema; on PostgreSQL, and given `grant`, grant
    that role what the daemons and `retry` need to run as it, and given `reader`, what
    an analyst needs to query the fact tables and `load_history`."""
    return backend_of(settings).migrate(settings, grant, reader=reader)
