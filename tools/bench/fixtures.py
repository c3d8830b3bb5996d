"""Benchmark inputs: generated Parquet days, and databases that already hold history.

Files come from the project's own deterministic generator, published as a producer
would. A database with history is built in bulk, through the same staging hand-over the
daemon uses (an ADBC-written scratch file attached read-only), so that building 365 days
takes a minute rather than an hour; its rows carry no ledger lineage (`load_id` NULL).
Each template is built once per run and copied for every case that starts from it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from filedrop_etl.config import contract
from filedrop_etl.daemon.warehouse.sql import Tables, q
from filedrop_etl.daemon.warehouse.sqlite import connection, migrate, schema, staging
from filedrop_etl.generator.publish import publish_parquet
from filedrop_etl.generator.transactions import generate

FIRST_DAY = date(2026, 1, 1)
SMALL_ROWS = 25


def day(index: int) -> date:
    """The run date of day `index` (0 is FIRST_DAY)."""
    return FIRST_DAY + timedelta(days=index)


def write_day(directory: Path, run_date: date, rows: int) -> Path:
    """Publish one generated day into `directory` (atomically, as the generator does)."""
    return publish_parquet(directory, contract.file_name_for(run_date.isoformat()),
                           contract.ARROW_SCHEMA, generate(run_date, rows))


def batches_of_days(first: int, days: int, rows: int) -> Iterator[pa.RecordBatch]:
    for index in range(first, first + days):
        yield from generate(day(index), rows)


def build_history(db: Path, days: int, rows_per_day: int, first: int = 0) -> Path:
    """A daemon database whose fact table holds `days` generated days (keys in order)."""
    conn = connection.connect(db)
    feed = contract.TRANSACTIONS
    try:
        schema.init_schema(conn, feed)
        if days:
            columns = ", ".join(map(q, feed.column_names))
            batches = batches_of_days(first, days, rows_per_day)
            with staging.staged(db, batches, feed) as (path, _), \
                    connection.attached_staging(conn, path, feed.staging_table), \
                    connection.transaction(conn):
                conn.execute(f"INSERT INTO {q(feed.fact_table)} ({columns}, \"loaded_at\") "
                             f"SELECT {columns}, 'history' "
                             f"FROM {connection.staged_table(feed.staging_table)}")
                # The rows per day each load keeps (schema version 4).
                migrate.count_days(conn, Tables(feed))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    # History is old data, already on disk.
    _fsync(db)
    return db


def copy_db(template: Path, target: Path) -> Path:
    """A private copy of a checkpointed template database (no WAL to carry over)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)
    _fsync(target)
    return target


def _fsync(path: Path) -> None:
    """Have `path` on disk: a copy still being written back would slow whichever timed
    commit comes next (its fsync waits behind it), not the load being measured."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
