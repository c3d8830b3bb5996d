"""The watchdog side of the inbox: the observer, its event handler, and the hints.

The handler only records a path and a hint and wakes the worker; it never raises,
because an exception there kills watchdog's dispatch thread. An inotify overflow, which
watchdog only logs, becomes a request for a rescan. The observer is inotify (with full
events) on Linux, or polling on request for filesystems whose changes inotify never
sees. It knows nothing of files' contents, the pipeline, or the worker loop.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from config import Settings
from daemon.inbox import Hint

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
    """Paths reported by events, handed from the observer thread to the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, Hint]] = []
        self._rescan = False
        self.wake = threading.Event()

    def add(self, path: str, hint: Hint) -> None:
        with self._lock:
            self._items.append((path, hint))
        self.wake.set()

    def request_rescan(self) -> None:
        with self._lock:
            self._rescan = True
        self.wake.set()

    def drain(self) -> tuple[list[tuple[str, Hint]], bool]:
        with self._lock:
            items, self._items = self._items, []
            rescan, self._rescan = self._rescan, False
        return items, rescan


class InboxEventHandler(FileSystemEventHandler):
    """Records file events as hints; nothing else, and never raises."""

    def __init__(self, hints: Hints) -> None:
        self.hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            hint = _HINTS.get(event.event_type)
            if hint is None or event.is_directory:
                return
            # A rename into the inbox is the producer's "done": use where it landed. A
            # move out of the inbox (our own claim, say) has no destination here.
            path = event.dest_path if hint == "moved" else event.src_path
            if path:
                self.hints.add(os.fsdecode(path), hint)
        except Exception:
            self.hints.request_rescan()


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


class InboxObserver:
    """One observer on one inbox, with watchdog's log records turned into hints."""

    def __init__(self, settings: Settings, hints: Hints) -> None:
        self.settings = settings
        self.hints = hints
        self._listener = _OverflowListener(hints)
        self._stop_race = _StopRaceFilter()
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        logging.getLogger("watchdog").addHandler(self._listener)
        logging.getLogger("watchdog.observers.inotify").addFilter(self._stop_race)
        _shorten_move_pairing()
        self._observer = _observer(self.settings)
        self._observer.schedule(InboxEventHandler(self.hints), os.fspath(self.settings.inbox),
                                recursive=False)
        self._observer.start()

    def is_alive(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def stop(self) -> None:
        if self._observer is None:
            return
        self._observer.stop()
        self._observer.join()
        logging.getLogger("watchdog").removeHandler(self._listener)
        logging.getLogger("watchdog.observers.inotify").removeFilter(self._stop_race)
