"""The reference floor: the simplest correct loader of one file, on a table of its own.

What a new user would write first and trust: read the Parquet file, ADBC-ingest its
Arrow batches into a staging table of the same database, run one `INSERT ... SELECT ...
WHERE true ON CONFLICT DO UPDATE ... WHERE <changed>` into a plain table with the same
columns and only its primary key (over every key column), empty staging, and commit: one
transaction, WAL, `synchronous=FULL`, the daemon's cache size. No hashing, checks,
ledger, lineage or file moves, and none of the daemon's schema (no second index, no
summary): the daemon is measured against the least any loader giving the same answers
must do. Any feed's `Contract` will do: a decimal, a timestamp or a boolean is turned in
Arrow into the form the daemon keeps it in on SQLite (fixed-scale text, fixed-width UTC
text, 0/1), so both hold the same values. It runs as its own process (`python -m
tools.bench.floor DB FILE [FEED]`, a feed of `tools.bench.feeds`, transactions by
default), so the driver's SQLite is the only one that opens the database there, and
prints its time as JSON. `make_history` gives it the same prior rows as a daemon's
database.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from itertools import chain
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from filedrop_etl.config.contract import TRANSACTIONS, ColumnKind, Contract
from filedrop_etl.daemon.warehouse.sql import q
from filedrop_etl.daemon.warehouse.sqlite.connection import CACHE_KIB
from tools.bench import feeds

TABLE = "floor_fact"
STAGING = "floor_staging"
# The floor's own types, as a user would declare them (the daemon's are its own to change).
TYPES: dict[ColumnKind, str] = {"string": "TEXT", "integer": "INTEGER", "float": "REAL",
                                "decimal": "TEXT", "boolean": "INTEGER", "date": "TEXT",
                                "timestamp": "TEXT"}


def create_sql(table: str, *, key: bool, feed: Contract = TRANSACTIONS) -> str:
    columns = [f"{q(c.name)} {TYPES[c.kind]}" for c in feed.columns]
    if key:
        columns += ['"loaded_at" TEXT NOT NULL', f"PRIMARY KEY ({', '.join(map(q, feed.key))})"]
    return f"CREATE TABLE IF NOT EXISTS {q(table)} ({', '.join(columns)})"


def upsert_sql(feed: Contract = TRANSACTIONS) -> str:
    data = ", ".join(map(q, feed.column_names))
    sets = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in (*feed.value_columns, "loaded_at"))
    differs = " OR ".join(f"{q(TABLE)}.{q(n)} IS NOT excluded.{q(n)}"
                          for n in feed.value_columns)
    return (f"INSERT INTO {q(TABLE)} ({data}, \"loaded_at\") "
            f"SELECT {data}, strftime('%Y-%m-%dT%H:%M:%fZ') FROM {q(STAGING)} WHERE true "
            f"ON CONFLICT ({', '.join(map(q, feed.key))}) DO UPDATE SET {sets} WHERE {differs}")


def in_sqlite_form(batch: pa.RecordBatch, feed: Contract) -> pa.RecordBatch:
    """`batch` with its decimals, timestamps and booleans as SQLite keeps them."""
    arrays = []
    for column in feed.columns:
        values = batch.column(column.name)
        if column.kind == "decimal":
            values = pc.cast(values, pa.string())
        elif column.kind == "timestamp":
            values = pc.strftime(values, format="%Y-%m-%dT%H:%M:%SZ")
        elif column.kind == "boolean":
            values = pc.cast(values, pa.int64())
        arrays.append(values)
    return pa.RecordBatch.from_arrays(arrays, names=list(feed.column_names))


def make_history(target: Path, daemon_db: Path, feed: Contract = TRANSACTIONS) -> Path:
    """A floor database holding the fact rows of the daemon's database `daemon_db`."""
    data = ", ".join(map(q, feed.column_names))
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(create_sql(TABLE, key=True, feed=feed))
        conn.execute(create_sql(STAGING, key=False, feed=feed))
        conn.execute("ATTACH DATABASE ? AS daemon", (str(daemon_db),))
        conn.execute(f"INSERT INTO {q(TABLE)} ({data}, \"loaded_at\") "
                     f"SELECT {data}, \"loaded_at\" FROM daemon.{q(feed.fact_table)} "
                     f"ORDER BY {', '.join(map(q, feed.key))}")
        conn.execute("DETACH DATABASE daemon")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return target


def load(db: Path, parquet: Path, feed: Contract = TRANSACTIONS) -> float:
    """Load `parquet` into `db` the simplest correct way; the seconds it took."""
    started = time.perf_counter()
    # autocommit with explicit BEGIN/COMMIT: see daemon/warehouse/sqlite/staging.py.
    with adbc.connect(str(db), autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.fetchall()
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        cursor.execute("BEGIN IMMEDIATE")
        source = pq.ParquetFile(parquet)
        batches = source.iter_batches(columns=list(feed.column_names))
        if any(c.kind in ("decimal", "timestamp", "boolean") for c in feed.columns):
            converted = (in_sqlite_form(b, feed) for b in batches)
            first = next(converted)
            reader = pa.RecordBatchReader.from_batches(first.schema, chain([first], converted))
        else:
            reader = pa.RecordBatchReader.from_batches(source.schema_arrow, batches)
        cursor.adbc_ingest(STAGING, reader, mode="append")
        cursor.execute(upsert_sql(feed))
        cursor.execute(f"DELETE FROM {q(STAGING)}")
        cursor.execute("COMMIT")
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    db, parquet = map(Path, argv[:2])
    feed = feeds.named(argv[2]) if len(argv) > 2 else TRANSACTIONS
    print(json.dumps({"seconds": load(db, parquet, feed)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
