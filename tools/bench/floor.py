"""The reference floor: the simplest correct loader of one file, on a table of its own.

What a new user would write first and trust: read the Parquet file, ADBC-ingest its
Arrow batches into a staging table of the same database, run one `INSERT ... SELECT ...
WHERE true ON CONFLICT DO UPDATE ... WHERE <changed>` into a plain table with the same
columns and only its primary key, empty staging, and commit: one transaction, WAL,
`synchronous=FULL`, the daemon's cache size. No hashing, checks, ledger, lineage or file
moves, and none of the daemon's schema (no second index, no summary): the daemon is
measured against the least any loader giving the same answers must do. It runs as its
own process (`python -m tools.bench.floor DB FILE`), so the driver's SQLite is the only
one that opens the database there, and prints its time as JSON. `make_history` gives
it the same prior rows as a daemon's database.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.parquet as pq

from filedrop_etl.config.contract import TRANSACTIONS as FEED
from filedrop_etl.daemon.warehouse.sql import q
from filedrop_etl.daemon.warehouse.sqlite.connection import CACHE_KIB
from filedrop_etl.daemon.warehouse.sqlite.types import column_type

TABLE = "floor_fact"
STAGING = "floor_staging"


def create_sql(table: str, *, key: bool) -> str:
    columns = [f"{q(c.name)} {column_type(c)}"
               + (" PRIMARY KEY" if key and c.name == FEED.key[0] else "") for c in FEED.columns]
    if key:
        columns.append('"loaded_at" TEXT NOT NULL')
    return f"CREATE TABLE IF NOT EXISTS {q(table)} ({', '.join(columns)})"


def upsert_sql() -> str:
    data = ", ".join(map(q, FEED.column_names))
    sets = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in (*FEED.value_columns, "loaded_at"))
    differs = " OR ".join(f"{q(TABLE)}.{q(n)} IS NOT excluded.{q(n)}"
                          for n in FEED.value_columns)
    return (f"INSERT INTO {q(TABLE)} ({data}, \"loaded_at\") "
            f"SELECT {data}, strftime('%Y-%m-%dT%H:%M:%fZ') FROM {q(STAGING)} WHERE true "
            f"ON CONFLICT ({q(FEED.key[0])}) DO UPDATE SET {sets} WHERE {differs}")


def make_history(target: Path, daemon_db: Path) -> Path:
    """A floor database holding the fact rows of the daemon's database `daemon_db`."""
    data = ", ".join(map(q, FEED.column_names))
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(create_sql(TABLE, key=True))
        conn.execute(create_sql(STAGING, key=False))
        conn.execute("ATTACH DATABASE ? AS daemon", (str(daemon_db),))
        conn.execute(f"INSERT INTO {q(TABLE)} ({data}, \"loaded_at\") "
                     f"SELECT {data}, \"loaded_at\" FROM daemon.{q(FEED.fact_table)} "
                     f"ORDER BY {q(FEED.key[0])}")
        conn.execute("DETACH DATABASE daemon")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return target


def load(db: Path, parquet: Path) -> float:
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
        batches = source.iter_batches(columns=list(FEED.column_names))
        cursor.adbc_ingest(STAGING, pa.RecordBatchReader.from_batches(
            source.schema_arrow, batches), mode="append")
        cursor.execute(upsert_sql())
        cursor.execute(f"DELETE FROM {q(STAGING)}")
        cursor.execute("COMMIT")
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    db, parquet = map(Path, argv)
    print(json.dumps({"seconds": load(db, parquet)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
