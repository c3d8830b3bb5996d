"""The warehouse's roles: what the worker, the read side and `retry` each need of it.

Each role a protocol a backend implements, opened by its doors (`api.Backend`):
`Warehouse` (the worker's: the ledger's word on a claim, the staged rows (`Staged`), the
one transaction of ledger row and merge, a failure's row; `Claims` on a shared
warehouse, `FileIdentity` for one kept in a file), `History` (read-only: the commands,
the status page, the metric; `KeptHistory` for the page on one kept session) and
`RetryLog` (the `retry` command's two writes). Users import them from `api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon.warehouse.values import (
    Daemon,
    DayRows,
    DayTotal,
    Dismissal,
    GroupTotal,
    Lapsed,
    Load,
    LoadBin,
    LoadFilter,
    LoadRecord,
    MergeCounts,
    MergePlan,
    Recorded,
    Retry,
    Tally,
    Ticket,
)


class Staged(Protocol):
    """One file's rows, staged in the warehouse and not yet merged."""

    @property
    def rows(self) -> int: ...

    def surplus_rows(self, columns: tuple[str, ...], limit: int) -> tuple[int, list[str]]:
        """Rows beyond the first for each repeated combination of values of `columns`
        (one column, or a key's) in which none is null, and up to `limit` of those
        combinations, smallest first, as text (a composite one as its values joined by
        `", "`: `"2026-03-01, 17"`)."""
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
    over: `watch.sharing` finds them (`lapsed`), takes the dead daemon's directory lock,
    asks which claims are now this daemon's, with which fences (`take_lapsed`: bumped in
    the same statement), moves the files and says where they went (`moved`). An embedded
    warehouse has one daemon: its claims record nothing and hand out no tickets
    (`unshared.NoClaims`).
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

    def lapsed(self) -> list[tuple[str, str]]:
        """The other daemons whose leases ran out: each one's node and the work directory
        it recorded at its start (as recorded: the caller checks it)."""
        ...

    def take_lapsed(self, node: str) -> Lapsed:
        """Under `node`'s work-directory lock: its lapsed claims made this daemon's, each
        fence bumped in the same statement."""
        ...

    def claim_orphan(self, node: str, name: str, dropped_ns: int) -> Ticket | None:
        """A file in `node`'s work directory its daemon died before recording: claimed
        for this daemon (None if another daemon recorded it meanwhile)."""
        ...

    def moved(self, ticket: Ticket, path: Path) -> None:
        """The taken-over file of `ticket` is now `path`, in this daemon's work directory."""
        ...

    def beat(self, file_in_hand: str | None) -> None:
        """Renew this daemon's leases and record its heartbeat (another thread);
        `NodeTaken` if another daemon started under this one's node name meanwhile."""
        ...

    def fleet(self) -> dict[str, int]:
        """How many daemons recorded on the warehouse are alive, lost (their lease ran
        out without a clean stop) and stopped; read by the heartbeat's thread."""
        ...

    def close(self) -> None: ...


class FileIdentity(Protocol):
    """A warehouse kept in one file, which a path names: the file there may be deleted
    or replaced under the open connection, and what is committed then lands where nobody
    looks. Offered by a file backend's warehouse only (`Warehouse.file_identity`)."""

    def check_file(self) -> str | None:
        """Checked every turn of the worker's loop: why nothing may be loaded now (the
        backend logs when that begins and ends, after `file_problem` says so), or None."""
        ...

    @property
    def file_problem(self) -> str | None:
        """What `check_file` last found, for /healthz from any thread: it changes before
        the line that says so is logged, so a reader of the log finds the probe agreeing."""
        ...

    def check_in_place(self) -> None:
        """Raise a `WarehouseFault` if the file at the path is no longer the one open."""
        ...


class Warehouse(Protocol):
    """The worker's warehouse: one per worker, used from its one thread.

    Opened for the settings' feeds (each one's tables made, migrated or evolved, the one
    ledger); each load passes the contract it loads by to `staged`, and the ledger row
    says which feed it was (`LoadRecord.feed`).
    """

    claims: Claims
    # A file backend's: the database file's identity; None for a server.
    file_identity: FileIdentity | None
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

    def last_success(self, now: str, feed: str | None = None) -> Load | None:
        """The latest processed load (of `feed`, or of any) finished by `now`, to seed
        the metric."""
        ...

    def answers_again(self) -> None:
        """The warehouse answers again after it did not (the heartbeat says so): the
        worker's session may have died meanwhile, so its next use checks it first."""
        ...

    def close(self) -> None: ...


class History(Protocol):
    """The read-only history, for the commands, the page and the metric. Never writes.

    The ledger is shared by every feed: its questions take `feed` (None: every feed's).
    What the data holds is a feed's own table: those questions take its contract, and
    answer for a feed whose table does not exist yet as for an empty one."""

    def schema_version(self) -> int: ...
    def recent_loads(self, where: LoadFilter) -> list[Load]: ...
    def attempts(self, names: Sequence[str]) -> list[Load]: ...
    def retries(self, names: Sequence[str]) -> list[Retry]: ...
    def daemons(self) -> list[Daemon]: ...
    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None: ...
    def tally(self, since: str | None = None, until: str | None = None,
              feed: str | None = None) -> Tally: ...
    def last_success(self, now: str, feed: str | None = None) -> Load | None: ...
    def loads_in_the_future(self, now: str) -> int: ...

    def superseding(self, feed: str, run_date: str, after: str) -> Load | None:
        """The processed load that stands for the feed's run date, if it came from a
        drop later than `after` (a failed attempt's start, as the ledger writes time):
        then a file that failed at `after` is superseded. On SQLite (one daemon takes
        drops in their order) a load begun after it; on PostgreSQL the load of the drop
        `drops` records, if dropped after it."""
        ...

    def day_totals(self, contract: Contract, since: str | None = None,
                   until: str | None = None) -> list[DayTotal]:
        """Per run date of the feed's fact table (`since` to `until`, both included, each
        optional), oldest first: its rows and its `Totals` figures. [] for a feed
        without a date column."""
        ...

    def group_totals(self, contract: Contract, since: str | None = None,
                     until: str | None = None) -> list[GroupTotal]:
        """Per value of the feed's `Totals.group_by` column, over the run dates `since` to
        `until`: its rows and figures, largest first by the first sum (by rows where the
        feed sums nothing), then by the value. [] when `group_by` is None."""
        ...

    def has_rows(self, contract: Contract) -> bool: ...

    def rows_per_day(self, contract: Contract, days: int, latest: str) -> list[DayRows]:
        """The feed's rows per run date over the `days` calendar days up to the newest
        run date not after `latest`; [] for a feed without a date column."""
        ...

    def load_bins(self, since: str, until: str, seconds: int,
                  feed: str | None = None) -> list[LoadBin]:
        """The loads finished from `since` to `until` (both included), counted in the
        database by slice of `seconds` and status: as many values for 100,000 loads as
        for 100 (the status page's timeline and figures)."""
        ...

    def median_load(self, since: str, until: str, feed: str | None = None) -> float | None:
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
    """The `retry` and `dismiss` commands' writes: a retry row as a failed file is sent
    back, a dismissal row as one is removed; whether a sidecar left behind was recorded
    by a retry, and whether a failed file is superseded (`History.superseding`)."""

    def record_retry(self, *, file_name: str, failed_as: str, sha256: str | None,
                     reason: str | None, sidecar: str | None, requested_by: str | None,
                     requested_at: str) -> int: ...

    def forget_retry(self, retry_id: int) -> None:
        """Delete a retry row whose move into the inbox failed."""
        ...

    def retry_of_sidecar(self, failed_as: str,
                         sidecar: dict[str, object] | None) -> Retry | None: ...

    def superseding(self, feed: str, run_date: str, after: str) -> Load | None: ...

    def record_dismissal(self, dismissal: Dismissal) -> int:
        """The dismissal's row, committed; its id."""
        ...

    def forget_dismissal(self, dismissal_id: int) -> None:
        """Delete a dismissal row whose file could not be removed."""
        ...

    def close(self) -> None: ...
