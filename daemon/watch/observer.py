"""The watchdog side of the inbox: the observer, its event handler, and the hints.

The handler only records a path and a hint and wakes the worker; it never raises,
because an exception there kills watchdog's dispatch thread. An inotify overflow, which
watchdog only logs, becomes a request for a rescan. The observer is inotify (with full
events) on Linux, or polling on request for filesystems whose changes inotify never
sees. A symlinked inbox is watched at the directory it points to. It notices when its
watch fails (the inbox deleted or replaced, its link pointed elsewhere) and can watch
again. It knows nothing of files' contents, the pipeline, or the worker loop.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from filedrop_etl.config import ConfigError, Settings
from filedrop_etl.daemon import files
from filedrop_etl.daemon.watch.inbox import Hint

log = structlog.get_logger("daemon.observer")

_HINTS: dict[str, Hint] = {"created": "created", "modified": "modified", "moved": "moved",
                           "closed": "closed"}
# watchdog holds each IN_MOVED_FROM for 0.5 s to pair it with its IN_MOVED_TO, and its
# queue sleeps out that time even once the pair is made, holding back every event behind
# it (our own claim of each file out of the inbox is one): 0.5 s on every drop. The kernel
# queues the two halves of a rename back to back, so 10 ms pairs them as well; a half
# left unpaired only turns a "moved" hint into "created", which waits for the settle
# time: slower, never wrong.
MOVE_PAIRING_SECONDS = 0.01


def _observer(settings: Settings) -> BaseObserver:
    if settings.observer == "polling":
        # Lists the inbox every poll: sees what inotify cannot (NFS, SMB, a bind mount
        # written from another host or container), at the cost of that latency.
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=settings.poll_seconds)
    if not sys.platform.startswith("linux"):
        return Observer()
    from watchdog.observers.inotify import InotifyObserver

    # Full events: a file renamed in from outside the inbox is reported as a move (so it
    # is complete at once), not as a creation, which would wait for the settle time.
    return InotifyObserver(generate_full_events=True)


def _shorten_move_pairing() -> None:
    try:
        from watchdog.observers import inotify_move_event_grouper as grouping
    except ImportError:  # not Linux, or watchdog before 6: nothing of this kind to shorten
        return
    grouping.InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS


class Hints:
    """Paths reported by events, handed from the observer thread to the worker; and the
    other threads' word that the worker should look now (a rescan asked for, the
    warehouse answering again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, Hint]] = []
        # Why a rescan was asked for (`overflow`, `signal`), None if it was not.
        self._rescan: str | None = None
        self.wake = threading.Event()
        # Set by the heartbeat when the warehouse answers again after failing to: the
        # files waiting for a retry are due at once, not at their next backoff step.
        self.back = threading.Event()

    def warehouse_back(self) -> None:
        """From the heartbeat's thread: the warehouse answers again."""
        self.back.set()
        self.wake.set()

    def add(self, path: str, hint: Hint) -> None:
        with self._lock:
            self._items.append((path, hint))
        self.wake.set()

    def request_rescan(self, reason: str = "overflow") -> None:
        with self._lock:
            self._rescan = reason
        self.wake.set()

    def drain(self) -> tuple[list[tuple[str, Hint]], str | None]:
        """The hints so far, and why a rescan was asked for (None if it was not)."""
        with self._lock:
            items, self._items = self._items, []
            rescan, self._rescan = self._rescan, None
        return items, rescan


class InboxEventHandler(FileSystemEventHandler):
    """Records file events as hints; nothing else, and never raises.

    Events name files under `watched` (the directory a symlinked inbox points to); the
    hints name them under `inbox`, the path the rest of the daemon knows.
    """

    def __init__(self, hints: Hints, inbox: str | None = None,
                 watched: str | None = None) -> None:
        self.hints = hints
        self.inbox = inbox
        self.watched = watched

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            hint = _HINTS.get(event.event_type)
            if hint is None or event.is_directory:
                return
            # A rename into the inbox is the producer's "done": use where it landed. A
            # move out of the inbox (our own claim, say) has no destination here.
            path = os.fsdecode(event.dest_path if hint == "moved" else event.src_path)
            if path:
                self.hints.add(self._as_inbox(path), hint)
        except Exception:
            self.hints.request_rescan()

    def _as_inbox(self, path: str) -> str:
        directory, name = os.path.split(path)
        if self.inbox is not None and directory == self.watched:
            return os.fspath(Path(self.inbox, name))
        return path


class _OverflowListener(logging.Handler):
    """watchdog only logs an inotify overflow; turn that record into a rescan."""

    def __init__(self, hints: Hints) -> None:
        super().__init__(level=logging.WARNING)
        self.hints = hints

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.hints.request_rescan()


class _StopRaceFilter(logging.Filter):
    """Drops watchdog's error for an event read while its emitter stops.

    watchdog 7.1 logs "InotifyEmitter.queue_events() called when the thread is inactive"
    at ERROR when an event (our own last move out of the inbox, say) races its stop; the
    event is of no use then, and an ERROR on every clean stop would page someone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


Unwatched = Literal["missing", "replaced", "repointed", "deaf"]
# Why the inbox is not watched, as `health` and `inbox_rewatched` say it.
UNWATCHED: dict[Unwatched, str] = {"missing": "no directory at its path (deleted?)",
                         "replaced": "another directory took its path (renamed away?)",
                         "repointed": "the symbolic link now points to another directory",
                         "deaf": "its watch ended"}


def _identity(directory: Path) -> tuple[int, int]:
    """Which directory is at `directory` now; OSError if none is."""
    status = directory.stat()
    if not stat.S_ISDIR(status.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
    return status.st_dev, status.st_ino


class InboxObserver:
    """One observer on one inbox, with watchdog's log records turned into hints.

    A watch is on a directory, not on a path: when the inbox is deleted, watchdog's
    emitter for it ends (the observer thread lives on, deaf); when it is renamed away
    and another takes its name, or a symlinked inbox is pointed elsewhere, the watch
    follows the old one. `why_unwatched` tells each apart from a sound watch, and
    `keep_watching` watches the inbox anew.
    """

    def __init__(self, settings: Settings, hints: Hints) -> None:
        self.settings = settings
        self.hints = hints
        self._listener = _OverflowListener(hints)
        self._stop_race = _StopRaceFilter()
        self._observer: BaseObserver | None = None
        self._watched: tuple[int, int] | None = None
        # The directory watched: the inbox, or what it links to.
        self._target = os.fspath(settings.inbox)
        # The last reason the inbox could not be watched again, so it is logged once.
        self._unwatched: str | None = None

    def start(self) -> None:
        logging.getLogger("watchdog").addHandler(self._listener)
        logging.getLogger("watchdog.observers.inotify").addFilter(self._stop_race)
        _shorten_move_pairing()
        self._observer = _observer(self.settings)
        self._schedule(self._observer)
        self._observer.start()

    def _schedule(self, observer: BaseObserver) -> None:
        # The identity first: a directory swapped in between is then seen as unwatched.
        self._watched = _identity(self.settings.inbox)
        # The directory itself, never a symbolic link to it: watchdog watches the link
        # (inotify's IN_DONT_FOLLOW) and hears nothing of the files behind it.
        inbox = os.fspath(self.settings.inbox)
        self._target = os.path.realpath(inbox)
        observer.schedule(InboxEventHandler(self.hints, inbox, self._target), self._target,
                          recursive=False)

    def is_alive(self) -> bool:
        """Whether the observer thread runs (the inbox may still be unwatched: `why_unwatched`)."""
        return self._observer is not None and self._observer.is_alive()

    def why_unwatched(self) -> Unwatched | None:
        """None while the inbox is watched; else why not: no directory at its path
        (`missing`), another directory there (`replaced`), or the watch ended (`deaf`).
        Safe from any thread: a stat and reads of the emitters' state."""
        if self._observer is None:
            return None
        try:
            identity = _identity(self.settings.inbox)
        except OSError:
            return "missing"
        if identity != self._watched:
            linked = os.path.realpath(self.settings.inbox) != self._target
            return "repointed" if linked and self.settings.inbox.is_symlink() else "replaced"
        emitters = self._observer.emitters
        if not emitters or not all(emitter.is_alive() for emitter in emitters):
            return "deaf"
        return None

    def keep_watching(self) -> bool:
        """Watch the inbox again if it is not watched, creating it again if it was
        deleted (as the daemon's start would); True if it did, so that the caller
        rescans for what came while it was not watched. A failure is logged once per
        reason and tried again at the next call; `why_unwatched` says so meanwhile."""
        why = self.why_unwatched()
        if why is None or self._observer is None:
            self._unwatched = None
            return False
        settings, inbox = self.settings, str(self.settings.inbox)
        try:
            # Made again if it is missing; and whatever took its place must be on the work
            # directory's filesystem, or no claim (a rename) could ever succeed there.
            files.prepare_directories(settings.inbox, settings.work, settings.processed,
                                      settings.failed)
            self._observer.unschedule_all()
            self._schedule(self._observer)
        except (ConfigError, OSError) as exc:
            reason = exc.message if isinstance(exc, ConfigError) else str(exc)
            if reason != self._unwatched:
                self._unwatched = reason
                log.error("inbox_unwatched", inbox=inbox, lost=why, reason=reason,
                          hint="make the inbox a directory the daemon can write again; "
                          "it is watched again as soon as it is (files dropped meanwhile "
                          "are found then)")
            return False
        self._unwatched = None
        log.warning("inbox_rewatched", inbox=inbox, lost=why, recreated=why == "missing",
                    reason=UNWATCHED[why], hint="something deleted or replaced the inbox while "
                    "the daemon ran; it is watched again, and rescanned for files dropped "
                    "meanwhile")
        return True

    def stop(self) -> None:
        if self._observer is None:
            return
        self._observer.stop()
        self._observer.join()
        logging.getLogger("watchdog").removeHandler(self._listener)
        logging.getLogger("watchdog.observers.inotify").removeFilter(self._stop_race)
