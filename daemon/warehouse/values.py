"""The values that cross the warehouse seam: frozen dataclasses that name no driver.

What a load is (`LoadRecord`), how to merge it (`MergePlan`) and what it changed
(`MergeCounts`); the ledger's word on a claim (`Recorded`); a shared warehouse's claim
(`Ticket`, `TakenOver`); and what the read side answers (`Load`, `LoadBin`, `Retry`,
`Tally`, `DayTotal`, `DayRows`, `GroupTotal`, `Daemon`), as tables and JSON render
them alike. A load belongs to one feed (`LoadRecord.feed`, `Load.feed`); totals carry a
feed's own figures (`Figures`, in its `Totals` order), as no value here names a column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filedrop_etl.daemon.outcomes import Status as Status  # the ledger's word, re-exported


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

    @classmethod
    def of_upsert(cls, rows: int, changed: int, inserted: int, deleted: int = 0) -> MergeCounts:
        """The counts of an upsert of `rows` staged rows that the database says changed
        `changed` rows, `inserted` of them new; `RuntimeError` if those can not be true
        (`rows` is then not the staged row count, and the ledger would lie)."""
        updated = changed - inserted
        if not 0 <= updated <= rows - inserted:
            raise RuntimeError(f"merge of {rows} rows changed {changed}, of which {inserted} "
                               "were new: `rows` is not the staged row count")
        return cls(rows, inserted, updated, rows - inserted - updated, deleted)


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
    # The feed the file belongs to (`Contract.name`): the ledger's `feed`. By keyword, so
    # that a call giving the claim by position can not pass it as the feed.
    feed: str = field(kw_only=True)


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
class Lapsed:
    """A dead daemon's claims, now this daemon's (`Claims.take_lapsed`): each file's new
    ticket by its name as the claims record it, and every name recorded for that node."""

    tickets: dict[str, Ticket]
    recorded: frozenset[str]


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
    # The feed the file belongs to ('transactions' for every load before feeds).
    feed: str


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
class Dismissal:
    """One `dismissals` row as it is written: a failed file an operator removed from
    failed/ without a retry, who did, where and when, and why (`daemon.ops.dismissals`)."""

    file_name: str  # as dropped
    failed_as: str  # in failed/
    feed: str | None
    run_date: str | None
    sha256: str | None
    reason: str | None  # the failure's, from its sidecar
    sidecar: str | None  # the whole sidecar, JSON text
    superseded_by: int | None  # the load that stands for its feed's run date
    why: str
    dismissed_by: str | None
    node: str
    dismissed_at: str


@dataclass(frozen=True)
class Migration:
    """What `filedrop-etl migrate` did: the schema version it found (None: no schema
    yet), the version now, the role it granted the runtime privileges to, if any, and
    what is left for someone else to do (`notes`)."""

    found: int | None
    version: int
    granted: str | None = None
    notes: tuple[str, ...] = ()
    # The role granted what an analyst needs to query the warehouse (PostgreSQL).
    granted_read: str | None = None

    @property
    def migrated(self) -> bool:
        return self.found != self.version


def recording(candidates: Iterable[Sequence[Any]],
              sidecar: dict[str, object] | None) -> Retry | None:
    """Of `retries` rows, each followed by the sidecar it recorded (JSON text), the first
    that recorded exactly `sidecar`; None if none did. A row whose JSON does not parse
    (edited by hand) can not vouch for a sidecar."""
    if sidecar is None:
        return None
    for *row, recorded in candidates:
        try:
            if recorded is not None and json.loads(recorded) == sidecar:
                return Retry(*row)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class Tally:
    """Files with an attempt in a period, each counted once by its latest attempt there
    (`processed` or `failed`), and `loads`, the attempts themselves: a file failed,
    retried and failed again is one failed file and two loads."""

    processed: int
    failed: int
    loads: int


@dataclass(frozen=True)
class LoadBin:
    """The loads of one status that finished within one slice of time: what the status
    page's timeline draws, however many loads there were. `slice` numbers the slices of
    `seconds` from the Unix epoch (a slice begins at `slice * seconds`); durations are in
    seconds (negative ones, of a clock set back mid-load, count as 0); `file_name` is the
    file's when the slice holds one load of the status, else None."""

    slice: int
    status: str
    loads: int
    rows: int
    fastest: float
    slowest: float
    busy: float
    file_name: str | None


# One figure of a feed's totals: a distinct count (int), a sum of integers (int, or None
# where every value is null), of floats (float) or of decimals (the exact sum's text,
# `"1234.50"`, never a float).
Figure = int | float | str | None
# A feed's figures, each with its label, in `Totals` order: the distinct counts, then the
# sums (for transactions `(("customers", 12), ("amount", 5417.82))`).
Figures = tuple[tuple[str, Figure], ...]


@dataclass(frozen=True)
class DayTotal:
    """One run date of a feed's fact table: its rows and its figures."""

    run_date: str
    rows: int
    figures: Figures = ()

    def figure(self, label: str) -> Figure:
        """The figure of that label (`KeyError` if the feed has none)."""
        return dict(self.figures)[label]


@dataclass(frozen=True)
class DayRows:
    run_date: str
    rows: int


@dataclass(frozen=True)
class GroupTotal:
    """One value of a feed's `Totals.group_by` column (a customer, for transactions): its
    rows and its figures (the feed's, but for a distinct count of the group column itself,
    which would always be 1)."""

    group: str | int | None
    rows: int
    figures: Figures = ()

    def figure(self, label: str) -> Figure:
        """The figure of that label (`KeyError` if the feed has none)."""
        return dict(self.figures)[label]


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
    # Only the loads of this feed; None: every feed's.
    feed: str | None = None


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
    # Only while this start still holds that file's claim: not once another daemon took
    # it over, nor once it was loaded.
    file_in_hand: str | None = None
    alive: bool | None = None
    # On a shared warehouse: "alive" (its lease live), "stopped" (it let go cleanly) or
    # "lost" (its lease ran out without a clean stop), and since when it is lost.
    state: str | None = None
    lost_since: str | None = None


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
