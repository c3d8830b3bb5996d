"""When files are taken: the one worker loop, fed by the observer's hints.

Events are hints (`daemon.watch.observer` records them): the worker sweeps the inbox at
start-up, rescans it periodically and at once when inotify reports an overflow, and
resumes files left in the work directory by a crash. Once a second it checks that the
inbox is still watched, and watches it again (creating it again if it was deleted).
One worker thread runs every file through the pipeline in name order; one `turn` of its
loop is a method of its own, which tests call directly. Sharing a warehouse, it looks for
the files of dead daemons between files too, not only at rescans, and runs those first,
in drop order: a dead daemon held the oldest drops. Stopping is a flag: the file in
flight finishes, then the loop returns. The watcher builds none of its parts: the
service composes them (`daemon.watch.parts`) and reads what the worker does from its
`WorkerReport`; what each file came to goes to an `OutcomeSink` (the metrics). This
module and `daemon.watch.observer` are the only ones that know threads and watchdog.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import structlog

from filedrop_etl.config import Settings
from filedrop_etl.daemon import files, routing
from filedrop_etl.daemon.load.pipeline import Outcome
from filedrop_etl.daemon.lock import DirectoryLocks
from filedrop_etl.daemon.outcomes import OUTCOMES
from filedrop_etl.daemon.watch.inbox import Candidate
from filedrop_etl.daemon.watch.parts import Parts
from filedrop_etl.daemon.watch.sharing import adopt_strays
from filedrop_etl.daemon.watch.takeover import TakeOvers, take_over

log = structlog.get_logger("daemon.watcher")

RETRY_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# The idle worker wakes at least this often, so that its tick says it is alive (see
# `WorkerReport.stuck`) even when the next rescan is an hour away.
HEARTBEAT_SECONDS = 1.0


def directory_locks(settings: Settings) -> DirectoryLocks:
    """The directories one daemon holds: its work directory for itself, and its inbox,
    alone unless the warehouse is shared, where several daemons may watch one inbox (each
    claims into its own work directory, and the warehouse's claims say whose is which)."""
    return DirectoryLocks(settings.inbox, settings.work, shared=settings.shared)


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 1), the last step held."""
    return RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS)) - 1]


class Watcher:
    """Owns the worker thread for one inbox, and starts and stops the parts beside it."""

    def __init__(self, settings: Settings, parts: Parts, *, once: bool = False) -> None:
        self.settings = settings
        self.once = once
        self.warehouse, self.pipeline, self.inbox = parts.warehouse, parts.pipeline, parts.inbox
        self.hints, self.locks, self.heartbeat = parts.hints, parts.locks, parts.heartbeat
        self.resumes, self.report, self.sink = parts.resumes, parts.report, parts.sink
        self._observer = parts.observer
        self.stop_requested = threading.Event()
        # The worker's own count of how its attempts ended; others read `report.tally`.
        self.outcomes: Counter[str] = Counter()
        # The same by feed ("" for a name of none) and outcome: `report.tally_by_feed`.
        self.by_feed: Counter[tuple[str, str]] = Counter()
        # Claimed files waiting for a (re)try, in claim order: when due, attempt count.
        self._retries: dict[Path, tuple[float, int]] = {}
        # `once` only: a file had to wait, so this drain takes nothing more.
        self._held = False
        # Left-over claims not yet attempted in this run (see `daemon.watch.resumes`).
        self._resumed: set[Path] = set()
        self._thread = threading.Thread(target=self._run, name="etl-worker")
        self._prepared = False
        # When the next periodic rescan and the next check of the inbox's watch are due
        # (monotonic); set by `begin`.
        self._next_rescan = self._next_watch_check = 0.0
        # When dead daemons' files are next looked for, and those taken still queued.
        self._take_overs = TakeOvers(settings)

    @property
    def swept(self) -> threading.Event:
        """Set once left-over claims are resumed and the inbox swept (`report.swept`)."""
        return self.report.swept

    def prepare(self) -> None:
        """Create the directories and claim the inbox and the work directory; `ConfigError`
        if they span filesystems, `AlreadyRunning` if another daemon uses one of them.
        Claims handed in already held mean the caller did both (`daemon.app.service`)."""
        if not self.locks.held:
            files.prepare_directories(self.settings.inbox, self.settings.work,
                                      self.settings.processed, self.settings.failed)
            self.locks.acquire()
        self._prepared = True

    def start(self) -> None:
        """Start the observer (unless `once`) and the worker thread."""
        if not self._prepared:
            self.prepare()
        if not self.once:
            self._observer.start()
        if self.settings.shared:
            self.heartbeat.start()
        # Running from here, as the thread's liveness would say.
        self.report.update(running=True, ticked_at=time.monotonic())
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the worker to stop after the file in flight; safe from a signal handler."""
        self.stop_requested.set()
        self.hints.wake.set()

    def request_rescan(self, reason: str) -> None:
        """Ask the worker to rescan the inbox now (logged with `reason`)."""
        self.hints.request_rescan(reason)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the worker to end; True once it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def crashed(self) -> bool:
        return self.report.now.crashed

    def _blocked(self) -> str | None:
        """Why no file may be taken now: the database is not the file the worker writes
        to (SQLite), or this daemon's node name is another daemon's now."""
        file = self.warehouse.file_identity
        return (file.check_file() if file is not None else None) or self.heartbeat.node_taken

    def join(self) -> None:
        self._thread.join()
        self._observer.stop()
        self.heartbeat.stop()
        self.locks.release()

    def _run(self) -> None:
        crashed = False
        try:
            self.loop()
        except BaseException:
            # Logged here, not re-raised: the main thread sees `crashed` and exits non-zero.
            crashed = True
            log.exception("worker_crashed")
        finally:
            self._publish()  # the tally as it ended, even mid-turn, for `daemon_stopped`
            self.report.update(running=False, crashed=crashed)

    def loop(self) -> None:
        """Resume, sweep, then take files until stopped (or, with `once`, until drained)."""
        self.begin()
        while not self.stop_requested.is_set():
            pause = self.turn()
            if pause is None:
                return
            if pause > 0:
                self.hints.wake.wait(pause)
                self.hints.wake.clear()

    def begin(self) -> None:
        """Before the first turn: resume the left-over claims and sweep the inbox."""
        if self.settings.shared:
            adopt_strays(self.settings)
        try:
            left_over = files.in_claim_order(self.settings.work)
            # Only of a work directory that could be listed: its journal is in it.
            unfinished = self.resumes.keep_only(left_over)
        except OSError as exc:
            left_over, unfinished = [], {}
            log.error("work_unavailable", work=str(self.settings.work),
                      reason=exc.strerror or str(exc),
                      hint="restore the work directory; files in it are resumed at start-up")
        # Left-over claims join the retry queue, in claim order, due now: they are loaded
        # before any new drop, and one that must wait holds back those claimed after it.
        for path in left_over:
            # How often the daemon already stopped while loading it: at max_resumes it
            # is set aside instead of loaded (see `_attempt`).
            log.info("file_resumed", file=files.display_name(path.name),
                     feed=routing.feed_name(path.name, self.settings.feeds),
                     unfinished_attempts=unfinished.get(path.name, 0),
                     max_resumes=self.settings.max_resumes)
            self._retries[path] = (0.0, 0)
        self._resumed.update(left_over)
        self._take_over()
        swept = self.inbox.scan("sweep")
        self._detected(swept)
        # From here on a new file is found by its event (or a rescan): the daemon is ready.
        log.info("inbox_swept", found=len(swept), resumed=len(left_over))
        self._publish()
        self.report.swept.set()
        self._next_rescan = time.monotonic() + self.settings.rescan_seconds
        self._next_watch_check = time.monotonic() + HEARTBEAT_SECONDS

    def turn(self, now: float | None = None) -> float | None:
        """One turn of the loop at `now` (monotonic; by default the clock's): take in the
        hints, rescan when due or asked, then take the files that are due. Returns how
        long to wait for the next turn (0: at once, work was done), or None when the loop
        must end (`once`: drained, or blocked)."""
        now = time.monotonic() if now is None else now
        self.report.update(ticked_at=now)
        rewatched = False
        if not self.once and now >= self._next_watch_check:
            rewatched = self._observer.keep_watching()
            if rewatched:
                self.locks.relock_inbox()
            self._next_watch_check = now + HEARTBEAT_SECONDS
        items, asked = self.hints.drain()
        for item, hint in items:
            candidate = self.inbox.note(Path(item), hint, "event")
            self._detected([candidate] if candidate else [])
        if asked or rewatched or now >= self._next_rescan:
            found = self.inbox.scan("rescan")
            if found or asked or rewatched:
                log.info("inbox_rescanned", found=len(found),
                         reason=asked or ("rewatched" if rewatched else "periodic"))
            self._detected(found)
            self._take_over()
            self._next_rescan = max(now, time.monotonic()) + self.settings.rescan_seconds
        if self.hints.back.is_set():
            # The warehouse answers again: the files waiting on it are due now, on a
            # session checked first (it may have died during the outage).
            self.hints.back.clear()
            self.warehouse.answers_again()
            self._retries = {path: (0.0, tries) for path, (_, tries) in self._retries.items()}
        self._publish()
        if self._blocked() is not None:
            # A drain cannot go on (the exit code says so); a daemon looks again soon.
            return None if self.once else HEARTBEAT_SECONDS
        did_work, wait = self._take_due(now)
        self._publish()
        if did_work:
            return 0.0
        if self.once and (self._held or not (self.inbox.candidates or self._retries)):
            return None
        deadline = min([self._next_rescan, *(due for due, _ in self._retries.values())])
        timeout = deadline - time.monotonic()
        if wait is not None:
            timeout = min(timeout, wait)
        return min(max(0.0, timeout), HEARTBEAT_SECONDS)

    def _publish(self) -> None:
        """Put what others read of the queue and the tally into the report."""
        tally = {outcome: self.outcomes[outcome] for outcome in OUTCOMES}
        # Detected, then gone before the claim: deleted, or another daemon's now.
        tally["vanished"] += self.inbox.vanished
        tally["claimed_elsewhere"] += self.inbox.claimed_elsewhere
        by_feed: dict[str, dict[str, int]] = {}
        for (feed, outcome), count in (self.by_feed + self.inbox.gone).items():
            by_feed.setdefault(feed, dict.fromkeys(OUTCOMES, 0))[outcome] = count
        self.report.update(tally=tally, tally_by_feed=by_feed,
                           queue_depth=len(self.inbox.candidates) + len(self._retries))

    def _take_over(self) -> None:
        """Files of dead daemons sharing the warehouse join the retry queue at its head,
        due now, in drop order (`TakeOvers.first`)."""
        self._take_overs.looked()
        if not self.settings.shared or self.heartbeat.node_taken is not None:
            return
        taken = take_over(self.warehouse.claims, self.settings.work, self.settings.feeds)
        for file in taken:
            if file.ticket is not None:
                self.pipeline.holds.adopt(file.path, file.ticket)
            self._retries.setdefault(file.path, (0.0, 0))
        if taken:
            self._retries = self._take_overs.first(taken, self._retries)

    def _take_due(self, now: float) -> tuple[bool, float | None]:
        """Run the retries due at `now` (or by the clock, as files take time) and complete
        inbox files, one at a time, looking for dead daemons' files between them (they
        go first); say whether any ran, and how long until the next inbox file may be
        complete."""
        # Strictly in claim order (the queue's insertion order, taken-over files first):
        # only its head may run, so a file that waits holds back every file after it.
        ran = False
        ready: list[Path] | None = None
        wait = None
        while not self.stop_requested.is_set():
            # Between files only, not before the first: an idle daemon's rescan looks
            # already, and a look costs a round trip that a black-holed server stretches
            # to the network timeout, which the file found now should not wait out first.
            if ran and self.settings.shared and self._take_overs.due(
                    max(now, time.monotonic())):
                self._take_over()
            if self._retries and not self._held:
                path, (at, _) = next(iter(self._retries.items()))
                if at > max(now, time.monotonic()):
                    return ran, None
                self._process(path)
                ran = True
                continue
            if self._retries or self._held:
                # While an environmental fault lasts, later drops wait: loaded first, they
                # could be overwritten by an older drop of the same day once it is retried.
                return ran, None
            if ready is None:
                ready, wait = self.inbox.due()
                ran = ran or bool(ready)
            if not ready:
                break
            path = ready.pop(0)
            seen = self.inbox.taken(path)
            claim = self.pipeline.claim(path, seen)
            if claim.status == "claimed":
                # Should it have to wait, the later ready files wait behind it, in the inbox.
                self._process(claim.path)
            else:
                self.outcomes[claim.status] += 1
                self.by_feed[claim.feed, claim.status] += 1
        else:
            return True, None
        return ran, wait

    def _process(self, claimed: Path) -> None:
        """Run one claimed file through the pipeline; schedule a retry if it asks for one."""
        self.report.update(ticked_at=time.monotonic(), file=claimed)
        self.heartbeat.nudge()
        _, attempts = self._retries.get(claimed, (0.0, 0))
        # Decided before the attempt, so that its retry line can say when the next one is;
        # a drain does not retry (see below).
        delay = None if self.once else retry_delay(attempts + 1)
        started = time.perf_counter()
        outcome = self._attempt(claimed, attempts + 1, delay)
        status = outcome.status
        if status == "claimed":
            raise AssertionError("an attempt never ends in a claim")
        self.outcomes[status] += 1
        self.by_feed[outcome.feed, status] += 1
        self.report.update(ticked_at=time.monotonic(), file=None)
        self.sink.file_done(status, time.perf_counter() - started, outcome.counts,
                            outcome.feed)
        if status != "retry":
            self._retries.pop(claimed, None)
        elif delay is None:
            # A drain must end: the file stays in the work directory for the next run,
            # and so do the claims behind it and the drops still in the inbox, so that
            # none of them is applied before it.
            self._held = True
        else:
            self._retries[claimed] = (time.monotonic() + delay, attempts + 1)
        self._publish()

    def _attempt(self, claimed: Path, attempt: int, delay: float | None) -> Outcome:
        """One attempt at a claimed file; a resumed one is written down first, and set
        aside unread if the daemon stopped while loading it every time it was resumed."""
        if claimed not in self._resumed:
            return self.pipeline.process(claimed, attempt=attempt, retry_in_seconds=delay)
        self._resumed.discard(claimed)
        outcome = self.pipeline.process(claimed, attempt=attempt, retry_in_seconds=delay,
                                        stopped_on=self.resumes.begin(claimed))
        self.resumes.ended(claimed)
        return outcome

    def _detected(self, found: list[Candidate]) -> None:
        for candidate in found:
            log.info("file_detected", file=files.display_name(candidate.path.name),
                     feed=candidate.feed, found_by=candidate.found_by)
            self.sink.detected(candidate.found_by)
