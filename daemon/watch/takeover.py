"""Taking over the files of dead daemons sharing the warehouse: when, what, and in what order.

The worker looks for daemons whose leases ran out (`Claims.lapsed`) at each periodic
rescan and, on a schedule of its own (`TakeOvers`: within a third of a lease of its end),
between files too, so that a long queue of its own never keeps a dead daemon's files
waiting (they held the oldest drops). `take_over` takes them: under the dead daemon's
work-directory lock (a live daemon holds its own), the warehouse makes their claims this
daemon's, with new fences, and the files are moved here. They go to the head of the
worker's retry queue, ahead of its own files and of new drops, in the order they were
dropped (`TakeOvers.first`). Only daemons of this inbox are taken from: a node's
directory is `<work root>/<node>`, computed here, never a path read from the database as
is; a failure on one file is that file's alone.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import files, routing
from filedrop_etl.daemon.errors import AlreadyRunning
from filedrop_etl.daemon.lock import DirectoryLock
from filedrop_etl.daemon.warehouse.api import (
    Claims,
    Lapsed,
    TakenOver,
    Ticket,
    WarehouseFault,
)

log = structlog.get_logger("daemon.watcher")
Queued = TypeVar("Queued")


class TakeOvers:
    """When the worker next looks for dead daemons' files, and which of its queued files
    it took over (by when each was dropped), to run those first."""

    def __init__(self, settings: Settings) -> None:
        # A dead daemon's files are looked for within a third of a lease of its end (the
        # heartbeat's own pace), or at each rescan if those come sooner.
        self.every = min(settings.rescan_seconds, settings.lease_seconds / 3)
        self.next_at = 0.0  # monotonic
        self._dropped: dict[Path, int] = {}

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def looked(self) -> None:
        """A look was taken (or tried) now: the next is due one interval on."""
        self.next_at = time.monotonic() + self.every

    def first(self, taken: list[TakenOver],
              queue: Mapping[Path, Queued]) -> dict[Path, Queued]:
        """`queue` (a path's place in it is its turn; the files just `taken` already in
        it) reordered: every taken-over file still queued, these and those taken before,
        first, in the order they were dropped; then the others as they were."""
        for file in taken:
            self._dropped[file.path] = file.ticket.dropped_ns if file.ticket else 0
        self._dropped = {p: ns for p, ns in self._dropped.items() if p in queue}
        ahead = sorted(self._dropped, key=lambda p: (self._dropped[p], p.name))
        return {**{p: queue[p] for p in ahead}, **queue}


def take_over(claims: Claims, work: Path, feeds: Feeds) -> list[TakenOver]:
    """The files of daemons whose leases ran out, now in this daemon's work directory
    `work`; none if the warehouse can not be asked now (the next rescan asks again).
    Each file's lines carry the feed its name belongs to in `feeds` (the daemon's)."""
    try:
        taken = _take_over(claims, work, feeds)
    except WarehouseFault as exc:
        log.warning("take_over_failed", reason=exc.message, hint="the next rescan tries again")
        return []
    except Exception as exc:  # never the worker's end: see below
        # Not the warehouse's reach: a table changed under the daemon, a bug. The worker
        # goes on loading its own files; the next rescan tries again.
        log.error("take_over_failed", reason=f"{type(exc).__name__}: {exc}",
                  hint="the next rescan tries again; report this line if it repeats",
                  exc_info=True)
        return []
    for file in taken:
        log.info("file_taken_over", file=files.display_name(file.path.name),
                 **_feed_of(file.path.name, feeds), from_node=file.from_node)
    return taken


def _feed_of(name: str, feeds: Feeds) -> dict[str, str]:
    """`feed` for a per-file line: the feed the name belongs to, "" for none."""
    return {"feed": routing.feed_name(name, feeds)}


def node_directory(root: Path, node: str, recorded_work: str) -> Path | None:
    """The work directory of `node` if it shares this daemon's work root: `<root>/<node>`,
    a real directory, and the one the node recorded at its start. None for a node of
    another inbox (or a row edited to point anywhere else)."""
    directory = root / node
    if directory.parent != root or node in ("", ".", "..") or recorded_work != str(directory):
        return None
    try:
        return directory if stat.S_ISDIR(directory.lstat().st_mode) else None
    except OSError:
        return None


def _take_over(claims: Claims, work: Path, feeds: Feeds) -> list[TakenOver]:
    taken: list[TakenOver] = []
    for node, recorded_work in claims.lapsed():
        directory = node_directory(work.parent, node, recorded_work)
        if directory is None:
            continue  # a daemon of another inbox: its own files are its own
        lock = DirectoryLock(directory, f"the work directory of node {node}", hint="")
        try:
            lock.acquire()
        except (AlreadyRunning, OSError):
            continue  # alive after all (its own lock), or being taken by another
        try:
            taken += _take_from(claims, node, directory, work, feeds)
        finally:
            lock.release()
    return taken


def _take_from(claims: Claims, node: str, directory: Path, work: Path,
               feeds: Feeds) -> list[TakenOver]:
    lapsed = claims.take_lapsed(node)
    tickets = dict(lapsed.tickets)
    taken = []
    for path in files.in_claim_order(directory):
        try:
            file = _take_file(claims, lapsed, tickets, node, path, work)
        except WarehouseFault:
            raise  # the warehouse's, not the file's: the next rescan tries again
        except Exception as exc:
            # One file's trouble is its own: the others are taken, this one is left
            # where it is for a later take-over (or its own daemon's restart).
            log.error("take_over_failed", file=files.display_name(path.name),
                      **_feed_of(path.name, feeds), from_node=node,
                      error_type=type(exc).__name__, reason=str(exc),
                      hint="the file is left in that node's work directory and tried "
                      "again at the next rescan; report this line if it repeats")
            continue
        if file is not None:
            taken.append(file)
    for gone in tickets.values():  # archived before its daemon could forget the claim
        claims.released(gone)
    return taken


def _take_file(claims: Claims, lapsed: Lapsed, tickets: dict[str, Ticket], node: str,
               path: Path, work: Path) -> TakenOver | None:
    # Claims name a file as the ledger and the log show it (undecodable bytes as \xNN).
    name = files.display_name(path.name)
    ticket = tickets.pop(name, None)
    if ticket is None and name not in lapsed.recorded:
        # Its daemon died before recording the claim.
        ticket = claims.claim_orphan(node, name, path.lstat().st_ctime_ns)
    if ticket is None:
        return None  # a live claim of another daemon's
    moved = files.move_unique(path, work)
    claims.moved(ticket, moved)
    return TakenOver(moved, node, ticket)
