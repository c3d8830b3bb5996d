"""The warehouse seam: what the daemon needs of a database, by role, naming no driver.

Three roles, each a protocol a backend implements: `Warehouse` (the worker's: the
ledger's word on a claim, the staged rows, the one transaction of ledger row and merge,
a failure's row), `History` (read-only: the commands, the status page, the metric; for
the page on one kept session, `KeptHistory`) and `RetryLog` (the `retry` command's two
writes). The values that cross the seam are the
frozen dataclasses of `values`; faults of the environment cross it as the
`WarehouseFault`s of `faults` (busy, full, unavailable, moved, claim lost): "wait and
retry". Both are re-exported here, so that a user of the seam imports from one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.faults import (
    ClaimLost,
    DatabaseMoved,
    NodeTaken,
    WarehouseBusy,
    WarehouseFault,
    WarehouseFull,
    WarehouseUnavailable,
)
from filedrop_etl.daemon.warehouse.values import (
    FOLDER_NAMES,
    CustomerTotal,
    Daemon,
    DayRows,
    DayTotal,
    Folders,
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
    "ClaimLost",
    "Claims",
    "CustomerTotal",
    "Daemon",
    "DatabaseMoved",
    "DayRows",
    "DayTotal",
    "Folders",
    "History",
    "KeptHistory",
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



class Staged(Protocol):
    """One file's rows, staged in the warehouse and not yet merged."""

    @property
    def rows(self) -> int: ...

    def surplus_rows(self, column: str, limit: int) -> tuple[int, list[str]]:
        """Rows beyond the first for each repeated non-null value of `column`, and up to
        `limit` of those values (as text)."""
        ...

    def commit(self, load: LoadRecord, plan: MergePlan) -> MergeCounts:
        """In one transaction: the ledger row, the merge, the counts; then commit."""
        ...


class Claims(Protocol):
    """Who holds which claimed file, where several daemons share the work.

    A daemon moves a file from the inbox into its own work directory (the rename decides
    between daemons racing for it), then records the claim: a row with this process's
    owner, a fence and a lease on the database's clock, renewed by `beat`. A daemon whose
    lease ran out can not commit (the commit checks the fence); another takes its files
    over (`take_over`: the fence is bumped in the same statement). An embedded warehouse
    has one daemon: its claims record nothing and hand out no tickets.
    """

    def claimed(self, path: Path, dropped_ns: int) -> Ticket | None:
        """Record (or take back, after a restart) the claim of a file in this daemon's
        work directory, dropped at `dropped_ns` (its inbox entry's ctime)."""
        ...

    def released(self, ticket: Ticket) -> None:
        """Forget a claim whose file has left the work directory (an outcome)."""
        ...

    def renew(self, ticket: Ticket) -> bool:
        """Extend the lease of a claim this daemon still holds (a load renews its own
        while it stages, whatever the heartbeat does); False if it is no longer held."""
        ...

    def take_over(self) -> list[TakenOver]:
        """The files of daemons whose leases ran out, moved into this one's work
        directory and claimed with a new fence."""
        ...

    def beat(self, file_in_hand: str | None) -> None:
        """Renew this daemon's leases and record its heartbeat (another thread);
        `NodeTaken` if another daemon started under this one's node name meanwhile."""
        ...

    def close(self) -> None: ...


class Warehouse(Protocol):
    """The worker's warehouse: one per worker, used from its one thread.

    Opened for a contract (its tables made or migrated, its ledger); each load passes the
    contract it loads by to `staged`, and nothing reads one back from the warehouse.
    """

    claims: Claims
    # The longest value (or row) the backend stores, in bytes: larger is bad input.
    value_limit: int
    # Where it is, for log lines (never a password).
    where: str

    def recorded(self, claim: str) -> Recorded | None: ...

    def staged(self, contract: Contract,
               batches: Iterable[pa.RecordBatch]) -> AbstractContextManager[Staged]:
        """Stage `batches`, shaped by `contract`, whose tables the commit then writes."""
        ...

    def record_failure(self, load: LoadRecord, *, rows: int | None, error: str,
                       ticket: Ticket | None = None) -> None:
        """The failed attempt's ledger row, once per claim, in a transaction of its own;
        `ClaimLost` if `ticket` is no longer this daemon's."""
        ...

    def check_in_place(self) -> None:
        """Raise a `WarehouseFault` if what was committed would land where nobody looks
        (SQLite: the file at the path is no longer the one open)."""
        ...

    def watch(self) -> str | None:
        """Checked every turn of the worker's loop: why nothing may be loaded now (the
        backend logs when that begins and ends, after `lost` says so), or None."""
        ...

    @property
    def lost(self) -> str | None:
        """What `watch` last found, for /healthz from any thread: it changes before the
        line that says so is logged, so a reader of the log finds the probe agreeing."""
        ...

    def last_success(self, now: str) -> Load | None:
        """The latest processed load finished by `now`, to seed the metric."""
        ...

    def answers_again(self) -> None:
        """The warehouse answers again after it did not (the heartbeat says so): the
        worker's session may have died meanwhile, so its next use checks it first."""
        ...

    def close(self) -> None: ...


class History(Protocol):
    """The read-only history, for the commands, the page and the metric. Never writes."""

    def schema_version(self) -> int: ...
    def recent_loads(self, where: LoadFilter) -> list[Load]: ...
    def attempts(self, names: Sequence[str]) -> list[Load]: ...
    def retries(self, names: Sequence[str]) -> list[Retry]: ...
    def daemons(self) -> list[Daemon]: ...
    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None: ...
    def tally(self, since: str | None = None, until: str | None = None) -> Tally: ...
    def last_success(self, now: str) -> Load | None: ...
    def loads_in_the_future(self, now: str) -> int: ...
    def day_totals(self, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]: ...
    def customer_totals(self, since: str | None = None,
                        until: str | None = None) -> list[CustomerTotal]: ...
    def has_rows(self) -> bool: ...
    def rows_per_day(self, days: int, latest: str) -> list[DayRows]: ...

    def load_bins(self, since: str, until: str, seconds: int) -> list[LoadBin]:
        """The loads finished from `since` to `until` (both included), counted in the
        database by slice of `seconds` and status: as many values for 100,000 loads as
        for 100 (the status page's timeline and figures)."""
        ...

    def median_load(self, since: str, until: str) -> float | None:
        """The median duration in seconds of the loads finished from `since` to `until`
        (the mean of the middle two for an even count), or None if there were none."""
        ...

    def close(self) -> None: ...


class KeptHistory(Protocol):
    """The read-only history for a long-lived reader (the status page), on a session of
    its own that lasts across uses where the backend has sessions to spare: many viewers,
    one session. `reading` raises as `warehouse.reading` does."""

    def reading(self) -> AbstractContextManager[History]: ...

    def close(self) -> None: ...


class RetryLog(Protocol):
    """The `retry` command's writes: a retry row as a failed file is sent back, and
    whether a sidecar left behind was recorded by one."""

    def record_retry(self, *, file_name: str, failed_as: str, sha256: str | None,
                     reason: str | None, sidecar: str | None, requested_by: str | None,
                     requested_at: str) -> int: ...

    def forget_retry(self, retry_id: int) -> None:
        """Delete a retry row whose move into the inbox failed."""
        ...

    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None: ...

    def close(self) -> None: ...
