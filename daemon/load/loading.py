"""One attempt at loading one claimed file: open, hash, name, read, stage, check, merge.

`load_file` carries an `Attempt` through its stages, recording in it how far it got, so
that the caller (`daemon.load.pipeline`, the per-file error boundary) can say where a failure
happened. The rows stream into the warehouse's staging while the row checks run on the same
batches; uniqueness is counted there; then one transaction writes the ledger row and
the merge. Everything that goes wrong is raised: bad input as `BadInput`, the
environment as the seam's `WarehouseFault`s (`is_transient` tells which wait for a
retry). It neither moves files nor logs outcomes, and names no database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import structlog

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import Contract
from filedrop_etl.daemon import crashpoints, files, routing
from filedrop_etl.daemon.errors import BadInput, open_error_message
from filedrop_etl.daemon.load import checks, ordering, reader
from filedrop_etl.daemon.warehouse.api import (
    LoadRecord,
    MergeCounts,
    MergePlan,
    Staged,
    Ticket,
    Warehouse,
    WarehouseFault,
)

log = structlog.get_logger("daemon.pipeline")

@dataclass
class Attempt:
    """What is known of one attempt so far; filled in as its stages pass."""

    path: Path
    load: LoadRecord
    started: float
    stage: str = "open"
    rows: int | None = None
    counts: MergeCounts | None = None
    # The claim this daemon holds on the file in a shared warehouse, else None.
    ticket: Ticket | None = None

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is the environment's (a busy, full or unreachable warehouse, no
    staging room, no memory, a database file deleted or replaced under the daemon), so
    the file waits for a retry instead of failing.

    Each backend translates its driver's errors into `WarehouseFault`s at its boundary.
    Memory is the machine's, whatever asked for it: Python's `sqlite3` reports SQLite's
    NOMEM as `MemoryError`, and pyarrow's `ArrowMemoryError` is one too. A file too
    large to ever fit is refused by `max_file_bytes` and `max_file_rows`, not by blaming
    it for the memory it was denied.
    """
    return isinstance(exc, WarehouseFault | MemoryError)


def load_file(attempt: Attempt, contract: Contract, settings: Settings, warehouse: Warehouse,
              progress: Callable[[], None]) -> MergeCounts | None:
    """Open, hash, name, read and load one file by `contract` (its name, schema, checks
    and tables); None if it vanished first. `progress` is called as each batch is staged."""
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
        sha256, size = files.sha256_of(handle, progress, settings.max_file_bytes)
        attempt.load = replace(attempt.load, sha256=sha256, bytes=size,
                               claim=attempt.ticket.key if attempt.ticket
                               else files.claim_key(handle))
        attempt.stage = "name"
        run_date = routing.run_date_from_name(attempt.path.name, contract)
        attempt.load = replace(attempt.load, run_date=run_date)
        recorded = warehouse.recorded(attempt.load.claim or "")
        if recorded is not None and recorded.status == "processed":
            # Committed before a crash, not yet archived: the load is not repeated.
            log.info("file_already_loaded", file=attempt.load.file_name)
            return recorded.counts
        attempt.stage = "read"
        source = reader.open_parquet(handle, contract, warehouse.value_limit)
        attempt.rows = source.rows
        _refuse_larger_than(source.rows, settings.max_file_rows, "rows", "max_file_rows")
        if source.extra_columns:
            log.warning("extra_columns_ignored", file=attempt.load.file_name,
                        columns=list(source.extra_columns))
        if source.filled_columns:
            # Declared after this file was written: its rows take null or the default.
            log.info("absent_columns_filled", file=attempt.load.file_name,
                     columns=list(source.filled_columns))
        if source.rows == 0:
            raise BadInput("the file has no rows", stage="checks",
                           hint=f"a day's file must hold that day's {contract.name}")
        return _load_rows(source, attempt, run_date, warehouse, progress)


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
               warehouse: Warehouse, progress: Callable[[], None]) -> MergeCounts:
    """Stage the rows while the row checks run; check and merge them; clean up. A file
    whose keys arrive out of order is staged again in key order if it fits in memory."""
    try:
        return _stage_and_merge(source, source.batches(), attempt, run_date, warehouse,
                                progress)
    except ordering.KeysUnsorted:
        pass
    in_order = ordering.InOrder.of(source.batches(), source.contract.key, checks.SAMPLE_KEYS)
    return _stage_and_merge(source, in_order.batches(reader.BATCH_ROWS), attempt, run_date,
                            warehouse, progress, in_order=in_order)


def _stage_and_merge(source: reader.ParquetSource, batches: Iterator[pa.RecordBatch],
                     attempt: Attempt, run_date: str, warehouse: Warehouse,
                     progress: Callable[[], None], *,
                     in_order: ordering.InOrder | None = None) -> MergeCounts:
    """Stage `batches`, check and merge them. The file's own order is checked (and
    `KeysUnsorted` raised); rows already sorted `in_order` bring their repeats."""
    attempt.stage = "stage"
    verdict = checks.FileChecks(run_date, source.contract)
    observed = verdict.observing(batches)
    if in_order is None:
        observed = ordering.checking_order(observed, verdict, source.rows)
    else:
        verdict.record_duplicates(source.contract.key, in_order.repeats,
                                  in_order.repeated_keys)
    counts: MergeCounts | None = None
    try:
        with warehouse.staged(source.contract,
                              _passing_staging_point(observed, progress)) as staged:
            rows = staged.rows
            if rows != source.rows:
                # A footer whose count disagrees with its row groups: in replace mode
                # an empty read would otherwise delete the whole day.
                raise BadInput(f"the footer promises {source.rows} rows but the row "
                               f"groups hold {rows}", stage="read",
                               hint="the file is corrupt; have the producer write it again")
            counts = _check_and_merge(verdict, attempt, run_date, staged)
    except Exception as exc:
        if counts is None:
            raise
        # Committed: the load stands and the file is archived; only the staging
        # could not be let go of.
        log.warning("staging_cleanup_failed", file=attempt.load.file_name, reason=str(exc),
                    hint="restart the daemon if the next file reports the staging "
                    "database in use")
    return counts


def _check_and_merge(verdict: checks.FileChecks, attempt: Attempt, run_date: str,
                     staged: Staged) -> MergeCounts:
    """Count repeats where needed, then the ledger row and the merge in the file's one
    transaction."""
    attempt.stage = "checks"
    counted = verdict.unique_columns_to_count()
    for columns in counted:
        verdict.record_duplicates(columns, *staged.surplus_rows(columns, checks.SAMPLE_KEYS))
    verdict.raise_for_failures()
    crashpoints.reached("after_checks")
    attempt.stage = "load"
    key = verdict.contract.key
    # The write mode the ledger row records (the feed's, else the daemon's: the pipeline
    # chose it once), so that the merge does what the ledger says it did.
    plan = MergePlan(keys_sorted=verdict.ascending(key),
                     keys_counted=key in counted or verdict.counted(key),
                     replace_date=run_date if attempt.load.write_mode == "replace" else None,
                     ticket=attempt.ticket, run_date=run_date)
    return staged.commit(attempt.load, plan)
