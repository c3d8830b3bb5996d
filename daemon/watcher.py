"""When files are taken: the watchdog observer, the event hints, and the one worker loop.

The watchdog handler only records a path and a hint and wakes the worker; it never
raises, because an exception there kills watchdog's dispatch thread. Events are hints:
the worker sweeps the inbox at start-up, rescans it periodically and at once when
inotify reports an overflow, and resumes files left in the work directory by a crash.
One worker thread runs every file through the pipeline in name order. Stopping is a
flag: the file in flight finishes, then the loop returns. This is the only module that
knows threads and watchdog.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from config import Settings
from daemon import files
from daemon.inbox import Candidate, Hint, Inbox
from daemon.pipeline import Pipeline

log = structlog.get_logger("daemon.watcher")

_HINTS: dict[str, Hint] = {"created": "created", "modified": "modified", "moved": "moved",
                           "closed": "closed"}
RETRY_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# watchdog holds each IN_MOVED_FROM for 0.5 s to pair it with its IN_MOVED_TO, and its
# queue sleeps out that time even once the pair is made, holding back every event behind
# it (our own claim of each file out of the inbox is one): 0.5 s on every drop. The kernel
# queues the two halves of a rename back to back, so 10 ms pairs them as well; a half
# left unpaired only turns a "moved" hint into "created", which waits for the settle
# time: slower, never wrong.
MOVE_PAIRING_SECONDS = 0.01


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 1), the last step held."""
    return RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS)) - 1]


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


class Watcher:
    """Owns the observer and the worker thread for one inbox."""

    def __init__(self, settings: Settings, conn: sqlite3.Connection, *, once: bool = False) -> None:
        self.settings = settings
        self.once = once
        self.pipeline = Pipeline(settings, conn)
        self.inbox = Inbox(settings.inbox, settings.settle_seconds)
        self.hints = Hints()
        self.stop_requested = threading.Event()
        # Set once left-over claims are resumed and the inbox swept: from then on, a new
        # file is found by its event (a seam for a readiness probe, too).
        self.swept = threading.Event()
        self.outcomes: Counter[str] = Counter()
        self.crashed = False
        # Claimed files waiting for a (re)try, in claim order: when due, attempt count.
        self._retries: dict[Path, tuple[float, int]] = {}
        # `once` only: a file had to wait, so this drain takes nothing more.
        self._held = False
        self._observer: BaseObserver | None = None
        self._listener = _OverflowListener(self.hints)
        self._stop_race = _StopRaceFilter()
        self._thread = threading.Thread(target=self._run, name="etl-worker")
        self._prepared = False

    def prepare(self) -> None:
        """Create the directories; `ConfigError` if they span filesystems."""
        files.prepare_directories(self.settings.inbox, self.settings.work,
                                  self.settings.processed, self.settings.failed)
        self._prepared = True

    def start(self) -> None:
        """Start the observer (unless `once`) and the worker thread."""
        if not self._prepared:
            self.prepare()
        if not self.once:
            logging.getLogger("watchdog").addHandler(self._listener)
            logging.getLogger("watchdog.observers.inotify").addFilter(self._stop_race)
            _shorten_move_pairing()
            self._observer = _observer(self.settings)
            self._observer.schedule(InboxEventHandler(self.hints), os.fspath(self.settings.inbox),
                                    recursive=False)
            self._observer.start()
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop after the file in flight; safe from a signal handler."""
        self.stop_requested.set()
        self.hints.wake.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the worker to end; True once it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            logging.getLogger("watchdog").removeHandler(self._listener)
            logging.getLogger("watchdog.observers.inotify").removeFilter(self._stop_race)

    def _run(self) -> None:
        try:
            self.loop()
        except BaseException:
            # Logged here, not re-raised: the main thread sees `crashed` and exits non-zero.
            self.crashed = True
            log.exception("worker_crashed")

    def loop(self) -> None:
        """Resume, sweep, then take files until stopped (or, with `once`, until drained)."""
        try:
            left_over = files.in_claim_order(self.settings.work)
        except OSError as exc:
            left_over = []
            log.error("work_unavailable", work=str(self.settings.work),
                      reason=exc.strerror or str(exc),
                      hint="restore the work directory; files in it are resumed at start-up")
        # Left-over claims join the retry queue, in claim order, due now: they are loaded
        # before any new drop, and one that must wait holds back those claimed after it.
        for path in left_over:
            log.info("file_resumed", file=files.display_name(path.name))
            self._retries[path] = (0.0, 0)
        swept = self.inbox.scan("sweep")
        self._detected(swept)
        # From here on a new file is found by its event (or a rescan): the daemon is ready.
        log.info("inbox_swept", found=len(swept), resumed=len(left_over))
        self.swept.set()
        next_rescan = time.monotonic() + self.settings.rescan_seconds
        while not self.stop_requested.is_set():
            items, overflow = self.hints.drain()
            for item, hint in items:
                candidate = self.inbox.note(Path(item), hint, "event")
                self._detected([candidate] if candidate else [])
            if overflow or time.monotonic() >= next_rescan:
                found = self.inbox.scan("rescan")
                if found or overflow:
                    log.info("inbox_rescanned", found=len(found),
                             reason="overflow" if overflow else "periodic")
                self._detected(found)
                next_rescan = time.monotonic() + self.settings.rescan_seconds
            did_work, wait = self._take_due()
            if did_work:
                continue
            if self.once and (self._held or not (self.inbox.candidates or self._retries)):
                return
            deadline = min([next_rescan, *(due for due, _ in self._retries.values())])
            timeout = deadline - time.monotonic()
            if wait is not None:
                timeout = min(timeout, wait)
            self.hints.wake.wait(max(0.0, timeout))
            self.hints.wake.clear()

    def _take_due(self) -> tuple[bool, float | None]:
        """Run due retries and complete inbox files; say whether any ran, and how long
        until the next inbox file may be complete."""
        # Strictly in claim order (the queue's insertion order): only its head may run,
        # so a file that waits holds back every file claimed after it.
        ran = False
        while self._retries and not self._held:
            path, (at, _) = next(iter(self._retries.items()))
            if self.stop_requested.is_set():
                return True, None
            if at > time.monotonic():
                break
            self._process(path)
            ran = True
        if self._retries or self._held:
            # While an environmental fault lasts, later drops wait: loaded first, they
            # could be overwritten by an older drop of the same day once it is retried.
            return ran, None
        ready, wait = self.inbox.due()
        for path in ready:
            if self.stop_requested.is_set():
                break
            self.inbox.taken(path)
            claim = self.pipeline.claim(path)
            if claim.status == "claimed":
                self._process(claim.path)
                if self._retries or self._held:
                    break  # the later ready files wait behind it, in the inbox
            else:
                self.outcomes[claim.status] += 1
        return bool(ran or ready), wait

    def _process(self, claimed: Path) -> None:
        """Run one claimed file through the pipeline; schedule a retry if it asks for one."""
        _, attempts = self._retries.get(claimed, (0.0, 0))
        # Decided before the attempt, so that its retry line can say when the next one is;
        # a drain does not retry (see below).
        delay = None if self.once else retry_delay(attempts + 1)
        outcome = self.pipeline.process(claimed, attempt=attempts + 1, retry_in_seconds=delay)
        self.outcomes[outcome.status] += 1
        if outcome.status != "retry":
            self._retries.pop(claimed, None)
            return
        if delay is None:
            # A drain must end: the file stays in the work directory for the next run,
            # and so do the claims behind it and the drops still in the inbox, so that
            # none of them is applied before it.
            self._held = True
            return
        self._retries[claimed] = (time.monotonic() + delay, attempts + 1)

    @staticmethod
    def _detected(found: list[Candidate]) -> None:
        for candidate in found:
            log.info("file_detected", file=files.display_name(candidate.path.name),
                     found_by=candidate.found_by)
