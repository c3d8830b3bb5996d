"""The inbox as the worker sees it: which entries exist and which are complete.

Events and listings only nominate names; this module decides when a file may be taken.
A file is complete when it arrived by rename, when it was closed after writing with a
valid Parquet footer, or when its size and mtime have not changed for the settle time,
as the daemon itself observed it on its own monotonic clock (never by comparing the
mtime with the daemon's clock: a producer's or an NFS server's clock that lags would make
a file still being written look long finished); a file that the events say its
writer still holds open (or that a listing found, so that no event said whether one
does), and that has no footer yet, waits ten settle times instead.
Complete is not the same as valid: a complete file without a footer is handed over all
the same, and fails as bad input rather than being waited on forever. Hidden and
temporary names are ignored; entries that are neither regular files nor symlinks are
skipped with one warning each; under `unmatched = "leave"`, a file whose name matches no
feed is left where it is, logged once (`file_unmatched`) for as long as it stays, and
looked at again only if renamed or dropped anew; a candidate that disappears before its
claim is logged as claimed elsewhere when another daemon on a shared inbox took it
(`daemon.whereabouts`), else as vanished.
"""

from __future__ import annotations

import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from filedrop_etl.config.file_names import Feeds
from filedrop_etl.daemon import files, framing, routing
from filedrop_etl.daemon.whereabouts import Identity, Whereabouts, identity

log = structlog.get_logger("daemon.inbox")

Hint = Literal["created", "modified", "moved", "closed"]
# A file still open for writing (by inotify's account, or not known to be closed) and
# without a Parquet footer gets this many settle periods of quiet before it is taken and,
# being incomplete, fails.
STALLED_WRITER_SETTLES = 10
FoundBy = Literal["event", "sweep", "rescan"]


@dataclass
class Candidate:
    path: Path
    found_by: FoundBy
    size: int
    mtime_ns: int
    stable_since: float
    # When it was dropped, as the filesystem recorded it: a rename into the inbox, or the
    # last write of a file written in place, each sets the inode's ctime.
    ctime_ns: int = 0
    complete: bool = False
    # Created or modified by an event and not closed since: a writer still holds it open.
    # None when no event has said either way (found by a listing): it may be.
    writing: bool | None = False
    # Its device, inode, size and mtime as last seen (`whereabouts.identity`): a file
    # another daemon claimed is found by them.
    seen: Identity | None = None
    # The feed its name belongs to ("" for none) and the run date it names (ISO; "" if
    # it names none), which place it in the load order.
    feed: str = ""
    run_date: str = ""

    @property
    def day(self) -> tuple[str, str]:
        """The feed and run date its rows are: drops of one day of one feed are applied
        in the order they were dropped. A name of no feed or date is a day of its own."""
        if self.run_date:
            return self.feed, self.run_date
        return "", routing.redrop_of(self.path.name)[0]

    @property
    def order(self) -> tuple[str, str, str, int, int, str]:
        """Where it stands in the order files are loaded in: by run date (whatever order
        a feed's date format writes dates in), then by feed and name, but a day dropped
        under several names (`D`, `D~2`, `D~10`) in the order of its drops, so that the
        later drop is applied last and wins; drops of equal time (a filesystem with coarse
        timestamps) by their `~N` as a number. A name naming no run date sorts by name."""
        first, suffix = routing.redrop_of(self.path.name)
        return self.run_date, self.feed, first, self.ctime_ns, suffix, self.path.name


class Inbox:
    """Tracks candidate files in one directory; not thread-safe: the worker owns it."""

    def __init__(self, directory: Path, settle_seconds: float, *, feeds: Feeds,
                 clock: Callable[[], float] = time.monotonic,
                 whereabouts: Whereabouts | None = None) -> None:
        self.directory = directory
        # The feeds whose files it takes: a name of none waits here or is taken to fail.
        self.feeds = feeds
        self.settle_seconds = settle_seconds
        self.clock = clock
        # Where other daemons sharing the inbox put the files they claim; None if none do.
        self.whereabouts = whereabouts
        self.candidates: dict[str, Candidate] = {}
        self._skipped: set[str] = set()
        # Files left in the inbox as matching no feed (`unmatched = "leave"`), each with
        # the device and inode it was logged for: logged once while it stays.
        self._unmatched: dict[str, tuple[int, int]] = {}
        # Detected files gone before their claim, for the daemon's closing tally: deleted,
        # or claimed by another daemon sharing the inbox.
        self.vanished = 0
        self.claimed_elsewhere = 0
        # The same by feed and outcome, for the metrics.
        self.gone: Counter[tuple[str, str]] = Counter()

    def note(self, path: Path, hint: Hint | None, found_by: FoundBy,
             now: float | None = None) -> Candidate | None:
        """Record what an event or a listing says of `path` (at `now`, by default the
        clock's); return it if newly found."""
        name = path.name
        if path.parent != self.directory or files.is_ignored(name):
            return None
        candidate = self.candidates.get(name)
        try:
            st = path.lstat()
        except OSError as exc:  # gone, or its directory unreadable: nothing to take
            self._forget(name, vanished=isinstance(exc, FileNotFoundError))
            return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            self.candidates.pop(name, None)
            if name not in self._skipped:
                self._skipped.add(name)
                log.warning("inbox_entry_skipped", file=files.display_name(name),
                            reason="not a regular file; only files are loaded",
                            hint="remove it from the inbox")
            return None
        if routing.left_unmatched(name, self.feeds):
            self._leave(name, st)
            return None
        new = candidate is None
        now = self.clock() if now is None else now
        if candidate is None:
            feed, run_date = self._day_of(name)
            candidate = Candidate(path, found_by, st.st_size, st.st_mtime_ns, now,
                                  st.st_ctime_ns, feed=feed, run_date=run_date)
            self.candidates[name] = candidate
        else:
            self._observe(candidate, st, now)
        candidate.seen = identity(st)
        if new and hint is None:
            # Found by a listing (at start-up, before the watch existed, or after an
            # overflow): whether a writer holds it open is unknown.
            candidate.writing = None
        if hint in ("created", "modified"):
            candidate.writing = True
        elif hint == "closed":
            candidate.writing = False
        # A symlink is never read, so there is nothing to wait for: it goes to failed/.
        if hint == "moved" or stat.S_ISLNK(st.st_mode) or (
            hint == "closed" and framing.has_parquet_footer(path)
        ):
            candidate.complete = True
        return candidate if new else None

    def _day_of(self, name: str) -> tuple[str, str]:
        """The feed (or "") and the run date (or "") a name gives its candidate."""
        contract = self.feeds.for_file(name)
        if contract is None:
            return "", ""
        try:
            return contract.name, contract.run_date_of(name) or ""
        except ValueError:  # not a calendar date: it fails at its name
            return contract.name, ""

    def _leave(self, name: str, st: os.stat_result) -> None:
        """A file of no feed, left in the inbox: logged the first time this file (by its
        inode) is seen under this name; never a candidate, so never claimed."""
        inode = (st.st_dev, st.st_ino)
        if self._unmatched.get(name) == inode:
            return
        self._unmatched[name] = inode
        nearest = routing.nearest_feed(name, self.feeds)
        log.info("file_unmatched", file=files.display_name(name), feed="",
                 patterns=list(self.feeds.examples),
                 nearest=nearest.file_name_example if nearest else None,
                 hint="the file stays in the inbox untouched (unmatched = \"leave\"); "
                 "rename it to a feed's pattern, or declare a feed for it, to load it")

    @property
    def left(self) -> int:
        """Files left in the inbox as matching no feed, as last listed."""
        return len(self._unmatched)

    def _observe(self, candidate: Candidate, st: os.stat_result, now: float) -> None:
        candidate.seen = identity(st)
        if (st.st_size, st.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
            candidate.size, candidate.mtime_ns = st.st_size, st.st_mtime_ns
            candidate.ctime_ns = st.st_ctime_ns  # written again: dropped later than it was
            candidate.stable_since = now
            candidate.complete = False

    def scan(self, found_by: FoundBy) -> list[Candidate]:
        """List the directory; forget vanished names and return the newly found ones in
        the order they are loaded in (`Candidate.order`), so that the log reads the same
        way. Files one listing finds are seen at one moment: they settle together."""
        found = []
        present = set()
        now = self.clock()
        try:
            entries = os.scandir(self.directory)
        except OSError as exc:
            # A deleted, unmounted or unreadable inbox must not end the daemon: say so and
            # look again at the next rescan.
            log.error("inbox_unavailable", inbox=str(self.directory),
                      reason=exc.strerror or str(exc),
                      hint="restore the inbox directory and its permissions; the daemon "
                      "rescans it periodically")
            return []
        with entries:
            for entry in entries:
                present.add(entry.name)
                candidate = self.note(Path(entry.path), None, found_by, now)
                if candidate is not None:
                    found.append(candidate)
        for name in set(self.candidates) - present:
            self._forget(name, vanished=True)
        self._skipped &= present
        for name in set(self._unmatched) - present:
            del self._unmatched[name]  # gone (or renamed): dropped again, it is logged again
        return sorted(found, key=lambda candidate: candidate.order)

    def due(self) -> tuple[list[Path], float | None]:
        """Complete files in load order (`Candidate.order`), and seconds until the next
        one may become so. A later drop of a day waits while an earlier drop of that day
        is not complete yet: taken first, it would be overwritten by the older one."""
        ready: list[Path] = []
        wait: float | None = None
        now = self.clock()
        for name, candidate in list(self.candidates.items()):
            try:
                self._observe(candidate, candidate.path.lstat(), now)
            except OSError as exc:
                self._forget(name, vanished=isinstance(exc, FileNotFoundError))
        held: set[tuple[str, str]] = set()  # feeds' days with an earlier drop settling
        for candidate in sorted(self.candidates.values(), key=lambda c: c.order):
            quiet = now - candidate.stable_since
            needed = self._quiet_needed(candidate, quiet)
            day = candidate.day
            if (candidate.complete or quiet >= needed) and day not in held:
                ready.append(candidate.path)
                continue
            held.add(day)
            if not (candidate.complete or quiet >= needed):
                wait = needed - quiet if wait is None else min(wait, needed - quiet)
        return ready, wait

    def _quiet_needed(self, candidate: Candidate, quiet: float) -> float:
        """Seconds without change after which `candidate` counts as complete."""
        # The footer is read only once the settle time is over, not on every pass.
        if (quiet >= self.settle_seconds and candidate.writing is not False
                and not framing.has_parquet_footer(candidate.path)):
            # Its writer has it open and has not finished it: a pause is not the end.
            return self.settle_seconds * STALLED_WRITER_SETTLES
        return self.settle_seconds

    def _forget(self, name: str, *, vanished: bool) -> None:
        """Drop a candidate that can no longer be seen. One that is gone (not merely
        unreadable: the rescan reports an inbox it cannot list) was detected and will never
        be claimed here, so its `file_detected` line gets a `file_claimed_elsewhere` one if
        another daemon sharing the inbox has it, else a `file_vanished` one."""
        candidate = self.candidates.pop(name, None)
        if candidate is None or not vanished:
            return
        elsewhere = (None if self.whereabouts is None
                     else self.whereabouts.claimed_elsewhere(name, candidate.seen))
        if elsewhere is not None:
            self.claimed_elsewhere += 1
            self.gone[candidate.feed, "claimed_elsewhere"] += 1
            log.info("file_claimed_elsewhere", file=files.display_name(name),
                     feed=candidate.feed, by=elsewhere.by)
            return
        self.vanished += 1
        self.gone[candidate.feed, "vanished"] += 1
        log.info("file_vanished", file=files.display_name(name), feed=candidate.feed)

    def taken(self, path: Path) -> Identity | None:
        """Forget a candidate the worker is claiming now; its identity as last seen
        (for `Pipeline.claim`), None if it was not a candidate."""
        candidate = self.candidates.pop(path.name, None)
        return None if candidate is None else candidate.seen
