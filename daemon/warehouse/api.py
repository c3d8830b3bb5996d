"""The warehouse seam: what the daemon needs of a database, by role, naming no driver.

Three roles, each a protocol a backend implements: `Warehouse` (the worker's: the
ledger's word on a claim, the staged rows, the one transaction of ledger row and merge,
a failure's row), `History` (read-only: the commands, the status page, the metric) and
`RetryLog` (the `retry` command's two writes). The values that cross the seam are the
frozen dataclasses below. Faults of the environment cross it as `WarehouseFault`s
(busy, full, unavailable, moved, claim lost): "wait and retry", each backend translating
its driver's errors into them at its own boundary; anything else is terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa

from config import EtlError
from config.contract import Contract

Status = Literal["processed", "failed"]


@dataclass(frozen=True)
class MergeCounts:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int = 0
    # A later drop of the same run date was committed first: this file's rows were not
    # merged (a shared warehouse only, where daemons race).
    superseded: bool = False


@dataclass(frozen=True)
class LoadRecord:
    """What the ledger knows about one attempt before its outcome."""

    file_name: str
    sha256: str | None
    bytes: int | None
    write_mode: str
    run_date: str | None
    started_at: str
    claim: str | None = None


@dataclass(frozen=True)
class Recorded:
    """The ledger's latest word on one claim of a file."""

    status: str
    counts: MergeCounts


@dataclass(frozen=True)
class Ticket:
    """A file claimed in a shared warehouse: its claim row, and the fence this process
    holds on it. `key` is the ledger's `claim` for the file: the row's, so it survives a
    take-over by another daemon (which bumps the fence, not the row)."""

    id: int
    fence: int
    # When the file was dropped (the inbox entry's ctime, ns): of two drops of one run
    # date, the later one's rows stand, whichever daemon commits last.
    dropped_ns: int = 0

    @property
    def key(self) -> str:
        return f"claim:{self.id}"


@dataclass(frozen=True)
class TakenOver:
    """A file this daemon took over from a dead one, now in this daemon's work directory."""

    path: Path
    from_node: str
    ticket: Ticket | None


@dataclass(frozen=True)
class MergePlan:
    """How to merge one file's staged rows. `keys_sorted` promises strictly ascending
    keys; `keys_counted` says the checks counted repeated keys and found none;
    `replace_date`: the file is the whole truth for that run date; `ticket`: the claim
    the commit must still hold (a shared warehouse), or None."""

    keys_sorted: bool
    keys_counted: bool
    replace_date: str | None = None
    ticket: Ticket | None = None
    # The file's run date, which every staged row and key carries (the checks saw to it).
    run_date: str | None = None


@dataclass(frozen=True)
class Load:
    """One `load_history` row: one attempt at one file."""

    id: int
    file_name: str
    status: str
    run_date: str | None
    rows: int | None
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    error: str | None
    write_mode: str
    sha256: str | None
    bytes: int | None
    started_at: str
    finished_at: str


@dataclass(frozen=True)
class Retry:
    """One `retries` row: a failed file an operator sent back to the inbox."""

    id: int
    file_name: str
    failed_as: str
    sha256: str | None
    reason: str | None
    requested_by: str | None
    requested_at: str


@dataclass(frozen=True)
class Tally:
    """Files with an attempt in a period, each counted once by its latest attempt there
    (`processed` or `failed`), and `loads`, the attempts themselves: a file failed,
    retried and failed again is one failed file and two loads."""

    processed: int
    failed: int
    loads: int


@dataclass(frozen=True)
class DayTotal:
    run_date: str
    rows: int
    customers: int
    amount: float


@dataclass(frozen=True)
class DayRows:
    run_date: str
    rows: int


@dataclass(frozen=True)
class CustomerTotal:
    customer_id: int
    transactions: int
    amount: float


@dataclass(frozen=True)
class LoadFilter:
    """Which loads `recent_loads` returns. `file` is a name, or a glob when it holds
    `*`, `?` or `[`; `since`/`until` bound the time the attempt finished (ISO-8601 UTC
    text as the ledger stores it: `since` inclusive, `until` exclusive)."""

    limit: int = 20
    file: str | None = None
    status: Status | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class Daemon:
    """A daemon (a node) that started on this warehouse: where it keeps its folders, as
    it resolved them at its last start, which of them that start created, and (on a
    shared warehouse) its last heartbeat and the file in its hands."""

    node: str
    pid: int
    started_at: str
    inbox: str
    work: str
    processed: str
    failed: str
    created: list[str]
    heartbeat_at: str | None = None
    file_in_hand: str | None = None
    alive: bool | None = None


# The folders a daemon records at its start, in this order.
FOLDER_NAMES = ("inbox", "work", "processed", "failed")


@dataclass(frozen=True)
class Folders:
    """The folders a daemon resolved at its start, and the names of those it made."""

    inbox: str
    work: str
    processed: str
    failed: str
    created: list[str] = field(default_factory=list)


# --- faults: the environment's, so the file waits for a retry -------------------------

class WarehouseFault(EtlError):
    """The database can not take the work now (busy, full, gone): wait and retry.

    `driver_error` names the driver's own error class when a backend translated one
    (the log's `error_type` keeps naming it, as it did before the seam)."""

    driver_error: str | None = None


class WarehouseBusy(WarehouseFault):
    """Another writer holds a lock, or a lock wait timed out."""


class WarehouseFull(WarehouseFault):
    """No room: the disk, or the memory the database needed."""


class WarehouseUnavailable(WarehouseFault):
    """The database can not be reached or written (a lost connection, a server shutting
    down, a read-only or missing file)."""


class DatabaseMoved(WarehouseFault):
    """The file at the database's path is no longer the one the daemon holds open (deleted,
    or replaced by another, a restored backup say): what is committed now would land in a
    file nobody reads, or beside a file it does not belong to."""


class ClaimLost(WarehouseFault):
    """Another daemon took this file over after this one's lease ran out: this daemon
    must not commit it, and lets go of it."""


# --- the roles -------------------------------------------------------------------------

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

    def take_over(self) -> list[TakenOver]:
        """The files of daemons whose leases ran out, moved into this one's work
        directory and claimed with a new fence."""
        ...

    def beat(self, file_in_hand: str | None) -> None:
        """Renew this daemon's leases and record its heartbeat (another thread)."""
        ...

    def close(self) -> None: ...


class Warehouse(Protocol):
    """The worker's warehouse: one per worker, used from its one thread."""

    contract: Contract
    claims: Claims
    # The longest value (or row) the backend stores, in bytes: larger is bad input.
    value_limit: int
    # Where it is, for log lines (never a password).
    where: str

    def recorded(self, claim: str) -> Recorded | None: ...

    def staged(self, batches: Iterable[pa.RecordBatch]) -> AbstractContextManager[Staged]: ...

    def record_failure(self, load: LoadRecord, *, rows: int | None, error: str,
                       ticket: Ticket | None = None) -> None:
        """The failed attempt's ledger row, once per claim, in a transaction of its own;
        `ClaimLost` if `ticket` is no longer this daemon's."""
        ...

    def check_in_place(self) -> None:
        """Raise a `WarehouseFault` if what was committed would land where nobody looks
        (SQLite: the file at the path is no longer the one open)."""
        ...

    def lost(self) -> str | None:
        """Asked every turn of the worker's loop: why nothing may be loaded now (the
        backend logs when that begins and ends), or None."""
        ...

    def last_success(self, now: str) -> Load | None:
        """The latest processed load finished by `now`, to seed the metric."""
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
    def tally(self, since: str | None = None) -> Tally: ...
    def last_success(self, now: str) -> Load | None: ...
    def loads_in_the_future(self, now: str) -> int: ...
    def day_totals(self, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]: ...
    def customer_totals(self, since: str | None = None,
                        until: str | None = None) -> list[CustomerTotal]: ...
    def has_rows(self) -> bool: ...
    def rows_per_day(self, days: int, latest: str) -> list[DayRows]: ...
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
