"""One attempt at one file, below the error boundary: how far it got, what it raises.

`daemon.load.loading` moves no files and logs no outcome; `Pipeline` (tests/test_pipeline.py)
turns what it returns or raises into processed/, failed/ or a retry. These tests pin the
contract between the two: the stage an attempt is left at, the counts, the callbacks,
and which errors count as the environment's.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from filedrop_etl.config import Settings
from filedrop_etl.config.contract import TRANSACTIONS
from filedrop_etl.daemon import clock
from filedrop_etl.daemon.errors import BadInput
from filedrop_etl.daemon.load import loading
from filedrop_etl.daemon.warehouse.api import LoadRecord, WarehouseBusy
from filedrop_etl.daemon.warehouse.sqlite import faults, staging
from tests.conftest import as_warehouse, day_table, fact_rows, replaced_at, write_parquet

DAY = "2026-02-10"
NAME = f"transactions_{DAY}.parquet"


def attempt_at(path: Path, settings: Settings) -> loading.Attempt:
    record = LoadRecord(path.name, None, None, settings.write_mode, None, clock.utc_now(),
                        feed="transactions")
    return loading.Attempt(path, record, time.perf_counter())


def test_a_clean_file_is_merged_and_left_where_it_is(settings: Settings,
                                                     fresh_db: sqlite3.Connection) -> None:
    path = write_parquet(settings.work, day_table(DAY, rows=25), NAME)
    attempt = attempt_at(path, settings)
    ticks: list[None] = []
    counts = loading.load_file(attempt, TRANSACTIONS, settings, as_warehouse(fresh_db),
                               lambda: ticks.append(None))
    assert counts is not None and (counts.rows, counts.inserted) == (25, 25)
    assert attempt.stage == "load" and attempt.rows == 25
    assert attempt.load.run_date == DAY
    assert attempt.load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert attempt.load.bytes == path.stat().st_size
    # Archiving is the caller's: the file has not moved.
    assert path.exists()
    assert len(ticks) >= 1
    assert len(fact_rows(settings.db_file)) == 25


def test_a_failed_check_raises_at_the_checks_stage_and_writes_nothing(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    path = write_parquet(settings.work, replaced_at(day_table(DAY), "amount", 3, -1.0), NAME)
    attempt = attempt_at(path, settings)
    with pytest.raises(BadInput) as raised:
        loading.load_file(attempt, TRANSACTIONS, settings, as_warehouse(fresh_db),
                          lambda: None)
    assert raised.value.stage == "checks" and attempt.stage == "checks"
    assert fact_rows(settings.db_file) == []
    assert fresh_db.execute("SELECT COUNT(*) FROM load_history").fetchone() == (0,)


@pytest.mark.parametrize(("name", "content", "stage"), [
    ("transactions_2026-02-30.parquet", None, "name"),
    (NAME, b"not parquet at all", "read"),
])
def test_bad_input_is_raised_at_the_stage_it_was_found(
        settings: Settings, fresh_db: sqlite3.Connection, name: str,
        content: bytes | None, stage: str) -> None:
    settings.work.mkdir(parents=True, exist_ok=True)
    path = settings.work / name
    if content is None:
        write_parquet(settings.work, day_table(DAY), name)
    else:
        path.write_bytes(content)
    attempt = attempt_at(path, settings)
    with pytest.raises(BadInput):
        loading.load_file(attempt, TRANSACTIONS, settings, as_warehouse(fresh_db),
                          lambda: None)
    assert attempt.stage == stage
    # Hashed before it was read: the ledger's failed row can name the content.
    assert attempt.load.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_gone_before_it_is_opened_is_none(settings: Settings,
                                                 fresh_db: sqlite3.Connection) -> None:
    attempt = attempt_at(settings.work / NAME, settings)
    assert loading.load_file(attempt, TRANSACTIONS, settings, as_warehouse(fresh_db),
                             lambda: None) is None
    assert attempt.stage == "open"


def test_a_busy_database_is_transient_and_a_bad_statement_is_not(
        settings: Settings, fresh_db: sqlite3.Connection) -> None:
    fresh_db.execute("PRAGMA busy_timeout = 0")
    blocker = sqlite3.connect(settings.db_file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as busy:
            fresh_db.execute("BEGIN IMMEDIATE")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(sqlite3.OperationalError) as syntax:
        fresh_db.execute("SELEC 1")
    # Translated at the backend's boundary: busy is the seam's fault, a typo is not.
    fault = faults.fault_of(busy.value)
    assert isinstance(fault, WarehouseBusy) and loading.is_transient(fault)
    assert faults.fault_of(syntax.value) is None and not loading.is_transient(syntax.value)
    assert loading.is_transient(staging.StagingUnavailable("disk full"))
    assert not loading.is_transient(BadInput("bad", stage="read"))
    assert not loading.is_transient(ValueError("a bug"))
