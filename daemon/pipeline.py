"""What happens to one file: claim, read, stage, check, merge, record, archive.

This is the per-file error boundary. A claimed file's rows stream into a fresh staging
database while the row checks run on the same batches; uniqueness is checked; then one
transaction writes the ledger row and the merge and commits; only after the commit is
the file moved to processed/. Bad input and unexpected errors roll everything back,
write a failed ledger row and move the file to failed/ with an `.error.json` sidecar.
Environmental faults (database busy, disk full) leave the file in the work directory
and ask the caller to retry; a load that committed but could not be archived is
remembered, so its retry only moves the file. Neither `KeyboardInterrupt` nor
`SystemExit` is caught. It knows no threads, events or signals.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

import pyarrow as pa
import structlog

from config import Settings, contract
from daemon import checks, crashpoints, files, ledger, quarantine, reader, staging, store
from daemon.errors import BadInput, describe, open_error_message

log = structlog.get_logger("daemon.pipeline")

Status = Literal["claimed", "claim_failed", "processed", "failed", "retry", "vanished"]
# SQLite primary result codes that describe the environment, not the file or our SQL.
# BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
_TRANSIENT_SQLITE = frozenset({5, 6, 7, 8, 10, 13, 14})


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended; `path` is where the file now is."""

    status: Status
    path: Path
    counts: store.MergeCounts | None = None


@dataclass
class _Attempt:
    """What is known of one attempt so far; filled in as its stages pass."""

    path: Path
    load: ledger.LoadRecord
    started: float
    stage: str = "open"
    rows: int | None = None
    counts: store.MergeCounts | None = None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, staging.StagingUnavailable):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _TRANSIENT_SQLITE


def _passing_staging_point(batches: Iterator[pa.RecordBatch],
                           progress: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    """`batches`, passing the `during_staging` crash point once the first is written,
    and calling `progress` after each."""
    first = True
    for batch in batches:
        yield batch
        progress()
        if first:
            # The writer asks for the next batch only once it has written this one.
            crashpoints.reached("during_staging")
            first = False


class Pipeline:
    """Loads claimed files into the database it is given; one instance per worker."""

    def __init__(self, settings: Settings, conn: sqlite3.Connection,
                 progress: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.conn = conn
        # Called as each batch of a file is staged: a file of many batches is work going
        # on, not a stuck worker (the caller's health check).
        self.progress = progress
        self._unfinished: dict[Path, Callable[[], Outcome]] = {}
        # The caller's schedule for the file in hand, for its `file_retry_scheduled` line.
        self._schedule: dict[str, int | float | None] = {"attempt": 1, "retry_in_seconds": None}

    def claim(self, path: Path) -> Outcome:
        """Move an inbox file into the work directory: `claimed` with its new path, else
        `vanished` (already gone) or `claim_failed` (left in the inbox)."""
        shown = files.display_name(path.name)
        try:
            claimed = files.move_unique(path, self.settings.work)
        except FileNotFoundError:
            log.info("file_vanished", file=shown)
            return Outcome("vanished", path)
        except OSError as exc:
            # Left in the inbox, where the next periodic rescan offers it again.
            log.error("claim_failed", file=shown, reason=str(exc),
                      hint="make the inbox and work directories writable by the daemon")
            return Outcome("claim_failed", path)
        log.info("file_claimed", file=shown, work_path=files.display_name(str(claimed)))
        crashpoints.reached("after_claim")
        return Outcome("claimed", claimed)

    def process(self, claimed: Path, *, attempt: int = 1,
                retry_in_seconds: float | None = None) -> Outcome:
        """Load a claimed file and archive it; never raises for a bad or failing file.

        `attempt` (1 for the first) and `retry_in_seconds` (when the caller tries again
        if this attempt must wait; None: not in this run) only annotate the log line.
        """
        self._schedule = {"attempt": attempt, "retry_in_seconds": retry_in_seconds}
        with structlog.contextvars.bound_contextvars(file=files.display_name(claimed.name)):
            return self._process(claimed)

    def _process(self, claimed: Path) -> Outcome:
        # A file whose outcome is decided but could not be moved only needs the move again.
        finish = self._unfinished.pop(claimed, None)
        if finish is not None:
            return finish()
        load = ledger.LoadRecord(files.display_name(claimed.name), None, None,
                                self.settings.write_mode, None, ledger.utc_now())
        attempt = _Attempt(claimed, load, time.perf_counter())
        # `Exception`, not `BaseException`: KeyboardInterrupt and SystemExit pass through.
        try:
            attempt.counts = self._load_file(attempt)
        except Exception as exc:
            return self._retry(attempt, exc) if _is_transient(exc) else self._fail(attempt, exc)
        if attempt.counts is None:
            return Outcome("vanished", claimed)
        crashpoints.reached("after_commit")
        return self._archive(attempt)

    def _load_file(self, attempt: _Attempt) -> store.MergeCounts | None:
        """Open, hash, name, read and load one file; None if it vanished first."""
        try:
            handle = files.open_no_follow(attempt.path)
        except FileNotFoundError:
            log.warning("file_vanished", file=attempt.load.file_name)
            return None
        except OSError as exc:
            raise BadInput(open_error_message(exc), stage="open",
                           hint="drop a regular, readable file") from exc
        with handle:
            attempt.stage = "hash"
            sha256, size = files.sha256_of(handle)
            attempt.load = replace(attempt.load, sha256=sha256, bytes=size,
                                   claim=files.claim_key(handle))
            attempt.stage = "name"
            run_date = files.run_date_from_name(attempt.path.name)
            attempt.load = replace(attempt.load, run_date=run_date)
            recorded = ledger.recorded_outcome(self.conn, attempt.load.claim or "")
            if recorded is not None and recorded[0] == "processed":
                # Committed before a crash, not yet archived: the load is not repeated.
                log.info("file_already_loaded", file=attempt.load.file_name)
                return recorded[1]
            attempt.stage = "read"
            source = reader.open_parquet(handle)
            attempt.rows = source.rows
            if source.extra_columns:
                log.warning("extra_columns_ignored", file=attempt.load.file_name,
                            columns=list(source.extra_columns))
            if source.rows == 0:
                raise BadInput("the file has no rows", stage="checks",
                               hint="a day's file must hold that day's transactions")
            return self._load_rows(source, attempt, run_date)

    def _load_rows(self, source: reader.ParquetSource, attempt: _Attempt,
                   run_date: str) -> store.MergeCounts:
        """Stage the rows while the row checks run; check and merge them; clean up."""
        attempt.stage = "stage"
        verdict = checks.FileChecks(run_date)
        batches = _passing_staging_point(verdict.observing(source.batches()), self.progress)
        counts: store.MergeCounts | None = None
        try:
            with staging.staged(self.settings.db, batches) as (path, rows), \
                    store.attached_staging(self.conn, path) as staged_rows:
                if staged_rows != rows:
                    raise RuntimeError(f"staged {staged_rows} rows of the {rows} read")
                if rows != source.rows:
                    # A footer whose count disagrees with its row groups: in replace mode
                    # an empty read would otherwise delete the whole day.
                    raise BadInput(f"the footer promises {source.rows} rows but the row "
                                   f"groups hold {rows}", stage="read",
                                   hint="the file is corrupt; have the producer write it again")
                counts = self._check_and_merge(verdict, attempt, run_date, rows)
        except Exception as exc:
            if counts is None:
                raise
            # Committed: the load stands and the file is archived; only the staging
            # database could not be let go of.
            log.warning("staging_cleanup_failed", file=attempt.load.file_name, reason=str(exc),
                        hint="restart the daemon if the next file reports the staging "
                        "database in use")
        return counts

    def _check_and_merge(self, verdict: checks.FileChecks, attempt: _Attempt, run_date: str,
                         rows: int) -> store.MergeCounts:
        """Count repeats where needed, then the ledger row and the merge in the file's one
        transaction."""
        attempt.stage = "checks"
        counted = verdict.unique_columns_to_count()
        for column in counted:
            verdict.record_duplicates(column, *store.surplus_rows(self.conn, column,
                                                                  checks.SAMPLE_KEYS))
        verdict.raise_for_failures()
        crashpoints.reached("after_checks")
        attempt.stage = "load"
        load = attempt.load
        with store.transaction(self.conn):
            load_id = ledger.record_load(self.conn, load, status="processed",
                                        finished_at=load.started_at)
            replace_date = run_date if self.settings.write_mode == "replace" else None
            counts = store.merge(self.conn, rows=rows, loaded_at=ledger.utc_now(), load_id=load_id,
                                 keys_sorted=verdict.ascending(contract.KEY),
                                 keys_counted=contract.KEY in counted,
                                 replace_date=replace_date)
            crashpoints.reached("during_merge")
            ledger.update_load_counts(self.conn, load_id, counts, finished_at=ledger.utc_now())
        return counts

    def _archive(self, attempt: _Attempt) -> Outcome:
        """Move a loaded file to processed/ and log its canonical line."""
        attempt.stage = "archive"
        load, counts = attempt.load, attempt.counts
        assert counts is not None
        try:
            archived = files.move_unique(attempt.path, self.settings.processed)
        except FileNotFoundError:
            log.warning("file_vanished", file=load.file_name, stage="archive")
            return Outcome("vanished", attempt.path, counts)
        except OSError as exc:
            self._unfinished[attempt.path] = partial(self._archive, attempt)
            return self._retry(attempt, exc)
        crashpoints.reached("during_move")
        log.info("file_processed", file=load.file_name, sha256=load.sha256, bytes=load.bytes,
                 run_date=load.run_date, write_mode=load.write_mode, rows=counts.rows,
                 inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged,
                 deleted=counts.deleted, duration_ms=attempt.elapsed_ms(),
                 archived_as=files.display_name(str(archived)))
        return Outcome("processed", archived, counts)

    def _retry(self, attempt: _Attempt, exc: Exception) -> Outcome:
        log.error("file_retry_scheduled", file=attempt.load.file_name, stage=attempt.stage,
                  error_type=type(exc).__name__, reason=str(exc),
                  hint="the file stays in the work directory and is retried; fix the "
                  "database or disk condition named in reason", **self._schedule)
        return Outcome("retry", attempt.path)

    def _fail(self, attempt: _Attempt, exc: Exception) -> Outcome:
        """Record a terminal failure in the ledger, then quarantine the file."""
        stage = exc.stage if isinstance(exc, BadInput) else attempt.stage
        load = attempt.load
        report = {
            "file": load.file_name,
            **describe(exc, stage),
            "sha256": load.sha256,
            "bytes": load.bytes,
            "rows": attempt.rows,
            "run_date": load.run_date,
            "write_mode": load.write_mode,
            "attempted_at": load.started_at,
        }
        try:
            with store.transaction(self.conn):
                # Failed before, by an attempt killed before its quarantine: one row.
                recorded = ledger.recorded_outcome(self.conn, load.claim) if load.claim else None
                if recorded is None or recorded[0] != "failed":
                    ledger.record_load(self.conn, load, status="failed",
                                       finished_at=ledger.utc_now(), rows=attempt.rows,
                                       error=f"{stage}: {exc}")
        except Exception as db_exc:
            if _is_transient(db_exc):
                # A busy or full database: the failure waits in the work directory to be
                # recorded, as a load waits to be committed, instead of losing its row.
                self._unfinished[attempt.path] = partial(self._fail, attempt, exc)
                return self._retry(replace(attempt, stage="ledger"), db_exc)
            # The quarantine below must still happen: the ledger is not the only record.
            log.error("ledger_write_failed", file=load.file_name, reason=str(db_exc))
        return self._quarantine(attempt, report, with_traceback=not isinstance(exc, BadInput))

    def _quarantine(self, attempt: _Attempt, report: dict[str, object],
                    with_traceback: bool) -> Outcome:
        """Move a failed file to failed/ with its sidecar and log its canonical line."""
        attempt.stage = "quarantine"
        try:
            failed = quarantine.quarantine(attempt.path, self.settings.failed, report)
        except FileNotFoundError:
            log.warning("file_vanished", file=attempt.load.file_name, stage="quarantine")
            return Outcome("vanished", attempt.path)
        except OSError as exc:
            self._unfinished[attempt.path] = partial(self._quarantine, attempt, report,
                                                     with_traceback)
            return self._retry(attempt, exc)
        load = attempt.load
        log.error("file_failed", file=load.file_name, sha256=load.sha256, bytes=load.bytes,
                  run_date=load.run_date, write_mode=load.write_mode, rows=attempt.rows,
                  inserted=0, updated=0, unchanged=0, deleted=0, stage=report["stage"],
                  error_type=report["error_type"], reason=report["reason"],
                  checks=report["checks"], duration_ms=attempt.elapsed_ms(),
                  failed_as=files.display_name(str(failed)), exc_info=with_traceback)
        return Outcome("failed", failed)
