"""Working beside other daemons on one warehouse: the heartbeat, strays and the take-over.

A daemon sharing a PostgreSQL warehouse renews its claims' leases from a thread of its
own (`Heartbeat`, every third of `lease_seconds`), so that a long merge on the worker's
connection never lets them run out. The heartbeat never dies of an error: it logs it
(once per streak), keeps beating, and says what is wrong for /healthz; when the
warehouse answers again it says so to the worker, whose waiting files are then due at
once. Another daemon starting under this node's name ends the beats for good: this
daemon must claim nothing more. At start, files a daemon of another kind (SQLite) left
claimed in the inbox's work root are adopted (`adopt_strays`). The worker, at each
periodic rescan, takes over the files of daemons whose leases did run out
(`take_over`): under the dead daemon's work-directory lock (a live daemon holds its
own), the warehouse makes their claims this daemon's, with new fences, and the files
are moved here; they join the retry queue ahead of new drops. Only daemons of this
inbox are taken from: a node's directory is `<work root>/<node>`, computed here, never
a path read from the database as is; a failure on one file is that file's alone. With
an embedded warehouse there is no one to share with.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import files, routing
from filedrop_etl.daemon.errors import AlreadyRunning
from filedrop_etl.daemon.lock import DirectoryLock
from filedrop_etl.daemon.warehouse.api import (
    Claims,
    Lapsed,
    NodeTaken,
    TakenOver,
    Ticket,
    WarehouseFault,
)

log = structlog.get_logger("daemon.watcher")

_FAILED_HINT = ("this daemon's claims lapse unless the warehouse answers again within "
                "lease_seconds; another daemon then takes its files over, and this one can "
                "no longer commit them")


class Heartbeat:
    """Renews this daemon's leases and heartbeat until stopped; logs when it can not
    (once per streak of failures) and when it can again (then calls `restored`)."""

    def __init__(self, settings: Settings, claims: Claims,
                 in_hand: Callable[[], Path | None],
                 restored: Callable[[], None] = lambda: None) -> None:
        self.claims, self.in_hand, self.restored = claims, in_hand, restored
        self.interval = settings.lease_seconds / 3
        self._stop = threading.Event()
        # Set to beat at once: the file in hand changed, which `status` should show now.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etl-heartbeat", daemon=True)
        # Why the last beat failed (None while beating); read by other threads.
        self.failing: str | None = None
        # Set once another daemon took this node's name: no more claims, no more beats.
        self.node_taken: str | None = None

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """Beat now rather than at the next interval (from the worker; never waits)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def problems(self) -> list[str]:
        """What /healthz says of the heartbeat; safe from any thread."""
        if self.node_taken is not None:
            return [self.node_taken]
        problems = []
        if self._thread.ident is not None and not self._thread.is_alive() \
                and not self._stop.is_set():
            problems.append("the heartbeat thread is not running")
        failing = self.failing
        if failing is not None:
            problems.append(f"the heartbeat cannot renew this daemon's leases: {failing}")
        return problems

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._beat():
                return
            self._wake.wait(self.interval)
            self._wake.clear()

    def _beat(self) -> bool:
        """One beat; False once beating must end (the node is another daemon's)."""
        current = self.in_hand()
        try:
            self.claims.beat(files.display_name(current.name) if current else None)
        except NodeTaken as exc:
            self.node_taken = exc.message
            log.error("node_taken", reason=exc.message, hint=exc.hint)
            return False
        except Exception as exc:  # a beat's error is logged, never its end
            self._failed(exc)
            return True
        if self.failing is not None:
            # Said after it is so: a reader of the log then finds /healthz agreeing.
            self.failing = None
            log.info("heartbeat_restored")
            self.restored()
        return True

    def _failed(self, exc: Exception) -> None:
        fault = isinstance(exc, WarehouseFault)
        reason = exc.message if isinstance(exc, WarehouseFault) else f"{type(exc).__name__}: {exc}"
        first, self.failing = self.failing is None, reason
        if first:
            # Anything but the warehouse's own faults is unexpected (a table changed by
            # hand, a bug): its traceback is logged once, and the beats go on. Logged
            # after `failing` is set, so that /healthz already says so.
            log.error("heartbeat_failed", reason=reason, error_type=type(exc).__name__,
                      hint=_FAILED_HINT if fault else _FAILED_HINT + "; this is not a "
                      "fault of the server's reach: report this line",
                      exc_info=not fault)


def adopt_strays(settings: Settings) -> list[Path]:
    """Files left claimed in the inbox's work root itself, where a daemon with a warehouse
    of its own (SQLite) claims into by default (`.<inbox>.work`), moved into this daemon's
    work directory to be resumed with its own. None of those daemons runs now: it would
    hold the inbox alone, and this daemon shares it (`daemon.lock`)."""
    root = settings.work_root
    if root == settings.work:
        return []  # this daemon's own work directory: its files are resumed as they are
    adopted = []
    try:
        strays = files.in_claim_order(root)
    except OSError:
        return []
    for stray in strays:
        try:
            moved = files.move_unique(stray, settings.work)
        except FileNotFoundError:
            continue  # another daemon adopted it first
        except OSError as exc:
            log.error("work_unavailable", work=str(root), reason=exc.strerror or str(exc),
                      hint="make the work root writable; the file is adopted at the next "
                      "start")
            continue
        log.info("file_adopted", file=files.display_name(moved.name),
                 feed=routing.feed_name(moved.name, settings.feeds), work=str(root),
                 hint="claimed by a daemon of another warehouse (SQLite) on this inbox "
                 "before it stopped; loaded into this one")
        adopted.append(moved)
    return adopted


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
