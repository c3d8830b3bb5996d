"""What happens to one file: claim, load, record, archive or quarantine.

This is the per-file error boundary. Each file is loaded by the feed its name belongs to
(`Feeds.for_file`), in that feed's write mode (its own, else the daemon's); a name that
matches no feed fails at its name, hashed first as any file is, with the ledger's feed
`""`. A claimed file is loaded by `daemon.load.loading` (its
rows staged and checked, then the ledger row and the merge in one transaction); only
after that commit is the file moved to processed/. Bad input and unexpected errors roll
everything back, write a failed ledger row and move the file to failed/ with an
`.error.json` sidecar. Environmental faults (database busy, disk full) leave the file in
the work directory and ask the caller to retry; a load that committed but could not be
archived is remembered, so its retry only moves the file. Neither `KeyboardInterrupt`
nor `SystemExit` is caught. It knows no threads, events or signals.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from filedrop_etl.config import Settings, WriteMode
from filedrop_etl.config.contract import Contract
from filedrop_etl.config.invocation import command_line
from filedrop_etl.daemon import clock, crashpoints, files, routing
from filedrop_etl.daemon.errors import BadInput, StoppedTooOften, describe
from filedrop_etl.daemon.load import loading, quarantine
from filedrop_etl.daemon.load.holds import Holds
from filedrop_etl.daemon.outcomes import Claimed, Ending
from filedrop_etl.daemon.warehouse.api import (
    ClaimLost,
    LoadRecord,
    MergeCounts,
    Warehouse,
    WarehouseFault,
)
from filedrop_etl.daemon.whereabouts import Identity, Whereabouts, identity

log = structlog.get_logger("daemon.pipeline")


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended; `path` is where the file now is."""

    status: Ending | Claimed
    path: Path
    counts: MergeCounts | None = None
    # The feed the file's name belongs to; "" for none.
    feed: str = ""


class Pipeline:
    """Loads claimed files into the database it is given; one instance per worker."""

    def __init__(self, settings: Settings, warehouse: Warehouse,
                 progress: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.warehouse = warehouse
        # Called as each batch of a file is staged: a file of many batches is work going
        # on, not a stuck worker (the caller's health check).
        self.progress = progress
        self._unfinished: dict[Path, Callable[[], Outcome]] = {}
        self.holds = Holds(settings, warehouse.claims)
        # Where the other daemons sharing the inbox put the files they claim; None if none.
        self.whereabouts = Whereabouts.of(settings)
        # The caller's schedule for the file in hand, for its `file_retry_scheduled` line.
        self._schedule: dict[str, int | float | None] = {"attempt": 1, "retry_in_seconds": None}
        # The `retry` a `file_failed` line suggests, as it runs from any folder.
        self._command = command_line(settings)

    def feed_of(self, name: str) -> tuple[Contract | None, str]:
        """The feed a file of this name is loaded by (None: its name matches no feed),
        and its name as the log, the metrics and the ledger carry it ("" for none)."""
        return self.settings.feeds.for_file(name), routing.feed_name(name, self.settings.feeds)

    def write_mode(self, contract: Contract | None) -> WriteMode:
        """The write mode a file of `contract` is loaded in: the feed's, else the daemon's."""
        return (contract.write_mode if contract is not None else None) or self.settings.write_mode

    def claim(self, path: Path, seen: Identity | None = None) -> Outcome:
        """Move an inbox file into the work directory: `claimed` with its new path, else
        `claimed_elsewhere` (another daemon on a shared inbox took it first), `vanished`
        (deleted) or `claim_failed` (left in the inbox). `seen`: the file as the inbox last
        saw it (`whereabouts.identity`), to find it by if it is gone before this look."""
        shown = files.display_name(path.name)
        feed = self.feed_of(path.name)[1]
        try:
            st = path.lstat()
            seen = identity(st)
            # When it was dropped, before the rename changes it: the drop's place in
            # line among the drops of its run date (see `Ticket.dropped_ns`).
            dropped = st.st_ctime_ns
            claimed = files.move_unique(path, self.settings.work)
        except FileNotFoundError:
            elsewhere = (None if self.whereabouts is None
                         else self.whereabouts.claimed_elsewhere(path.name, seen))
            if elsewhere is not None:
                log.info("file_claimed_elsewhere", file=shown, feed=feed, by=elsewhere.by)
                return Outcome("claimed_elsewhere", path, feed=feed)
            log.info("file_vanished", file=shown, feed=feed)
            return Outcome("vanished", path, feed=feed)
        except OSError as exc:
            # Left in the inbox, where the next periodic rescan offers it again.
            log.error("claim_failed", file=shown, feed=feed, reason=str(exc),
                      hint="make the inbox and work directories writable by the daemon")
            return Outcome("claim_failed", path, feed=feed)
        self.holds.dropped(claimed, dropped)
        log.info("file_claimed", file=shown, feed=feed,
                 work_path=files.display_name(str(claimed)))
        crashpoints.reached("after_claim")
        return Outcome("claimed", claimed, feed=feed)

    def process(self, claimed: Path, *, attempt: int = 1,
                retry_in_seconds: float | None = None,
                stopped_on: list[dict[str, Any]] | None = None) -> Outcome:
        """Load a claimed file and archive it; never raises for a bad or failing file.

        `attempt` (1 for the first) and `retry_in_seconds` (when the caller tries again
        if this attempt must wait; None: not in this run) only annotate the log line.
        `stopped_on` (from `daemon.watch.resumes`): the daemon stopped while loading this file
        every time it was resumed, so it is quarantined unread instead: reading it again
        could end the daemon again.
        """
        self._schedule = {"attempt": attempt, "retry_in_seconds": retry_in_seconds}
        feed = self.feed_of(claimed.name)[1]
        # Every line logged while the file is in hand (the loading's and the warehouse's
        # too) carries its file and its feed.
        with structlog.contextvars.bound_contextvars(file=files.display_name(claimed.name),
                                                     feed=feed):
            try:
                self.holds.hold(claimed)
                if stopped_on is not None:
                    outcome = self._set_aside(claimed, stopped_on)
                else:
                    outcome = self._process(claimed)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                # A fault after the verdict, while archiving, quarantining or recording
                # it (the load's own are handled in `_process`), or while claiming it in
                # a shared warehouse: the file stays claimed and is tried again, never
                # lost and never the worker's end.
                stage = "outcome" if self.holds.held(claimed) else "claim"
                log.error("file_retry_scheduled", file=files.display_name(claimed.name),
                          feed=feed, stage=stage, error_type=type(exc).__name__,
                          reason=str(exc),
                          hint="the file stays in the work directory and is retried"
                          + ("" if isinstance(exc, WarehouseFault) else "; this is a bug "
                             "in the daemon: report it with this line"),
                          exc_info=not isinstance(exc, WarehouseFault), **self._schedule)
                return Outcome("retry", claimed, feed=feed)
            if outcome.status in ("processed", "failed", "vanished"):
                self.holds.release(claimed)
            return replace(outcome, feed=feed)

    def _record(self, claimed: Path) -> tuple[LoadRecord, Contract | None]:
        """The ledger's record of an attempt at `claimed` as it begins, and its feed."""
        contract, feed = self.feed_of(claimed.name)
        return LoadRecord(files.display_name(claimed.name), None, None,
                          self.write_mode(contract), None, clock.utc_now(),
                          feed=feed), contract

    def _set_aside(self, claimed: Path, stopped_on: list[dict[str, Any]]) -> Outcome:
        """Record and quarantine a file, unread, as `StoppedTooOften`."""
        load, contract = self._record(claimed)
        try:
            size: int | None = claimed.lstat().st_size
            run_date = (None if contract is None
                        else routing.run_date_from_name(claimed.name, contract))
        except (OSError, BadInput):
            size = run_date = None
        load = replace(load, bytes=size, run_date=run_date)
        attempt = loading.Attempt(claimed, load, time.perf_counter(), stage="resume",
                                  ticket=self.holds.tickets.get(claimed))
        return self._fail(attempt, StoppedTooOften(
            stopped_on, retry=self._command("retry", files=[files.display_name(claimed.name)])))

    def _process(self, claimed: Path) -> Outcome:
        # A file whose outcome is decided but could not be moved only needs the move again.
        finish = self._unfinished.pop(claimed, None)
        if finish is not None:
            return finish()
        load, contract = self._record(claimed)
        attempt = loading.Attempt(claimed, load, time.perf_counter(),
                                  ticket=self.holds.tickets.get(claimed))
        try:
            if contract is None:
                attempt.counts = self._unmatched(attempt)
            else:
                attempt.counts = loading.load_file(attempt, contract, self.settings,
                                                   self.warehouse,
                                                   partial(self._progress, claimed))
        except (KeyboardInterrupt, SystemExit):
            raise  # the process's to handle, never a verdict on the file
        except ClaimLost as exc:
            return self._let_go(attempt, exc)
        except BaseException as exc:
            # Any other `BaseException` too (a `GeneratorExit` a library let out once):
            # past this boundary it would end the worker, and every restart would resume
            # the file first and end again.
            if loading.is_transient(exc):
                return self._retry(attempt, exc)
            return self._fail(attempt, exc)
        if attempt.counts is None:
            return Outcome("vanished", claimed)
        crashpoints.reached("after_commit")
        return self._archive(attempt)

    def _unmatched(self, attempt: loading.Attempt) -> MergeCounts | None:
        """A file whose name matches no feed (dropped under `unmatched = "fail"`, or left
        claimed by an earlier run or another config): hashed, as every file is before its
        name is read, so that its ledger row and its sidecar name its content; then
        `FileNameError` listing the feeds' patterns. None if it vanished first."""
        try:
            handle = files.open_no_follow(attempt.path)
        except FileNotFoundError:
            log.warning("file_vanished", file=attempt.load.file_name, feed=attempt.load.feed)
            return None
        except OSError:
            handle = None  # unreadable: its name is what it is failed for all the same
        if handle is not None:
            with handle:
                self._hash(attempt, handle)
        attempt.stage = "name"
        routing.feed_of(attempt.path.name, self.settings.feeds, self._command)
        raise AssertionError("unreachable: a name matching no feed raises")

    def _hash(self, attempt: loading.Attempt, handle: BinaryIO) -> None:
        """Record the file's hash, size and claim in `attempt`, unless it is larger than
        `max_file_bytes` (its name fails it all the same)."""
        limit = self.settings.max_file_bytes
        if limit is not None and os.fstat(handle.fileno()).st_size > limit:
            return
        attempt.stage = "hash"
        sha256, size = files.sha256_of(handle, partial(self._progress, attempt.path), limit)
        attempt.load = replace(attempt.load, sha256=sha256, bytes=size,
                               claim=attempt.ticket.key if attempt.ticket
                               else files.claim_key(handle))

    def _progress(self, claimed: Path) -> None:
        """A batch staged (or a stretch hashed): the worker is alive, and the claim kept."""
        self.progress()
        self.holds.keep(claimed)

    def _archive(self, attempt: loading.Attempt) -> Outcome:
        """Move a loaded file to processed/ and log its canonical line."""
        attempt.stage = "archive"
        load, counts = attempt.load, attempt.counts
        assert counts is not None
        try:
            # Its rows must be in the database at the configured path: one deleted or
            # replaced since the commit holds them nowhere anybody looks. The retry then
            # loads it again into whatever file is there once the daemon may write.
            if self.warehouse.file_identity is not None:
                self.warehouse.file_identity.check_in_place()
        except WarehouseFault as exc:
            return self._retry(attempt, exc)
        try:
            archived = files.move_unique(attempt.path, self.settings.processed)
        except FileNotFoundError:
            log.warning("file_vanished", file=load.file_name, feed=load.feed, stage="archive")
            return Outcome("vanished", attempt.path, counts)
        except OSError as exc:
            self._unfinished[attempt.path] = partial(self._archive, attempt)
            return self._retry(attempt, exc)
        crashpoints.reached("during_move")
        superseded = {"superseded": True} if counts.superseded else {}
        log.info("file_processed", file=load.file_name, feed=load.feed, sha256=load.sha256,
                 bytes=load.bytes,
                 run_date=load.run_date, write_mode=load.write_mode, rows=counts.rows,
                 inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged,
                 deleted=counts.deleted, duration_ms=attempt.elapsed_ms(),
                 archived_as=files.display_name(str(archived)), **superseded)
        return Outcome("processed", archived, counts)

    def _let_go(self, attempt: loading.Attempt, exc: ClaimLost) -> Outcome:
        """This daemon's lease on the file ran out (nothing was committed): another may
        have taken it over. The claim is forgotten; the retry claims the file again if it
        is still here, and finds it gone if the other daemon moved it."""
        self.holds.lost(attempt.path)
        log.warning("claim_lost", file=attempt.load.file_name, feed=attempt.load.feed,
                    stage=attempt.stage,
                    reason=str(exc), hint=exc.hint)
        return Outcome("retry", attempt.path)

    def _retry(self, attempt: loading.Attempt, exc: BaseException) -> Outcome:
        # Python's MemoryError says nothing at all: name what it means.
        reason = str(exc) or ("out of memory" if isinstance(exc, MemoryError) else repr(exc))
        # A driver's error translated at the seam keeps its own class as `error_type` and
        # its own words as `reason` (as before the seam); the seam's name is added.
        driver = exc.driver_error if isinstance(exc, WarehouseFault) else None
        fault = {"fault": type(exc).__name__} if driver else {}
        if driver and isinstance(exc, WarehouseFault):
            reason = exc.message
        log.error("file_retry_scheduled", file=attempt.load.file_name, feed=attempt.load.feed,
                  stage=attempt.stage,
                  error_type=driver or type(exc).__name__, reason=reason, **fault,
                  hint="the file stays in the work directory and is retried; fix the "
                  "database, disk or memory condition named in reason", **self._schedule)
        return Outcome("retry", attempt.path)

    def _fail(self, attempt: loading.Attempt, exc: BaseException) -> Outcome:
        """Record a terminal failure in the ledger, then quarantine the file."""
        stage = exc.stage if isinstance(exc, BadInput) else attempt.stage
        load = attempt.load
        report = {
            "file": load.file_name,
            "feed": load.feed,
            **describe(exc, stage),
            "sha256": load.sha256,
            "bytes": load.bytes,
            "rows": attempt.rows,
            "run_date": load.run_date,
            "write_mode": load.write_mode,
            "attempted_at": load.started_at,
        }
        try:
            self.warehouse.record_failure(load, rows=attempt.rows, error=f"{stage}: {exc}",
                                          ticket=attempt.ticket)
        except ClaimLost as lost:
            return self._let_go(attempt, lost)
        except Exception as db_exc:
            if loading.is_transient(db_exc):
                # A busy or full database: the failure waits in the work directory to be
                # recorded, as a load waits to be committed, instead of losing its row.
                self._unfinished[attempt.path] = partial(self._fail, attempt, exc)
                return self._retry(replace(attempt, stage="ledger"), db_exc)
            # The quarantine below must still happen: the ledger is not the only record.
            log.error("ledger_write_failed", file=load.file_name, feed=load.feed,
                      reason=str(db_exc))
        return self._quarantine(attempt, report, with_traceback=not isinstance(exc, BadInput))

    def _quarantine(self, attempt: loading.Attempt, report: dict[str, object],
                    with_traceback: bool) -> Outcome:
        """Move a failed file to failed/ with its sidecar and log its canonical line."""
        attempt.stage = "quarantine"
        try:
            failed = quarantine.quarantine(attempt.path, self.settings.failed, report)
        except FileNotFoundError:
            log.warning("file_vanished", file=attempt.load.file_name, feed=attempt.load.feed,
                        stage="quarantine")
            return Outcome("vanished", attempt.path)
        except OSError as exc:
            self._unfinished[attempt.path] = partial(self._quarantine, attempt, report,
                                                     with_traceback)
            return self._retry(attempt, exc)
        load = attempt.load
        log.error("file_failed", file=load.file_name, feed=load.feed, sha256=load.sha256,
                  bytes=load.bytes,
                  run_date=load.run_date, write_mode=load.write_mode, rows=attempt.rows,
                  inserted=0, updated=0, unchanged=0, deleted=0, stage=report["stage"],
                  error_type=report["error_type"], reason=report["reason"],
                  checks=report["checks"], duration_ms=attempt.elapsed_ms(),
                  failed_as=files.display_name(str(failed)),
                  # The command that sends it back: as the name it most likely meant where
                  # its own can never load (the key `suggested_name` says which), None
                  # where no name is plain (a retry would give it back its own).
                  retry=self._retry_command(report, files.display_name(failed.name)),
                  exc_info=with_traceback,
                  **{k: report[k] for k in ("suggested_name",) if k in report})
        return Outcome("failed", failed)

    def _retry_command(self, report: dict[str, object], name: str) -> str | None:
        """The command that sends a failed file back from any folder; for a name that can
        never load, under the name it most likely meant, and None where none is plain."""
        if report["stage"] != "name":
            return self._command("retry", files=[name])
        likely = report.get("suggested_name")
        return None if not isinstance(likely, str) else \
            self._command("retry", files=[name], then=("--as", likely))
