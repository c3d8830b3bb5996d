"""One attempt at loading one claimed file: open, hash, name, read, stage, check, merge.

`load_file` carries an `Attempt` through its stages, recording in it how far it got, so
that the caller (`daemon.pipeline`, the per-file error boundary) can say where a failure
happened. The rows stream into a fresh staging database while the row checks run on the
same batches; uniqueness is counted in SQL; then one transaction writes the ledger row
and the merge. Everything that goes wrong is raised: bad input as `BadInput`, the
environment as SQLite or staging errors (`is_transient` tells which wait for a retry).
It neither moves files nor logs outcomes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import structlog

from config import Settings, contract
from daemon import checks, crashpoints, files, ledger, reader, staging, store
from daemon.errors import BadInput, DatabaseMoved, open_error_message

log = structlog.get_logger("daemon.pipeline")

# SQLite primary result codes that describe the environment, not the file or our SQL.
# BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
_TRANSIENT_SQLITE = frozenset({5, 6, 7, 8, 10, 13, 14})


@dataclass
class Attempt:
    """What is known of one attempt so far; filled in as its stages pass."""

    path: Path
    load: ledger.LoadRecord
    started: float
    stage: str = "open"
    rows: int | None = None
    counts: store.MergeCounts | None = None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is the environment's (a busy or full database, no staging room, no
    memory, a database file deleted or replaced under the daemon), so the file waits for
    a retry instead of failing.

    Memory is the machine's, whatever asked for it: Python's `sqlite3` reports SQLite's
    NOMEM as `MemoryError`, not as an `sqlite3.Error`, and pyarrow's `ArrowMemoryError`
    is one too. A file too large to ever fit is refused by `max_file_bytes` and
    `max_file_rows`, not by blaming it for the memory it was denied.
    """
    if isinstance(exc, staging.StagingUnavailable | MemoryError | DatabaseMoved):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _TRANSIENT_SQLITE


def load_file(attempt: Attempt, settings: Settings, conn: sqlite3.Connection,
              progress: Callable[[], None]) -> store.MergeCounts | None:
    """Open, hash, name, read and load one file; None if it vanished first. `progress`
    is called as each batch is staged."""
    try:
        handle = files.open_no_follow(attempt.path)
    except FileNotFoundError:
        log.warning("file_vanished", file=attempt.load.file_name)
        return None
    except OSError as exc:
        raise BadInput(open_error_message(exc), stage="open",
                       hint="drop a regular, readable file") from exc
    with handle:
        _refuse_larger_than(os.fstat(handle.fileno()).st_size, settings.max_file_bytes,
                            "bytes", "max_file_bytes")
        attempt.stage = "hash"
        sha256, size = files.sha256_of(handle, progress)
        attempt.load = replace(attempt.load, sha256=sha256, bytes=size,
                               claim=files.claim_key(handle))
        attempt.stage = "name"
        run_date = files.run_date_from_name(attempt.path.name)
        attempt.load = replace(attempt.load, run_date=run_date)
        recorded = ledger.recorded_outcome(conn, attempt.load.claim or "")
        if recorded is not None and recorded[0] == "processed":
            # Committed before a crash, not yet archived: the load is not repeated.
            log.info("file_already_loaded", file=attempt.load.file_name)
            return recorded[1]
        attempt.stage = "read"
        source = reader.open_parquet(handle, conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH))
        attempt.rows = source.rows
        _refuse_larger_than(source.rows, settings.max_file_rows, "rows", "max_file_rows")
        if source.extra_columns:
            log.warning("extra_columns_ignored", file=attempt.load.file_name,
                        columns=list(source.extra_columns))
        if source.rows == 0:
            raise BadInput("the file has no rows", stage="checks",
                           hint="a day's file must hold that day's transactions")
        return _load_rows(source, attempt, run_date, settings, conn, progress)


def _refuse_larger_than(amount: int, limit: int | None, unit: str, setting: str) -> None:
    """`BadInput` for an input over the operator's limit, before any of it is read."""
    if limit is not None and amount > limit:
        raise BadInput(f"the file holds {amount:,} {unit}, more than {setting} "
                       f"({limit:,})", stage="open" if unit == "bytes" else "read",
                       hint=f"have the producer split it into smaller files, or raise "
                       f"{setting} if files this large are expected")


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


def _load_rows(source: reader.ParquetSource, attempt: Attempt, run_date: str,
               settings: Settings, conn: sqlite3.Connection,
               progress: Callable[[], None]) -> store.MergeCounts:
    """Stage the rows while the row checks run; check and merge them; clean up."""
    attempt.stage = "stage"
    verdict = checks.FileChecks(run_date)
    batches = _passing_staging_point(verdict.observing(source.batches()), progress)
    counts: store.MergeCounts | None = None
    try:
        with staging.staged(settings.db, batches) as (path, rows), \
                store.attached_staging(conn, path) as staged_rows:
            if staged_rows != rows:
                raise RuntimeError(f"staged {staged_rows} rows of the {rows} read")
            if rows != source.rows:
                # A footer whose count disagrees with its row groups: in replace mode
                # an empty read would otherwise delete the whole day.
                raise BadInput(f"the footer promises {source.rows} rows but the row "
                               f"groups hold {rows}", stage="read",
                               hint="the file is corrupt; have the producer write it again")
            counts = _check_and_merge(verdict, attempt, run_date, rows, settings, conn)
    except Exception as exc:
        if counts is None:
            raise
        # Committed: the load stands and the file is archived; only the staging
        # database could not be let go of.
        log.warning("staging_cleanup_failed", file=attempt.load.file_name, reason=str(exc),
                    hint="restart the daemon if the next file reports the staging "
                    "database in use")
    return counts


def _check_and_merge(verdict: checks.FileChecks, attempt: Attempt, run_date: str, rows: int,
                     settings: Settings, conn: sqlite3.Connection) -> store.MergeCounts:
    """Count repeats where needed, then the ledger row and the merge in the file's one
    transaction."""
    attempt.stage = "checks"
    counted = verdict.unique_columns_to_count()
    for column in counted:
        verdict.record_duplicates(column, *store.surplus_rows(conn, column, checks.SAMPLE_KEYS))
    verdict.raise_for_failures()
    crashpoints.reached("after_checks")
    attempt.stage = "load"
    load = attempt.load
    with store.transaction(conn):
        load_id = ledger.record_load(conn, load, status="processed", finished_at=load.started_at)
        replace_date = run_date if settings.write_mode == "replace" else None
        counts = store.merge(conn, rows=rows, loaded_at=ledger.utc_now(), load_id=load_id,
                             keys_sorted=verdict.ascending(contract.KEY),
                             keys_counted=contract.KEY in counted,
                             replace_date=replace_date)
        crashpoints.reached("during_merge")
        ledger.update_load_counts(conn, load_id, counts, finished_at=ledger.utc_now())
    return counts
