"""The warehouse seam: what the daemon needs of a database, by role, naming no driver.

A backend is a value (`Backend`): each backend package exports one, and `registry` picks
the first that accepts the `db` setting; its doors open the roles (`roles`, re-exported
here) with the same arguments whichever backend it is. Three roles, each a protocol a
backend implements: `Warehouse` (the worker's: the ledger's word on a claim, the staged
rows, the one transaction of ledger row and merge, a failure's row), `History`
(read-only: the commands, the status page, the metric; for the page on one kept
session, `KeptHistory`) and `RetryLog` (the `retry` command's two writes). The values
that cross the seam are the frozen dataclasses of `values`; faults of the environment
cross it as the `WarehouseFault`s of `faults` (busy, full, unavailable, moved, claim
lost): "wait and retry". Both are re-exported here, so that a user of the seam imports
from one place. A warehouse kept in a file may also lose it under the open connection:
only such a backend's warehouse offers `FileIdentity`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from filedrop_etl.config.contract import Column
from filedrop_etl.config.settings import Settings
from filedrop_etl.daemon.warehouse.faults import (
    ClaimLost,
    DatabaseMoved,
    NodeTaken,
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
    WarehouseUnavailable,
)
from filedrop_etl.daemon.warehouse.roles import (
    Claims,
    FileIdentity,
    History,
    KeptHistory,
    RetryLog,
    Staged,
    Warehouse,
)
from filedrop_etl.daemon.warehouse.values import (
    FOLDER_NAMES,
    Daemon,
    DayRows,
    DayTotal,
    Dismissal,
    Figure,
    Figures,
    Folders,
    GroupTotal,
    Lapsed,
    Load,
    LoadBin,
    LoadFilter,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Migration,
    Recorded,
    Retry,
    Status,
    TakenOver,
    Tally,
    Ticket,
)

__all__ = [
    "FOLDER_NAMES",
    "Backend",
    "ClaimLost",
    "Claims",
    "Daemon",
    "DatabaseMoved",
    "DayRows",
    "DayTotal",
    "Dismissal",
    "Figure",
    "Figures",
    "FileIdentity",
    "Folders",
    "GroupTotal",
    "History",
    "KeptHistory",
    "Lapsed",
    "Load",
    "LoadBin",
    "LoadFilter",
    "LoadRecord",
    "MergeCounts",
    "MergePlan",
    "Migration",
    "NodeTaken",
    "Recorded",
    "Retry",
    "RetryLog",
    "Staged",
    "Status",
    "TakenOver",
    "Tally",
    "Ticket",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseFault",
    "WarehouseFull",
    "WarehouseUnavailable",
]



class Backend(Protocol):
    """A warehouse backend as a value: what it accepts as the `db` setting, what follows
    from that setting (`registry.place` asks), and its doors, each opened from the
    settings alone. A backend package exports one, as `BACKEND`; importing the package
    costs no driver: a door imports it when first opened."""

    @property
    def name(self) -> str: ...

    @property
    def shared(self) -> bool:
        """Whether several daemons (nodes) may share one warehouse of this backend."""
        ...

    def accepts(self, db: str) -> bool:
        """Whether `db` (the setting as given) names a warehouse of this backend."""
        ...

    def read(self, db: str) -> str:
        """`db` as the settings keep it (a path made absolute, a URL's scheme in small
        letters); `ValueError` saying what is wrong, quoting none of it."""
        ...

    def shown(self, db: str) -> str:
        """`db` as a log line or a message may show it: never a secret, even refused."""
        ...

    def secrets(self, db: str) -> list[str]:
        """The names of the secrets `db` holds (`password`, ...), never their values."""
        ...

    def file(self, db: str) -> Path | None:
        """The database file `db` names; None for a server."""
        ...

    def lock_file(self, settings: Settings) -> Path:
        """The single-instance lock (`daemon.lock`) of a daemon with these settings."""
        ...

    def check_location(self, settings: Settings) -> None:
        """`ConfigError` if the warehouse's place clashes with the folders' (a database
        file in a watched directory would be taken for a dropped file)."""
        ...

    def column_type(self, column: Column) -> str:
        """This backend's column type for a contract column (its kind, and a decimal's
        precision and scale)."""
        ...

    def open_warehouse(self, settings: Settings, folders: Folders) -> Warehouse:
        """The worker's warehouse, migrated and this start recorded. Raises a
        `WarehouseFault` the caller may wait out, or `SchemaMismatch`, `AlreadyRunning`
        or `DatabaseUnavailable` to stop on."""
        ...

    def reading(self, settings: Settings) -> AbstractContextManager[History]:
        """The read-only history; never creates a database."""
        ...

    def kept_reading(self, settings: Settings) -> KeptHistory: ...

    def writing(self, settings: Settings) -> AbstractContextManager[RetryLog]:
        """The retry log of the existing warehouse (with its `retries` table)."""
        ...

    def migrate(self, settings: Settings, grant: str | None = None, *,
                reader: str | None = None) -> Migration:
        """Create or migrate the schema; and given `grant`, grant that role what the
        daemons and `retry` need, given `reader`, what an analyst needs to query it (a
        backend without roles refuses either: `ValueError`)."""
        ...
