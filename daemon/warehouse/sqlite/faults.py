"""SQLite's errors, translated at the backend's boundary into the seam's faults.

One table: SQLite primary result codes that describe the environment, not the file or
our SQL. BUSY 5 and LOCKED 6 are another writer; NOMEM 7 and FULL 13 no room; READONLY
8, IOERR 10 and CANTOPEN 14 a file that can not be written or reached. Each becomes the
`WarehouseFault` that says "wait and retry", with SQLite's words as its message and the
driver's error as its cause; any other error passes through as it is (terminal).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager

from filedrop_etl.daemon.warehouse.api import (
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
    WarehouseUnavailable,
)
from filedrop_etl.daemon.warehouse.faults import translating

_FAULTS: dict[int, type[WarehouseFault]] = {
    5: WarehouseBusy, 6: WarehouseBusy,
    7: WarehouseFull, 13: WarehouseFull,
    8: WarehouseUnavailable, 10: WarehouseUnavailable, 14: WarehouseUnavailable,
}
_IOERR_SHMSIZE = 4874
HINTS: dict[type[WarehouseFault], str] = {
    WarehouseBusy: "another process holds a write lock on the database (a backup, a "
    "migration, an sqlite3 shell?)",
    WarehouseFull: "free space on the database's filesystem, or memory",
    WarehouseUnavailable: "make the database file and its directory readable and writable",
}


def fault_of(exc: BaseException) -> WarehouseFault | None:
    """The seam's fault for a SQLite error of the environment; None for any other."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return None
    # IOERR_SHMSIZE: the -shm file of a database closed cleanly can not be created, which
    # is a full disk, not a broken one.
    kind = WarehouseFull if code == _IOERR_SHMSIZE else _FAULTS.get(code & 0xFF)
    if kind is None:
        return None
    fault = kind(str(exc), hint=HINTS[kind])
    fault.driver_error = type(exc).__name__
    return fault


def translated(otherwise: str | None = None) -> AbstractContextManager[None]:
    """Run a block with this backend's table applied (see `warehouse.faults.translating`)."""
    return translating(sqlite3.Error, fault_of, otherwise=otherwise)
